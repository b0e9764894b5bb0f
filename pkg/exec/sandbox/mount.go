package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/internal/sysx"
)

// APIMounts selects the API filesystems MountAPI mounts in an image root.
type APIMounts struct {
	// Proc is a new procfs at /proc, showing the sandbox's PID namespace.
	Proc bool
	// Sys is sysfs, read-only, at /sys.
	Sys bool
	// Dev is a tmpfs at /dev holding bind mounts of the host's null, zero,
	// full, random, urandom and tty, a private devpts at /dev/pts with
	// /dev/ptmx pointing into it, a tmpfs /dev/shm, and the fd, stdin,
	// stdout and stderr links into /proc/self/fd.
	Dev bool
	// Run is a tmpfs at /run.
	Run bool
	// Tmp is a tmpfs at /tmp.
	Tmp bool
	// Resolv bind-mounts the host's /etc/resolv.conf, read-only, over the
	// image's. When the image's is a symlink (into /run, typically) the
	// mount goes onto its target, created if missing: inside the /run tmpfs
	// when Run is mounted too, so it leaves no trace.
	Resolv bool
}

// MountAPI mounts the API filesystems m selects inside the image root, in
// the order of APIMounts' fields. Every mount point is resolved inside the
// root as the chroot will see it (a symlink in the image cannot send a mount
// to the host), and a missing one is created and later removed by Cleanup,
// as is an empty /etc/resolv.conf made to bind onto. Mounts stay until
// Cleanup or the end of the sandbox. On failure MountAPI undoes what it did.
func (c *Child) MountAPI(root string, m APIMounts) error {
	rootfd, err := openRoot(root)
	if err != nil {
		return fmt.Errorf("mount api filesystems: %w", err)
	}
	defer unix.Close(rootfd)
	if isHostRoot(rootfd) {
		return fmt.Errorf("mount api filesystems: refusing the sandbox's own / as an image root")
	}
	mark := len(c.undo)
	if err := c.mountAPI(rootfd, m); err != nil {
		return errors.Join(fmt.Errorf("mount api filesystems in %s: %w", root, err), c.unwind(mark))
	}
	return nil
}

// isHostRoot reports whether fd is the directory the sandbox itself has as
// /, where /dev would be mounted over the very nodes it binds from.
func isHostRoot(fd int) bool {
	var a, b unix.Stat_t
	return unix.Fstat(fd, &a) == nil && unix.Stat("/", &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

const (
	nosuid = unix.MOUNT_ATTR_NOSUID
	nodev  = unix.MOUNT_ATTR_NODEV
	noexec = unix.MOUNT_ATTR_NOEXEC
	rdonly = unix.MOUNT_ATTR_RDONLY
)

func (c *Child) mountAPI(rootfd int, m APIMounts) error {
	if m.Proc {
		if _, err := c.mountFS(rootfd, "proc", "proc", nil, nosuid|nodev|noexec, false); err != nil {
			return err
		}
	}
	if m.Sys {
		if _, err := c.mountFS(rootfd, "sys", "sysfs", nil, rdonly|nosuid|nodev|noexec, false); err != nil {
			return err
		}
	}
	if m.Dev {
		if err := c.mountDev(rootfd); err != nil {
			return err
		}
	}
	if m.Run {
		if _, err := c.mountFS(rootfd, "run", "tmpfs", []fsOpt{{key: "mode", val: "0755"}}, nosuid|nodev, true); err != nil {
			return err
		}
	}
	if m.Tmp {
		if _, err := c.mountFS(rootfd, "tmp", "tmpfs", []fsOpt{{key: "mode", val: "1777"}}, nosuid|nodev, true); err != nil {
			return err
		}
	}
	if m.Resolv {
		if err := c.bind(rootfd, "/etc/resolv.conf", "etc/resolv.conf", false, rdonly|nosuid|nodev|noexec); err != nil {
			return err
		}
	}
	return nil
}

// devNodes are bind-mounted from the host's /dev: mknod in a tmpfs would do
// as well, but binds keep working where device nodes are not allowed.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

var devLinks = [][2]string{ // name, target
	{"ptmx", "pts/ptmx"},
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

func (c *Child) mountDev(rootfd int) error {
	// The tmpfs is ours: what is created in it needs no resolving inside
	// the image, and ensure below resolves relative to it anyway.
	dev, err := c.mountFS(rootfd, "dev", "tmpfs", []fsOpt{{key: "mode", val: "0755"}}, nosuid|noexec, true)
	if err != nil {
		return err
	}
	for _, n := range devNodes {
		if err := c.bind(dev, "/dev/"+n, n, false, 0); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	for _, l := range devLinks {
		if err := unix.Symlinkat(l[1], dev, l[0]); err != nil {
			return fmt.Errorf("dev: symlink %s: %w", l[0], err)
		}
	}
	pts := []fsOpt{
		{key: "newinstance", optional: true}, // implied since Linux 4.7; newer kernels reject it
		{key: "ptmxmode", val: "0666"},
		{key: "mode", val: "0620"},
		{key: "gid", val: "5"}, // tty
	}
	if _, err := c.mountFS(dev, "pts", "devpts", pts, nosuid|noexec, false); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if _, err := c.mountFS(dev, "shm", "tmpfs", []fsOpt{{key: "mode", val: "1777"}}, nosuid|nodev, true); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

// Bind mounts the host file or directory src onto image path p inside root
// (resolved inside the root like MountAPI's mount points; a missing one is
// created, and removed by Cleanup), read-only if readOnly, until Cleanup.
// Mounts below src are not included.
func (c *Child) Bind(root, src, p string, readOnly bool) error {
	rootfd, err := openRoot(root)
	if err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	defer unix.Close(rootfd)
	var attr uint64
	if readOnly {
		attr = rdonly | nosuid | nodev
	}
	if err := c.bind(rootfd, src, p, true, attr); err != nil {
		return fmt.Errorf("bind %s onto %s in %s: %w", src, p, root, err)
	}
	return nil
}

// bind mounts host path src onto p below rootfd. With anyKind the mount
// point is made to match src (directory or not); otherwise src must not be a
// directory.
func (c *Child) bind(rootfd int, src, p string, anyKind bool, attr uint64) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if fi.IsDir() && !anyKind {
		return fmt.Errorf("%s: %w", src, unix.EISDIR)
	}
	target, err := c.ensure(rootfd, p, fi.IsDir())
	if err != nil {
		return err
	}
	defer unix.Close(target)
	mfd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	if attr != 0 {
		if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attr}); err != nil {
			unix.Close(mfd)
			return fmt.Errorf("mount_setattr %s: %w", src, err)
		}
	}
	return c.attach(mfd, target, "/"+cleanRel(p), false)
}

// fsOpt is one fsconfig key; an empty val sets a flag.
type fsOpt struct {
	key, val string
	optional bool // ignore EINVAL (an option some kernels no longer know)
}

// mountFS mounts a new fstype filesystem on directory p below rootfd and
// returns the mount's descriptor, which stays open (and usable as a
// directory descriptor) until Cleanup.
func (c *Child) mountFS(rootfd int, p, fstype string, opts []fsOpt, attr int, scratch bool) (int, error) {
	target, err := c.ensure(rootfd, p, true)
	if err != nil {
		return -1, err
	}
	defer unix.Close(target)
	mfd, err := newFS(fstype, opts, attr)
	if err != nil {
		return -1, fmt.Errorf("/%s: %w", p, err)
	}
	if err := c.attach(mfd, target, "/"+p, scratch); err != nil {
		return -1, err
	}
	return mfd, nil
}

func newFS(fstype string, opts []fsOpt, attr int) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	for _, o := range opts {
		var err error
		if o.val == "" {
			err = unix.FsconfigSetFlag(fsfd, o.key)
		} else {
			err = unix.FsconfigSetString(fsfd, o.key, o.val)
		}
		if err == unix.EINVAL && o.optional {
			sysx.FsLog(fsfd) // drop the kernel's complaint
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("%s option %s: %w%s", fstype, o.key, err, sysx.FsLog(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("create %s: %w%s", fstype, err, sysx.FsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w%s", fstype, err, sysx.FsLog(fsfd))
	}
	return mfd, nil
}

// attach moves the detached mount mfd onto target and records its unmount.
// mfd stays open: unmounting through /proc/self/fd/mfd hits exactly this
// mount, wherever path lookups in the image would now lead.
func (c *Child) attach(mfd, target int, where string, scratch bool) error {
	err := unix.MoveMount(mfd, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		unix.Close(mfd)
		return fmt.Errorf("mount %s: %w", where, err)
	}
	var dev uint64
	if scratch {
		var st unix.Stat_t
		if err := unix.Fstat(mfd, &st); err == nil {
			dev = st.Dev
			if c.scratch == nil {
				c.scratch = map[uint64]bool{}
			}
			c.scratch[dev] = true
		}
	}
	c.push(func() error {
		if dev != 0 {
			delete(c.scratch, dev)
		}
		// Detach: a process still using it (a daemon's cwd, our own
		// descriptor) must not make Cleanup fail; the mount is gone from
		// the tree at once and freed when the last user lets go.
		err := unix.Unmount(fdPath(mfd), unix.MNT_DETACH)
		unix.Close(mfd)
		if err != nil {
			return fmt.Errorf("unmount %s: %w", where, err)
		}
		return nil
	})
	return nil
}

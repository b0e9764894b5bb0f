package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/internal/sysx"
)

// mountSource is the source every overlay shows in mountinfo.
const mountSource = "imgplan"

// maxLowers is overlayfs' limit on stacked layers (OVL_MAX_STACK).
const maxLowers = 500

// overlayOptions keep layers plain and portable; every mount gets them.
//
//   - index=off, nfs_export=off: no index directory, which would tie the
//     layers to the filesystem they were built on.
//   - metacopy=off: copy-up copies data, so a layer never depends on its
//     lowers for file contents.
//   - redirect_dir=nofollow: renaming a lower directory fails with EXDEV and
//     userspace (mv, rename-aware tools) copies instead; no redirect xattr is
//     written, and any a foreign layer carries is ignored, as the copy
//     fallback ignores it. The kernel here defaults to redirect_dir=on.
//   - uuid=off: no trusted.overlay.uuid on the upper root; the origin handles
//     copy-up still records carry a null UUID ([Normalize] strips them).
//   - xino=auto: distinct inode numbers in the merged view when layers span
//     filesystems (tools that detect hardlinks by inode, such as mksquashfs
//     and tar, rely on that); it writes nothing to the layers.
var overlayOptions = [][2]string{
	{"index", "off"},
	{"nfs_export", "off"},
	{"metacopy", "off"},
	{"redirect_dir", "nofollow"},
	{"uuid", "off"},
	{"xino", "auto"},
}

// mountMethod selects how MountOverlay talks to the kernel; tests force each.
type mountMethod int

const (
	methodAuto mountMethod = iota
	// methodFsconfigFD passes layers to fsconfig as O_PATH descriptors
	// (kernel ≥ 6.13): no length limit, no escaping, no path lookup races.
	methodFsconfigFD
	// methodFsconfigPath passes layers to fsconfig "lowerdir+" as strings
	// (kernel ≥ 6.8). fsconfig caps a string at 255 bytes, so longer paths
	// go as /proc/self/fd/N.
	methodFsconfigPath
	// methodClassic is mount(2) with a "lowerdir=a:b:c" option string, which
	// the kernel caps at one page; layers go as /proc/self/fd/N to fit.
	methodClassic
	// methodBind is reported when no overlay was needed: an upper without
	// lowers, or (where data-only layers are unsupported) one read-only lower.
	methodBind
)

func (m mountMethod) String() string {
	switch m {
	case methodAuto:
		return "auto"
	case methodFsconfigFD:
		return "fsconfig-fd"
	case methodFsconfigPath:
		return "fsconfig-path"
	case methodClassic:
		return "mount(2)"
	case methodBind:
		return "bind"
	}
	return "method(" + strconv.Itoa(int(m)) + ")"
}

// errMethodUnsupported means the kernel lacks what a mount method needs; the
// next, older method may still work.
var errMethodUnsupported = errors.New("mount method unsupported by this kernel")

// MountOverlay mounts at target an overlay of lowers (lowers[0] is the
// topmost) and, when upper != "", the writable upper with its work dir (same
// filesystem as upper). upper == "" mounts read-only.
//
// It uses the new mount API (fsopen, fsconfig "lowerdir+" once per layer,
// fsmount, move_mount), so deep stacks never hit the one-page limit of
// mount(2) options; layers go as descriptors from kernel 6.13, as paths from
// 6.8, and through mount(2) before that. Every mount gets the options in
// overlayOptions. Two cases need no overlay and are bind mounts: an upper
// without lowers (nothing lies below it, so the upper dir itself is the
// merged tree) and, on kernels before 6.5 (no data-only layers), a single
// read-only lower. See [InitUpper] for the upper's root, and [Normalize] for
// the upper after Unmount.
func MountOverlay(lowers []string, upper, work, target string) error {
	_, err := mountOverlay(lowers, upper, work, target, methodAuto)
	return err
}

// mountOverlay is MountOverlay with an explicit method; it reports the method
// that mounted.
func mountOverlay(lowers []string, upper, work, target string, m mountMethod) (mountMethod, error) {
	if err := checkMountArgs(lowers, upper, work, target); err != nil {
		return m, err
	}
	if len(lowers) == 0 {
		if err := bindMount(upper, target, false); err != nil {
			return methodBind, fmt.Errorf("mount upper %s at %s: %w", upper, target, err)
		}
		return methodBind, nil
	}
	methods := []mountMethod{m}
	if m == methodAuto {
		methods = []mountMethod{methodFsconfigFD, methodFsconfigPath, methodClassic}
	}
	var err error
	for _, m = range methods {
		if m == methodClassic {
			err = mountClassic(lowers, upper, work, target)
		} else {
			err = mountFsconfig(lowers, upper, work, target, m == methodFsconfigFD)
		}
		if !errors.Is(err, errMethodUnsupported) {
			break
		}
	}
	if errors.Is(err, errNoDataLayers) {
		m = methodBind
		err = bindMount(lowers[0], target, true)
	}
	if err != nil {
		return m, fmt.Errorf("mount overlay of %d layers at %s (%s): %w", len(lowers), target, m, err)
	}
	return m, nil
}

func checkMountArgs(lowers []string, upper, work, target string) error {
	switch {
	case target == "":
		return errors.New("mount overlay: no target")
	case len(lowers) == 0 && upper == "":
		return fmt.Errorf("mount overlay at %s: neither lowers nor upper", target)
	case upper != "" && work == "":
		return fmt.Errorf("mount overlay at %s: upper %s without a work dir", target, upper)
	case len(lowers) > maxLowers:
		return fmt.Errorf("mount overlay at %s: %d layers, overlayfs stacks at most %d", target, len(lowers), maxLowers)
	}
	for _, l := range lowers {
		if l == "" {
			return fmt.Errorf("mount overlay at %s: empty lower path", target)
		}
	}
	return nil
}

// errNoDataLayers means a single read-only lower could not be given the
// data-only companion overlayfs needs (it wants two layers without an upper).
var errNoDataLayers = errors.New("kernel lacks data-only overlay layers")

// mountFsconfig mounts with the new mount API, passing layers as descriptors
// (byFD) or path strings.
//
// A lone read-only lower gets target itself as a data-only layer: overlayfs
// wants two layers when there is no upper, and with metacopy off a data-only
// layer is never read, so any directory serves. This keeps overlay semantics
// (whiteouts and overlay xattrs hidden), which a bind mount would not.
func mountFsconfig(lowers []string, upper, work, target string, byFD bool) (err error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("fsopen: %w: %w", errMethodUnsupported, err)
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)

	var fds fdSet
	defer fds.close()
	set := func(key, path string) error {
		fd, err := fds.open(path)
		if err != nil {
			return err
		}
		if byFD {
			err = unix.FsconfigSetFd(fsfd, key, fd)
		} else {
			err = unix.FsconfigSetString(fsfd, key, shortPath(path, fd))
		}
		if err != nil {
			return fmt.Errorf("fsconfig %s %s: %w%s", key, path, err, sysx.FsLog(fsfd))
		}
		return nil
	}

	// Names leaked mounts in mountinfo.
	if err := unix.FsconfigSetString(fsfd, "source", mountSource); err != nil {
		return fmt.Errorf("fsconfig source: %w%s", err, sysx.FsLog(fsfd))
	}
	for i, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("%w: %w", errMethodUnsupported, err)
			}
			return err
		}
	}
	if upper != "" {
		if err := set("upperdir", upper); err != nil {
			return err
		}
		if err := set("workdir", work); err != nil {
			return err
		}
	} else if len(lowers) == 1 {
		if err := set("datadir+", target); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("%w: %w", errNoDataLayers, err)
			}
			return err
		}
	}
	for _, o := range overlayOptions {
		if err := unix.FsconfigSetString(fsfd, o[0], o[1]); err != nil {
			return fmt.Errorf("fsconfig %s=%s: %w%s", o[0], o[1], err, sysx.FsLog(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("fsconfig create: %w%s", err, sysx.FsLog(fsfd))
	}
	var attrs int
	if upper == "" {
		attrs = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, sysx.FsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// fsconfigMaxString is the longest string fsconfig(2) accepts (it copies at
// most 256 bytes including the terminating NUL).
const fsconfigMaxString = 255

// shortPath returns path, or the /proc/self/fd name of its open descriptor
// when path is too long for fsconfig.
func shortPath(path string, fd int) string {
	if len(path) <= fsconfigMaxString {
		return path
	}
	return procFD(fd)
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountClassic mounts with mount(2). Its option string is capped at one page,
// so each layer is named by /proc/self/fd/N of an O_PATH descriptor — about
// 18 bytes whatever the layer's path, room for some 200 layers. (Naming
// layers relative to one open common parent would not do: content-addressed
// layer names alone are ~70 bytes.) Without /proc, paths are used as they
// are, escaped.
func mountClassic(lowers []string, upper, work, target string) error {
	var fds fdSet
	defer fds.close()
	useProc := procFDUsable()
	name := func(path string) (string, error) {
		fd, err := fds.open(path)
		if err != nil {
			return "", err
		}
		if useProc {
			return procFD(fd), nil
		}
		return escapeOption(path), nil
	}

	var b strings.Builder
	b.WriteString("lowerdir=")
	for i, l := range lowers {
		n, err := name(l)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(n)
	}
	if upper != "" {
		u, err := name(upper)
		if err != nil {
			return err
		}
		w, err := name(work)
		if err != nil {
			return err
		}
		b.WriteString(",upperdir=" + u + ",workdir=" + w)
	} else if len(lowers) == 1 {
		// A data-only layer, as in mountFsconfig ("::" separates them).
		t, err := name(target)
		if err != nil {
			return err
		}
		b.WriteString("::" + t)
	}
	for _, o := range overlayOptions {
		b.WriteString("," + o[0] + "=" + o[1])
	}
	data := b.String()
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("mount options are %d bytes, mount(2) takes less than %d", len(data), os.Getpagesize())
	}
	var flags uintptr
	if upper == "" {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount(mountSource, target, "overlay", flags, data); err != nil {
		if upper == "" && len(lowers) == 1 && errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: %w", errNoDataLayers, err)
		}
		return fmt.Errorf("mount(2) overlay: %w", err)
	}
	return nil
}

// escapeOption escapes the characters overlayfs' option parser splits on.
func escapeOption(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`)
	return r.Replace(s)
}

func procFDUsable() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// bindMount mounts src at target, read-only if ro.
func bindMount(src, target string, ro bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.O_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", src, err)
		}
		if ro {
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				_ = unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount %s read-only: %w", target, err)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(fd)
	if ro {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fmt.Errorf("mount_setattr read-only: %w", err)
		}
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// Unmount unmounts target. It does not detach lazily: a mount still in use
// (a process left running in the stage) is an error, not a layer that keeps
// changing after it was committed.
func Unmount(target string) error {
	if err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// fdSet holds O_PATH descriptors naming layers until the mount is made.
type fdSet []int

func (s *fdSet) open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	*s = append(*s, fd)
	return fd, nil
}

func (s *fdSet) close() {
	for _, fd := range *s {
		unix.Close(fd)
	}
	*s = nil
}

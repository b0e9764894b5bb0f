package sandbox

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/internal/sysx"
)

// Child is the sandbox side of a Run, handed to the Func: it mounts API
// filesystems into an image root, runs commands there and undoes what it
// did. It is not safe for concurrent use.
type Child struct {
	// undo holds what MountAPI and Bind did, undone last first.
	undo []func() error
	// scratch holds the st_dev of tmpfs mounts made here: entries created
	// on them vanish with the mount and are not recorded for removal.
	scratch map[uint64]bool
	// services holds BlockServices undos the Func has not run yet.
	services []func() error
}

// Cleanup unmounts everything MountAPI and Bind mounted, last first, and
// removes the mount points and placeholder files they created, so the image
// tree holds no trace of the sandbox. It carries on past failures and
// returns them all. Calling it again does nothing.
//
// The worker calls it (and any BlockServices undo not yet called) after the
// Func returns, so a Func need not; a Func calls it when it needs the tree
// clean before it returns, e.g. to hash it.
func (c *Child) Cleanup() error { return c.unwind(0) }

// unwind undoes the entries above mark.
func (c *Child) unwind(mark int) error {
	var errs []error
	for len(c.undo) > mark {
		u := c.undo[len(c.undo)-1]
		c.undo = c.undo[:len(c.undo)-1]
		if err := u(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// finish is the worker's cleanup after the Func.
func (c *Child) finish() error {
	var errs []error
	for i := len(c.services) - 1; i >= 0; i-- {
		errs = append(errs, c.services[i]())
	}
	c.services = nil
	errs = append(errs, c.Cleanup())
	return errors.Join(errs...)
}

func (c *Child) push(u func() error) { c.undo = append(c.undo, u) }

const (
	// The kernel's MAXSYMLINKS, for the links we follow ourselves.
	maxSymlinks = 40
)

func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open root %s: %w", root, err)
	}
	return fd, nil
}

// openInRoot opens rel (relative, clean) below rootfd as if rootfd were /.
func openInRoot(rootfd int, rel string, flags uint64) (int, error) {
	return sysx.OpenInRoot(rootfd, rel, flags)
}

// cleanRel turns an image path (absolute or not) into the relative form
// openat2 takes; ".." cannot climb above the root, as at the kernel's "/".
func cleanRel(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// inRootPath is where fd (opened below rootfd) is, relative to the root.
func inRootPath(rootfd, fd int) (string, error) {
	root, err := readlink(fdPath(rootfd))
	if err != nil {
		return "", err
	}
	p, err := readlink(fdPath(fd))
	if err != nil {
		return "", err
	}
	if p == root {
		return ".", nil
	}
	if root == "/" {
		return p[1:], nil
	}
	rel, ok := strings.CutPrefix(p, root+"/")
	if !ok {
		return "", fmt.Errorf("%s is not below the root %s", p, root)
	}
	return rel, nil
}

func readlink(p string) (string, error) { return readlinkat(unix.AT_FDCWD, p) }

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// ensure opens image path p inside the root (an O_PATH descriptor),
// creating it when missing: a directory if dir, else an empty file, with
// missing parents. Symlinks, dangling ones included, are followed inside the
// root as a chrooted process would see them, so what is created is what the
// chroot will find at p. Everything created on the image (not on a scratch
// tmpfs of ours) is recorded for Cleanup to remove.
func (c *Child) ensure(rootfd int, p string, dir bool) (int, error) {
	return c.ensureN(rootfd, cleanRel(p), dir, 0)
}

func (c *Child) ensureN(rootfd int, rel string, dir bool, depth int) (int, error) {
	if depth > maxSymlinks {
		return -1, fmt.Errorf("/%s: %w", rel, unix.ELOOP)
	}
	fd, err := openInRoot(rootfd, rel, unix.O_PATH)
	if err == nil {
		if err := checkKind(fd, dir); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("/%s: %w", rel, err)
		}
		return fd, nil
	}
	if err != unix.ENOENT || rel == "." {
		return -1, fmt.Errorf("open /%s in the image: %w", rel, err)
	}
	parent, name := path.Split(rel)
	pfd, err := c.ensureN(rootfd, cleanRel(parent), true, depth+1)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
		// A dangling symlink: create its target, inside the root.
		target, err := readlinkat(pfd, name)
		base := "."
		if err == nil && !path.IsAbs(target) {
			// Relative to where the link really is, which differs from
			// parent when parent went through symlinks.
			base, err = inRootPath(rootfd, pfd)
		}
		unix.Close(pfd)
		if err != nil {
			return -1, fmt.Errorf("/%s: %w", rel, err)
		}
		if !path.IsAbs(target) {
			target = path.Join("/"+base, target)
		}
		return c.ensureN(rootfd, cleanRel(target), dir, depth+1)
	case err == nil:
		unix.Close(pfd)
		return -1, fmt.Errorf("open /%s in the image: appeared while resolving it", rel)
	case err != unix.ENOENT:
		unix.Close(pfd)
		return -1, fmt.Errorf("/%s: %w", rel, err)
	}

	if dir {
		err = unix.Mkdirat(pfd, name, 0o755)
	} else {
		var f int
		f, err = unix.Openat(pfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(f)
		}
	}
	if err != nil {
		unix.Close(pfd)
		return -1, fmt.Errorf("create /%s in the image: %w", rel, err)
	}
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil || c.scratch[pst.Dev] {
		unix.Close(pfd)
	} else if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		where, dev, ino := "/"+rel, st.Dev, st.Ino
		c.push(func() error {
			defer unix.Close(pfd)
			return removeIfSame(pfd, name, dir, dev, ino, where)
		})
	} else {
		unix.Close(pfd)
	}
	fd, err = openInRoot(rootfd, rel, unix.O_PATH)
	if err != nil {
		return -1, fmt.Errorf("open /%s in the image: %w", rel, err)
	}
	return fd, nil
}

func checkKind(fd int, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case dir && !isDir:
		return unix.ENOTDIR
	case !dir && isDir:
		return unix.EISDIR
	}
	return nil
}

// removeIfSame removes name from dirfd if it is still the entry (dev, ino)
// the sandbox created; something else in its place is left alone.
func removeIfSame(dirfd int, name string, dir bool, dev, ino uint64, where string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("remove %s: %w", where, err)
	}
	if st.Dev != dev || st.Ino != ino {
		return fmt.Errorf("remove %s: replaced since the sandbox created it; left in place", where)
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(dirfd, name, flags); err != nil {
		return fmt.Errorf("remove %s: %w", where, err)
	}
	return nil
}

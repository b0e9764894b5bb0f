package fsroot

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Symlink creates a symlink at p with the verbatim target, atomically
// replacing an existing file or symlink. A directory at p is an error.
func (r *Root) Symlink(target, p string) error {
	if err := checkNotRoot("symlink", p); err != nil {
		return err
	}
	if err := r.symlink(target, p); err != nil {
		return &fs.PathError{Op: "symlink", Path: p, Err: err}
	}
	return nil
}

func (r *Root) symlink(target, p string) error {
	dirfd, name, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	return symlinkAt(dirfd, name, target, -1, -1)
}

// symlinkAt atomically replaces the non-directory name in dirfd with a
// symlink, owned by uid:gid unless they are -1.
func symlinkAt(dirfd int, name, target string, uid, gid int) error {
	if target == "" {
		return errors.New("empty symlink target")
	}
	if err := notDir(dirfd, name); err != nil {
		return err
	}
	var tmp string
	err := withTempName(func(t string) error {
		tmp = t
		return unix.Symlinkat(target, dirfd, t)
	})
	if err != nil {
		return err
	}
	if uid != -1 || gid != -1 {
		err = unix.Fchownat(dirfd, tmp, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
	}
	return err
}

// Link creates newpath as a hard link to oldpath. A symlink at oldpath is
// linked itself, not its target (linkat without AT_SYMLINK_FOLLOW, as tar
// expects). An existing newpath is an error.
func (r *Root) Link(oldpath, newpath string) error {
	return r.twoPaths("link", oldpath, newpath, func(ofd int, oname string, nfd int, nname string) error {
		return unix.Linkat(ofd, oname, nfd, nname, 0)
	})
}

// Rename renames oldpath to newpath with rename(2) semantics; neither final
// component is followed.
func (r *Root) Rename(oldpath, newpath string) error {
	return r.twoPaths("rename", oldpath, newpath, func(ofd int, oname string, nfd int, nname string) error {
		return unix.Renameat(ofd, oname, nfd, nname)
	})
}

// twoPaths resolves the parents of two image paths (neither final
// component followed, neither the root) and calls op on them.
func (r *Root) twoPaths(opName, oldpath, newpath string, op func(ofd int, oname string, nfd int, nname string) error) error {
	fail := func(err error) error { return &os.LinkError{Op: opName, Old: oldpath, New: newpath, Err: err} }
	for _, p := range []string{oldpath, newpath} {
		if err := checkNotRoot(opName, p); err != nil {
			return fail(unwrapPathError(err))
		}
	}
	ofd, oname, err := r.parent(oldpath)
	if err != nil {
		return fail(err)
	}
	defer closeFd(ofd)
	nfd, nname, err := r.parent(newpath)
	if err != nil {
		return fail(err)
	}
	defer closeFd(nfd)
	if err := op(ofd, oname, nfd, nname); err != nil {
		return fail(err)
	}
	return nil
}

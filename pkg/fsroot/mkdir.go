package fsroot

import (
	"fmt"
	"io/fs"
	"path"

	"golang.org/x/sys/unix"
)

// MkdirAll creates p and any missing parents with exactly perm and owner
// 0:0. Existing directories, including ones reached through symlinks inside
// the root, are left untouched.
func (r *Root) MkdirAll(p string, perm fs.FileMode) error {
	if err := checkPath("mkdir", p); err != nil {
		return err
	}
	mode, err := unixMode(perm)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	fd, err := r.mkdirAll(p, mode)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	closeFd(fd)
	return nil
}

// mkdirAll returns an O_PATH fd of directory p, creating what is missing.
func (r *Root) mkdirAll(p string, mode uint32) (int, error) {
	fd, err := r.open(p, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT || p == "/" {
		return fd, err
	}
	pfd, err := r.mkdirAll(path.Dir(p), mode)
	if err != nil {
		return -1, err
	}
	defer closeFd(pfd)
	fd, err = mkdirIn(pfd, path.Base(p), mode, 0, 0)
	if err == unix.EEXIST {
		// Someone else made it, or it is a dangling symlink: take what
		// resolves now, which fails for the dangling symlink as mkdir -p does.
		if fd, err2 := r.open(p, unix.O_PATH|unix.O_DIRECTORY); err2 == nil {
			return fd, nil
		}
		return -1, notADir(pfd, path.Base(p), p)
	}
	return fd, err
}

// notADir explains why an existing entry cannot be used as a directory.
func notADir(dirfd int, name, p string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if target, err := readlinkat(dirfd, name); err == nil {
			return fmt.Errorf("%s is a symlink to %q, which does not resolve to a directory in the image: %w", p, target, fs.ErrExist)
		}
	}
	return fmt.Errorf("%s is a %s, not a directory: %w", p, typeName(st.Mode), fs.ErrExist)
}

// mkdirIn creates directory name in dirfd with exact mode and owner and
// returns an O_PATH fd of it.
func mkdirIn(dirfd int, name string, mode uint32, uid, gid int) (int, error) {
	// Mode 0 until the owner is right, so the directory is never more open
	// than asked for, whatever the umask.
	if err := unix.Mkdirat(dirfd, name, 0); err != nil {
		return -1, err
	}
	// NOFOLLOW: if the new directory was swapped for a symlink, fail.
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := setOwnerMode(fd, mode, uid, gid); err != nil {
		closeFd(fd)
		return -1, err
	}
	return fd, nil
}

// setOwnerMode sets the owner, then (because chown clears setuid and
// setgid) the exact mode of a non-symlink O_PATH fd.
func setOwnerMode(fd int, mode uint32, uid, gid int) error {
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	return chmodFd(fd, mode)
}

// Mkdir creates directory p with exactly perm and owner uid:gid, or sets
// them on an existing directory. A symlink at p is not followed: it is an
// error like any other non-directory, because changing a directory the
// image only points to is rarely what a plan meant.
func (r *Root) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	if err := checkPath("mkdir", p); err != nil {
		return err
	}
	if err := r.mkdir(p, perm, uid, gid); err != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	return nil
}

func (r *Root) mkdir(p string, perm fs.FileMode, uid, gid int) error {
	mode, err := unixMode(perm)
	if err != nil {
		return err
	}
	if err := checkOwner(uid, gid); err != nil {
		return err
	}
	dirfd, name, err := r.entry(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	fd, err := mkdirIn(dirfd, name, mode, uid, gid)
	if err == nil {
		closeFd(fd)
		return nil
	}
	if err != unix.EEXIST {
		return err
	}
	fd, err = unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer closeFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("exists as a %s, not a directory: %w", typeName(st.Mode), fs.ErrExist)
	}
	return setOwnerMode(fd, mode, uid, gid)
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "file of unknown type"
}

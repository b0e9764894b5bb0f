package fsroot

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// Lchown sets the owner of p without following a final symlink. As with
// os.Lchown, -1 leaves that id unchanged; note that the kernel clears
// setuid and setgid on a file whose owner changes, so Chmod afterwards.
func (r *Root) Lchown(p string, uid, gid int) error {
	if err := checkPath("lchown", p); err != nil {
		return err
	}
	if err := r.lchown(p, uid, gid); err != nil {
		return &fs.PathError{Op: "lchown", Path: p, Err: err}
	}
	return nil
}

func (r *Root) lchown(p string, uid, gid int) error {
	// -1 is allowed here, unlike everywhere else: it keeps that id.
	u, g := max(uid, 0), max(gid, 0)
	if uid < -1 || gid < -1 || checkOwner(u, g) != nil {
		return fmt.Errorf("%w %d:%d", ErrInvalidOwner, uid, gid)
	}
	dirfd, name, err := r.entry(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	return unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// Chmod sets the exact mode of p (umask does not apply). A symlink at p is
// an error: its mode means nothing, and following it is what Chmod must not
// silently do.
func (r *Root) Chmod(p string, perm fs.FileMode) error {
	if err := checkPath("chmod", p); err != nil {
		return err
	}
	if err := r.chmod(p, perm); err != nil {
		return &fs.PathError{Op: "chmod", Path: p, Err: err}
	}
	return nil
}

func (r *Root) chmod(p string, perm fs.FileMode) error {
	mode, err := unixMode(perm)
	if err != nil {
		return err
	}
	dirfd, name, err := r.entry(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer closeFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrSymlink
	}
	return chmodFd(fd, mode)
}

// Lutimes sets the access and modification times of p without following a
// final symlink. A zero time leaves that timestamp unchanged.
func (r *Root) Lutimes(p string, atime, mtime time.Time) error {
	if err := checkPath("lutimes", p); err != nil {
		return err
	}
	dirfd, name, err := r.entry(p)
	if err == nil {
		defer closeFd(dirfd)
		ts := []unix.Timespec{timespec(atime), timespec(mtime)}
		err = unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return &fs.PathError{Op: "lutimes", Path: p, Err: err}
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	// Not UnixNano, which overflows after 2262.
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

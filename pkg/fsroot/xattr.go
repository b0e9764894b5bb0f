package fsroot

import (
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"
)

// Lsetxattr sets the extended attribute attr of p to data, without
// following a final symlink.
func (r *Root) Lsetxattr(p, attr string, data []byte) error {
	if err := checkPath("lsetxattr", p); err != nil {
		return err
	}
	if err := r.lsetxattr(p, attr, data); err != nil {
		return &fs.PathError{Op: "lsetxattr", Path: p, Err: err}
	}
	return nil
}

func (r *Root) lsetxattr(p, attr string, data []byte) error {
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
	// fsetxattr refuses O_PATH fds, and there is no lsetxattrat before
	// Linux 6.13. Through the fd's magic link the kernel lands on exactly
	// the pinned inode, a symlink included, without following it further.
	return unix.Setxattr("/proc/self/fd/"+strconv.Itoa(fd), attr, data, 0)
}

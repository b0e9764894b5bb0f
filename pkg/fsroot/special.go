package fsroot

import (
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Mknod creates a FIFO, character device, block device or socket at p.
// mode holds the type (fs.ModeNamedPipe, fs.ModeDevice|fs.ModeCharDevice,
// fs.ModeDevice, fs.ModeSocket) and exact permission bits; the umask does
// not apply. The owner is the caller's; use Lchown. An existing p is an
// error.
func (r *Root) Mknod(p string, mode fs.FileMode, major, minor uint32) error {
	if err := checkNotRoot("mknod", p); err != nil {
		return err
	}
	if err := r.mknod(p, mode, major, minor); err != nil {
		return &fs.PathError{Op: "mknod", Path: p, Err: err}
	}
	return nil
}

func (r *Root) mknod(p string, mode fs.FileMode, major, minor uint32) error {
	var typ uint32
	switch mode.Type() {
	case fs.ModeNamedPipe:
		typ = unix.S_IFIFO
	case fs.ModeDevice | fs.ModeCharDevice:
		typ = unix.S_IFCHR
	case fs.ModeDevice:
		typ = unix.S_IFBLK
	case fs.ModeSocket:
		typ = unix.S_IFSOCK
	default:
		return fmt.Errorf("%w %v: not a FIFO, device or socket", ErrInvalidMode, mode)
	}
	perm, err := unixMode(mode &^ fs.ModeType)
	if err != nil {
		return err
	}
	dirfd, name, err := r.parent(p)
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	// Permissions 0 until set exactly, as in mkdirIn.
	if err := unix.Mknodat(dirfd, name, typ, int(unix.Mkdev(major, minor))); err != nil {
		return err
	}
	// O_PATH never opens the device or FIFO itself.
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer closeFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != typ {
		return fmt.Errorf("replaced by a %s while being created", typeName(st.Mode))
	}
	return chmodFd(fd, perm)
}

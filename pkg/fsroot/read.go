package fsroot

import (
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Stat returns the file info of p, following symlinks inside the root.
func (r *Root) Stat(p string) (fs.FileInfo, error) {
	return r.stat("stat", p, 0)
}

// Lstat is Stat without following a final symlink.
func (r *Root) Lstat(p string) (fs.FileInfo, error) {
	return r.stat("lstat", p, unix.O_NOFOLLOW)
}

func (r *Root) stat(op, p string, flags uint64) (fs.FileInfo, error) {
	if err := checkPath(op, p); err != nil {
		return nil, err
	}
	fd, err := r.open(p, unix.O_PATH|flags)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: p, Err: err}
	}
	// os builds the FileInfo so that Sys() is a *syscall.Stat_t, like os.Lstat.
	f := os.NewFile(uintptr(fd), path.Base(p))
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: p, Err: unwrapPathError(err)}
	}
	return fi, nil
}

// Open opens a regular file or directory read-only, following symlinks
// inside the root. Other file types are refused (see the package doc).
func (r *Root) Open(p string) (*os.File, error) {
	if err := checkPath("open", p); err != nil {
		return nil, err
	}
	fd, err := r.open(p, unix.O_PATH)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer closeFd(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		return nil, &fs.PathError{Op: "open", Path: p, Err: ErrUnsupportedType}
	}
	// Reopening the checked O_PATH fd through its magic link opens exactly
	// that inode; opening p again could meet a swapped-in device or FIFO.
	nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	// Name the file by its image path; the /proc path means nothing later.
	return os.NewFile(uintptr(nfd), p), nil
}

// ReadFile returns the content of the regular file p, following symlinks
// inside the root.
func (r *Root) ReadFile(p string) ([]byte, error) {
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: unix.EISDIR}
	}
	return io.ReadAll(f)
}

// Readlink returns the target of the symlink p, verbatim.
func (r *Root) Readlink(p string) (string, error) {
	if err := checkPath("readlink", p); err != nil {
		return "", err
	}
	fd, err := r.open(p, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
	}
	defer closeFd(fd)
	// readlinkat(fd, "") on anything but a symlink says ENOENT, which would
	// read as "p is missing"; say what readlink(2) says instead.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: unix.EINVAL}
	}
	target, err := readlinkat(fd, "")
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
	}
	return target, nil
}

// Resolve returns the host path p resolves to inside the root, following a
// final symlink; it is always under Dir(). If the final component (or the
// end of its symlink chain) does not exist, the result names the file a
// write would create. The answer is only as stable as the tree: hand it to
// external tools only while nothing else changes the image.
func (r *Root) Resolve(p string) (string, error) {
	if err := checkPath("resolve", p); err != nil {
		return "", err
	}
	host, err := r.resolve(p)
	if err != nil {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: err}
	}
	return host, nil
}

func (r *Root) resolve(p string) (string, error) {
	fd, err := r.open(p, unix.O_PATH)
	if err == nil {
		defer closeFd(fd)
		img, err := r.imagePath(fd) // also proves the result is under Dir
		if err != nil {
			return "", err
		}
		return filepath.Join(r.dir, img), nil
	}
	if err != unix.ENOENT {
		return "", err
	}
	// Joining the name is only safe once the name is not a dangling
	// symlink: an external tool would follow it on the host.
	dirfd, name, err := r.follow(p)
	if err != nil {
		return "", err
	}
	defer closeFd(dirfd)
	img, err := r.imagePath(dirfd)
	if err != nil {
		return "", err
	}
	return filepath.Join(r.dir, img, name), nil
}

// unwrapPathError strips the *fs.PathError os adds, so ours can name the
// image path instead of a /proc or base name.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/internal/sysx"
)

// Sentinel errors callers test with errors.Is.
var (
	// ErrInvalidPath reports an image path that is not absolute and clean.
	ErrInvalidPath = errors.New("invalid image path")
	// ErrInvalidMode reports a mode with bits other than permissions,
	// setuid, setgid and sticky.
	ErrInvalidMode = errors.New("invalid mode")
	// ErrInvalidOwner reports a negative or reserved uid or gid.
	ErrInvalidOwner = errors.New("invalid owner")
	// ErrUnsupportedType reports a file that is not a regular file,
	// directory or symlink where only those are allowed.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrMountPoint reports a directory RemoveAll will not descend into.
	ErrMountPoint = errors.New("is a mount point")
	// ErrSymlink reports a symlink where the operation needs its target's
	// kind of file and must not follow it.
	ErrSymlink = errors.New("is a symlink")
	// ErrRoot reports an operation that must not touch the image root itself.
	ErrRoot = errors.New("not allowed on the image root")
)

const (
	resolveInRoot = sysx.InRoot
	// Same limit as the kernel's MAXSYMLINKS for the final component we
	// resolve ourselves.
	maxSymlinks = 40
)

// Root is an image root directory. Its methods may be called concurrently;
// Close must not race with them.
type Root struct {
	fd  int    // O_PATH|O_DIRECTORY
	dir string // canonical host path of fd
}

// Open opens the image root dir. Symlinks in dir itself are followed on the
// host: the caller chose that path.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open root", Path: dir, Err: err}
	}
	canon, err := fdPath(fd)
	if err != nil {
		closeFd(fd)
		return nil, &fs.PathError{Op: "open root", Path: dir, Err: err}
	}
	if canon == "/" {
		closeFd(fd)
		return nil, &fs.PathError{Op: "open root", Path: dir, Err: errors.New("refusing the host's / as an image root")}
	}
	// Fail here on an old kernel rather than halfway through a build.
	probe, err := openat2(fd, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		closeFd(fd)
		if errors.Is(err, unix.ENOSYS) {
			err = fmt.Errorf("openat2 is unavailable (Linux 5.6 or later is required): %w", err)
		}
		return nil, &fs.PathError{Op: "open root", Path: dir, Err: err}
	}
	closeFd(probe)
	return &Root{fd: fd, dir: canon}, nil
}

// Close releases the root's directory descriptor.
func (r *Root) Close() error {
	if r.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// Dir returns the canonical host path of the root (symlinks in the path given
// to Open resolved), the prefix of every path Resolve returns.
func (r *Root) Dir() string { return r.dir }

// checkPath enforces absolute, clean image paths; a clean absolute path never
// contains "." or "..", so nothing the caller passes can climb.
func checkPath(op, p string) error {
	var why string
	switch {
	case p == "":
		why = "empty"
	case p[0] != '/':
		why = "not absolute"
	case strings.IndexByte(p, 0) >= 0:
		why = "contains NUL"
	case path.Clean(p) != p:
		why = "not clean (want " + path.Clean(p) + ")"
	default:
		return nil
	}
	return &fs.PathError{Op: op, Path: p, Err: fmt.Errorf("%w: %s", ErrInvalidPath, why)}
}

// checkNotRoot is checkPath for operations on an entry of a directory.
func checkNotRoot(op, p string) error {
	if err := checkPath(op, p); err != nil {
		return err
	}
	if p == "/" {
		return &fs.PathError{Op: op, Path: p, Err: ErrRoot}
	}
	return nil
}

// rel is p relative to the root fd, as openat2 wants it.
func rel(p string) string {
	if p == "/" {
		return "."
	}
	return p[1:]
}

func openat2(dirfd int, name string, flags uint64) (int, error) {
	return sysx.OpenInRoot(dirfd, name, flags)
}

// open resolves image path p inside the root.
func (r *Root) open(p string, flags uint64) (int, error) {
	return openat2(r.fd, rel(p), flags)
}

// parent opens the directory holding p's final component (resolved inside
// the root) and returns it with that component's name. p must not be "/".
func (r *Root) parent(p string) (dirfd int, name string, err error) {
	fd, err := r.open(path.Dir(p), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", err
	}
	return fd, path.Base(p), nil
}

// entry is like parent but also accepts "/", addressed as "." in the root,
// so *at calls with AT_SYMLINK_NOFOLLOW can act on any path.
func (r *Root) entry(p string) (dirfd int, name string, err error) {
	if p == "/" {
		fd, err := r.open("/", unix.O_PATH|unix.O_DIRECTORY)
		return fd, ".", err
	}
	return r.parent(p)
}

// follow resolves symlinks in p's final component inside the root and
// returns the directory and name the chain ends at, which may not exist yet:
// like cp, a write through a dangling symlink creates its target.
func (r *Root) follow(p string) (dirfd int, name string, err error) {
	// Let the kernel resolve first: an existing target is found with its
	// semantics, and loops and magic links fail with ELOOP as for every
	// other operation. Only a dangling chain is walked by hand, and it holds
	// no magic link: the kernel would have stopped there instead. (Read as
	// text, /proc/self/root would say "/" and be reinterpreted.)
	fd, err := r.open(p, unix.O_PATH)
	if err == nil {
		q, err := r.imagePath(fd)
		closeFd(fd)
		if err != nil {
			return -1, "", err
		}
		if q == "/" {
			return -1, "", unix.EISDIR
		}
		return r.parent(q)
	}
	if err != unix.ENOENT {
		return -1, "", err
	}
	// Something in the chain is missing: walk it ourselves to find where.
	for range maxSymlinks {
		if p == "/" {
			return -1, "", unix.EISDIR
		}
		dirfd, name, err := r.parent(p)
		if err != nil {
			return -1, "", err
		}
		var st unix.Stat_t
		err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) || err == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return dirfd, name, nil
		}
		if err != nil {
			closeFd(dirfd)
			return -1, "", err
		}
		target, err := readlinkat(dirfd, name)
		base := "/"
		if err == nil && !path.IsAbs(target) {
			// Relative targets are relative to where the link really is,
			// which differs from path.Dir(p) when p's parents are symlinks.
			base, err = r.imagePath(dirfd)
		}
		closeFd(dirfd)
		if err != nil {
			return -1, "", err
		}
		// Join cleans, and a cleaned ".." at "/" stays at "/", exactly as
		// the kernel treats ".." at a RESOLVE_IN_ROOT root.
		p = path.Join(base, target)
	}
	return -1, "", unix.ELOOP
}

// imagePath returns the image path of an fd opened inside the root.
func (r *Root) imagePath(fd int) (string, error) {
	host, err := fdPath(fd)
	if err != nil {
		return "", err
	}
	if host == r.dir {
		return "/", nil
	}
	if rest, ok := strings.CutPrefix(host, r.dir+"/"); ok {
		return "/" + rest, nil
	}
	return "", fmt.Errorf("%s is outside the root %s", host, r.dir)
}

// fdPath returns the host path the kernel records for fd.
func fdPath(fd int) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("read the path of fd %d: %w", fd, err)
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") {
		return "", fmt.Errorf("fd %d has no usable path (%q)", fd, p)
	}
	return p, nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(buf[:m]), nil
		}
	}
}

func closeFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// useFchmodat2 is switched off by tests to exercise the pre-6.6 fallback.
var useFchmodat2 = true

// chmodFd sets exact mode bits on fd, which may be an O_PATH descriptor
// (fchmod refuses those) but must not refer to a symlink.
func chmodFd(fd int, mode uint32) error {
	if useFchmodat2 {
		err := unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
		if err != unix.EOPNOTSUPP { // x/sys maps a missing fchmodat2 to EOPNOTSUPP
			return err
		}
	}
	// The fd's magic link reaches exactly the inode fd refers to.
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// unixMode converts permission bits (with setuid, setgid and sticky) to the
// kernel's encoding; anything else is a caller bug, not something to ignore.
func unixMode(m fs.FileMode) (uint32, error) {
	if m&^permBits != 0 {
		return 0, fmt.Errorf("%w %v: only permission, setuid, setgid and sticky bits are allowed", ErrInvalidMode, m)
	}
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u, nil
}

// checkOwner rejects ids the kernel would read as "leave unchanged" (-1) or
// that do not fit a uid_t.
func checkOwner(uid, gid int) error {
	for _, id := range []int{uid, gid} {
		if id < 0 || uint64(id) >= math.MaxUint32 {
			return fmt.Errorf("%w %d:%d", ErrInvalidOwner, uid, gid)
		}
	}
	return nil
}

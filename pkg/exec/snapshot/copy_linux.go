package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// This file copies single entries with all their metadata. Nothing here
// follows a symlink: entries are examined with lstat, opened with O_NOFOLLOW,
// and changed with the l* calls or AT_SYMLINK_NOFOLLOW. Parents are always
// directories the caller created or examined first, top-down.

// fileID identifies an inode.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{dev: st.Dev, ino: st.Ino} }

func lstat(path string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return &st, nil
}

func fileType(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

func isDir(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFDIR }

// isWhiteout reports whether st is an overlayfs whiteout: a character device
// 0:0.
func isWhiteout(st *unix.Stat_t) bool {
	return fileType(st) == unix.S_IFCHR && st.Rdev == 0
}

// openNoFollow opens path without following a final symlink and, where
// permitted, without updating its atime: copying a tree must not change the
// source, and a copy takes the atime the source had before it was read.
func openNoFollow(path string, flags int) (*os.File, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// readDirNames returns the sorted names in directory dir.
func readDirNames(dir string) ([]string, error) {
	f, err := openNoFollow(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

// Xattrs.

const (
	overlayXattrPrefix = "trusted.overlay."
	opaqueXattr        = "trusted.overlay.opaque"
)

// readXattrs returns all xattrs of path (not following symlinks); none where
// the filesystem has no xattrs.
func readXattrs(path string) (map[string][]byte, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]byte, len(names))
	for _, n := range names {
		v, err := getXattr(path, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, err
		}
		m[n] = v
	}
	return m, nil
}

func listXattrs(path string) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			n, err = unix.Llistxattr(path, nil)
			if err != nil {
				return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
			}
			size = n + 64
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

func getXattr(path, name string) ([]byte, error) {
	size := 128
	for {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			n, err = unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, &os.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
			}
			size = n + 64
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
		}
		return buf[:n], nil
	}
}

// withoutOverlayXattrs drops overlayfs' own xattrs, which are layer-format
// markers, not part of an entry's metadata.
func withoutOverlayXattrs(m map[string][]byte) map[string][]byte {
	for k := range m {
		if strings.HasPrefix(k, overlayXattrPrefix) {
			delete(m, k)
		}
	}
	return m
}

// syncXattrs makes the xattrs of path exactly want: a fresh entry may have
// inherited some (a default ACL), an existing one may carry stale ones.
// Security labels the kernel assigns and will not drop are left alone.
func syncXattrs(path string, want map[string][]byte) error {
	have, err := listXattrs(path)
	if err != nil {
		return err
	}
	for _, n := range have {
		if _, ok := want[n]; ok {
			continue
		}
		err := unix.Lremovexattr(path, n)
		if err == nil || errors.Is(err, unix.ENODATA) {
			continue
		}
		if strings.HasPrefix(n, "security.") && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
			continue
		}
		return &os.PathError{Op: "lremovexattr " + n, Path: path, Err: err}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := unix.Lsetxattr(path, n, want[n], 0); err != nil {
			return &os.PathError{Op: "lsetxattr " + n, Path: path, Err: err}
		}
	}
	return nil
}

// Metadata.

// setOwnerMode sets owner, then permission bits (chown clears setuid and
// setgid bits, so mode comes second); symlinks have no mode of their own.
func setOwnerMode(path string, st *unix.Stat_t) error {
	if err := unix.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return &os.PathError{Op: "lchown", Path: path, Err: err}
	}
	if fileType(st) == unix.S_IFLNK {
		return nil
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, st.Mode&07777, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// setMeta sets owner, mode and xattrs (after chown, which clears
// security.capability). Times come last and separately: for a directory,
// after its entries are written.
func setMeta(path string, st *unix.Stat_t, xattrs map[string][]byte) error {
	if err := setOwnerMode(path, st); err != nil {
		return err
	}
	return syncXattrs(path, xattrs)
}

func setTimes(path string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: path, Err: err}
	}
	return nil
}

// makeDir creates directory dst with the owner, mode and given xattrs of st;
// its times are set by the caller once its entries are written.
func makeDir(dst string, st *unix.Stat_t, xattrs map[string][]byte) error {
	if err := unix.Mkdir(dst, 0o700); err != nil {
		return &os.PathError{Op: "mkdir", Path: dst, Err: err}
	}
	return setMeta(dst, st, xattrs)
}

func makeWhiteout(path string) error {
	if err := unix.Mknod(path, unix.S_IFCHR, 0); err != nil {
		return &os.PathError{Op: "mknod whiteout", Path: path, Err: err}
	}
	return nil
}

// copier copies entries, keeping hardlinks among the copies.
type copier struct {
	// links maps an inode with several names to the destination of the first
	// name copied; later names become hardlinks to it.
	links map[fileID]string
}

func newCopier() copier { return copier{links: make(map[fileID]string)} }

// copyTree copies src (described by st) to the new path dst, recursively;
// dirXattrs, when not nil, replaces the xattrs of the top directory.
func (c *copier) copyTree(src, dst string, st *unix.Stat_t, dirXattrs map[string][]byte) error {
	xattrs, err := readXattrs(src)
	if err != nil {
		return err
	}
	xattrs = withoutOverlayXattrs(xattrs)
	if !isDir(st) {
		return c.copyNonDir(src, dst, st, xattrs)
	}
	if dirXattrs != nil {
		xattrs = dirXattrs
	}
	if err := makeDir(dst, st, xattrs); err != nil {
		return err
	}
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		s, d := filepath.Join(src, n), filepath.Join(dst, n)
		cst, err := lstat(s)
		if err != nil {
			return err
		}
		if err := c.copyTree(s, d, cst, nil); err != nil {
			return err
		}
	}
	return setTimes(dst, st)
}

// copyNonDir copies the non-directory src (described by st) to the new path
// dst with the given xattrs.
func (c *copier) copyNonDir(src, dst string, st *unix.Stat_t, xattrs map[string][]byte) error {
	id := idOf(st)
	if st.Nlink > 1 {
		if first, ok := c.links[id]; ok {
			if err := unix.Linkat(unix.AT_FDCWD, first, unix.AT_FDCWD, dst, 0); err != nil {
				return &os.LinkError{Op: "link", Old: first, New: dst, Err: err}
			}
			return nil
		}
	}
	var err error
	switch fileType(st) {
	case unix.S_IFREG:
		err = copyFile(src, dst, st)
	case unix.S_IFLNK:
		var target string
		if target, err = os.Readlink(src); err == nil {
			err = os.Symlink(target, dst)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err = unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			err = &os.PathError{Op: "mknod", Path: dst, Err: err}
		}
	default:
		err = fmt.Errorf("copy %s: unknown file type %#o", src, fileType(st))
	}
	if err != nil {
		return err
	}
	if err := setMeta(dst, st, xattrs); err != nil {
		return err
	}
	if err := setTimes(dst, st); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[id] = dst
	}
	return nil
}

// copyFile copies the contents of regular file src to the new file dst; the
// kernel copies in place (copy_file_range, reflinks where supported).
func copyFile(src, dst string, st *unix.Stat_t) error {
	in, err := openNoFollow(src, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer in.Close()
	var ist unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &ist); err != nil {
		return &os.PathError{Op: "fstat", Path: src, Err: err}
	}
	if idOf(&ist) != idOf(st) {
		return fmt.Errorf("copy %s: file replaced while copying", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if err := copyData(out, in, ist.Size); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// copyData copies the data extents of in to out and leaves holes as holes,
// as overlayfs copy-up does; io.Copy uses copy_file_range.
func copyData(out, in *os.File, size int64) error {
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole up to the end
		}
		if err != nil { // no SEEK_DATA here: copy it all
			if _, err := in.Seek(0, io.SeekStart); err != nil {
				return err
			}
			_, err = io.Copy(out, in)
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

// removeAll removes path and everything below it; a missing path is not an
// error.
func removeAll(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

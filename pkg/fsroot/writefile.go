package fsroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strconv"

	"golang.org/x/sys/unix"
)

// WriteOptions control WriteFile.
type WriteOptions struct {
	// Perm is the file's exact mode, including setuid, setgid and sticky;
	// the umask does not apply.
	Perm fs.FileMode
	// UID and GID own the file.
	UID, GID int
	// FollowSymlink writes through a symlink at the path to its target,
	// resolved inside the root, like cp; otherwise the symlink is replaced
	// by a regular file.
	FollowSymlink bool
	// MkdirParents creates missing parent directories (0755, owner 0:0).
	MkdirParents bool
}

// WriteFile writes data to p atomically: it fills a temporary file in the
// destination directory, gives it its exact owner and mode, and renames it
// over p, so p is never seen partial or with the wrong mode, and a failed
// write leaves p as it was. Writing onto a directory is an error.
func (r *Root) WriteFile(p string, data io.Reader, o WriteOptions) error {
	if err := checkNotRoot("write", p); err != nil {
		return err
	}
	if err := r.writeFile(p, data, o); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	return nil
}

func (r *Root) writeFile(p string, data io.Reader, o WriteOptions) error {
	mode, err := unixMode(o.Perm)
	if err != nil {
		return err
	}
	if err := checkOwner(o.UID, o.GID); err != nil {
		return err
	}
	if o.MkdirParents {
		fd, err := r.mkdirAll(path.Dir(p), 0o755)
		if err != nil {
			return err
		}
		closeFd(fd)
	}
	var dirfd int
	var name string
	if o.FollowSymlink {
		dirfd, name, err = r.follow(p)
	} else {
		dirfd, name, err = r.parent(p)
	}
	if err != nil {
		return err
	}
	defer closeFd(dirfd)
	return writeAt(dirfd, name, data, mode, o.UID, o.GID)
}

// writeAt atomically replaces the non-directory name in dirfd.
func writeAt(dirfd int, name string, data io.Reader, mode uint32, uid, gid int) (err error) {
	if err := notDir(dirfd, name); err != nil {
		return err
	}
	var tmp string
	var fd int
	err = withTempName(func(t string) error {
		var err error
		// O_EXCL never follows a symlink, even a dangling one.
		tmp = t
		fd, err = unix.Openat(dirfd, t, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	// os.File's ReadFrom uses copy_file_range when data is a host file.
	if _, err := io.Copy(f, data); err != nil {
		return err
	}
	// Owner before mode: chown clears setuid and setgid.
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	// No fsync: an image build syncs its output once at the end, and a
	// crash mid-build discards the tree anyway.
	err = f.Close()
	f = nil
	if err != nil {
		return unwrapPathError(err)
	}
	// rename(2) replaces a symlink at name rather than following it, and
	// fails with EISDIR if a directory appeared there meanwhile.
	return unix.Renameat(dirfd, tmp, dirfd, name)
}

// notDir fails with EISDIR if name in dirfd is a directory (not following a
// final symlink).
func notDir(dirfd int, name string) error {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return err
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return unix.EISDIR
	}
	return nil
}

// withTempName calls create with fresh hidden names until one is free.
func withTempName(create func(name string) error) error {
	var err error
	for range 100 {
		err = create(".imgplan-" + strconv.FormatUint(rand.Uint64(), 36) + ".tmp")
		if err != unix.EEXIST {
			return err
		}
	}
	return err
}

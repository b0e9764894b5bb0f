package fsroot

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// RemoveAll removes p and, if it is a directory, everything below it. A
// final symlink is removed, not followed; a missing p (or parent) is not an
// error; "/" is refused. It does not descend into mount points.
func (r *Root) RemoveAll(p string) error {
	if err := checkNotRoot("remove", p); err != nil {
		return err
	}
	dirfd, name, err := r.parent(p)
	if err == nil {
		defer closeFd(dirfd)
		err = removeAt(dirfd, name)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	return nil
}

// removeAt removes name from dirfd. Directories are emptied through file
// descriptors opened without following symlinks, so swapping a directory
// for a symlink mid-way cannot redirect the removal.
func removeAt(dirfd int, name string) error {
	var err error
	// Retries cover an entry changing type between our calls.
	for range 8 {
		err = unix.Unlinkat(dirfd, name, 0)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EISDIR {
			return err
		}
		var fd int
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch err {
		case nil:
		case unix.ENOTDIR, unix.ELOOP: // replaced by a file or symlink
			continue
		default:
			return err
		}
		if err = removeContents(fd); err != nil {
			return err
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		switch err {
		case nil, unix.ENOENT:
			return nil
		case unix.ENOTEMPTY, unix.EEXIST: // something was added meanwhile
			continue
		}
		return err
	}
	return err
}

// removeContents empties the directory fd and closes it.
func removeContents(fd int) error {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	// A bind-mounted host directory (or /dev, /proc) inside the root is not
	// the image's to empty.
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE, &stx); err != nil {
		return err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return ErrMountPoint
	}
	// Filesystems may skip entries when a directory changes while it is
	// read, so read again until a pass finds nothing.
	for {
		removed := false
		for {
			names, err := f.Readdirnames(1024)
			for _, n := range names {
				if err := removeAt(fd, n); err != nil {
					return err
				}
				removed = true
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return unwrapPathError(err)
			}
		}
		if !removed {
			return nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return unwrapPathError(err)
		}
	}
}

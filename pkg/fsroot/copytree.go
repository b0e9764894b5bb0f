package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CopyTree copies the host directory src into the root under dest: regular
// files, directories and symlinks (targets verbatim, never followed),
// keeping permission bits including setuid, setgid and sticky, with owner
// uid:gid on everything it writes. Hard links are copied as separate files
// and modification times are not kept (builds set them reproducibly).
//
// Any other file type in src is an error naming its host path, found before
// anything is written.
//
// dest itself is resolved like a parent directory (symlinks followed inside
// the root) and created, with missing parents 0755 0:0, if absent. Below
// dest the merge follows rsync with --keep-dirlinks:
//   - a directory merges into an existing directory, whose mode and owner
//     are left alone (copying overlay/etc must not chmod the image's /etc);
//   - a directory merges into what an existing symlink points to when that
//     resolves, inside the root, to a directory: a tree with bin/ lands in
//     usr/bin on a merged-/usr image instead of replacing the /bin link;
//   - otherwise a directory replaces an existing symlink or file, without
//     following the symlink;
//   - a file or symlink replaces an existing non-directory;
//   - an existing directory where src has a file or symlink is an error
//     naming both paths.
func (r *Root) CopyTree(src, dest string, uid, gid int) error {
	if err := checkPath("copytree", dest); err != nil {
		return err
	}
	return r.copyTree(src, dest, uid, gid)
}

func (r *Root) copyTree(src, dest string, uid, gid int) error {
	fail := func(err error) error { return fmt.Errorf("copy %s to %s: %w", src, dest, err) }
	if err := checkOwner(uid, gid); err != nil {
		return fail(err)
	}
	// The caller names src on the host; only its own symlink is followed.
	dir, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fail(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fail(err)
	}
	if !fi.IsDir() {
		return fail(errors.New("not a directory"))
	}
	if err := checkTree(dir); err != nil {
		return fail(err)
	}
	dfd, err := r.open(dest, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		dfd, err = r.mkdirDest(dest, fi.Mode(), uid, gid)
	}
	if err != nil {
		return fail(err)
	}
	defer closeFd(dfd)
	return r.copyDir(dir, dfd, dest, uid, gid)
}

// checkTree reports every file in src that CopyTree cannot copy.
func checkTree(src string) error {
	var errs []error
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if t := d.Type(); t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			errs = append(errs, fmt.Errorf("%s: %w (%v)", p, ErrUnsupportedType, t))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// mkdirDest creates a missing CopyTree destination.
func (r *Root) mkdirDest(dest string, m fs.FileMode, uid, gid int) (int, error) {
	mode, err := unixMode(m & permBits)
	if err != nil {
		return -1, err
	}
	pfd, err := r.mkdirAll(path.Dir(dest), 0o755)
	if err != nil {
		return -1, err
	}
	defer closeFd(pfd)
	return mkdirIn(pfd, path.Base(dest), mode, uid, gid)
}

// copyDir copies the entries of host directory src into dfd, which is img.
func (r *Root) copyDir(src string, dfd int, img string, uid, gid int) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), path.Join(img, e.Name())
		if err := r.copyEntry(s, dfd, e.Name(), d, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies src to name in dfd, which is img. Errors name both
// paths, once: a directory's entries report their own.
func (r *Root) copyEntry(src string, dfd int, name, img string, uid, gid int) error {
	wrap := func(err error) error { return fmt.Errorf("copy %s to %s: %w", src, img, err) }
	fi, err := os.Lstat(src)
	if err != nil {
		return wrap(err)
	}
	mode, err := unixMode(fi.Mode() & permBits)
	if err != nil {
		return wrap(err)
	}
	var st unix.Stat_t
	err = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil && err != unix.ENOENT {
		return wrap(err)
	}
	exists := err == nil
	isDir := exists && st.Mode&unix.S_IFMT == unix.S_IFDIR
	isLink := exists && st.Mode&unix.S_IFMT == unix.S_IFLNK

	switch t := fi.Mode().Type(); t {
	case fs.ModeDir:
		if isLink {
			// --keep-dirlinks: merge into the directory the link names.
			if lfd, err := r.open(img, unix.O_PATH|unix.O_DIRECTORY); err == nil {
				defer closeFd(lfd)
				return r.copyDir(src, lfd, img, uid, gid)
			}
		}
		cfd, err := enterDir(dfd, name, exists, isDir, mode, uid, gid)
		if err != nil {
			return wrap(err)
		}
		defer closeFd(cfd)
		return r.copyDir(src, cfd, img, uid, gid)
	case 0, fs.ModeSymlink:
		if isDir {
			return wrap(errors.New("destination is a directory"))
		}
		if t == 0 {
			err = copyFile(src, dfd, name, mode, uid, gid)
		} else {
			err = copySymlink(src, dfd, name, uid, gid)
		}
		if err != nil {
			return wrap(err)
		}
		return nil
	default:
		return wrap(fmt.Errorf("%w (%v)", ErrUnsupportedType, t))
	}
}

// enterDir returns an O_PATH fd of directory name in dfd, merging into an
// existing directory and replacing anything else.
func enterDir(dfd int, name string, exists, isDir bool, mode uint32, uid, gid int) (int, error) {
	if isDir {
		return unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if exists {
		// unlink never follows: a symlink to the host goes, its target stays.
		if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
			return -1, err
		}
	}
	return mkdirIn(dfd, name, mode, uid, gid)
}

func copyFile(src string, dfd int, name string, mode uint32, uid, gid int) error {
	// NOFOLLOW and NONBLOCK: if src changed since checkTree, fail rather
	// than follow a host symlink or block on a FIFO.
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w (%v)", ErrUnsupportedType, fi.Mode().Type())
	}
	return writeAt(dfd, name, f, mode, uid, gid)
}

func copySymlink(src string, dfd int, name string, uid, gid int) error {
	target, err := os.Readlink(src)
	if err != nil {
		return unwrapPathError(err)
	}
	return symlinkAt(dfd, name, target, uid, gid)
}

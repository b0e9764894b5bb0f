package outputs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// WriteTar writes the tree at dir to w as a tar stream that depends only
// on the tree's content: entries in sorted order named "./path", PAX
// headers (xattrs as SCHILY.xattr.*), numeric owners only, hardlinks as
// links, device nodes, and modification times clamped to epoch (no access
// or change times). Sockets are skipped: no archive format keeps them.
func WriteTar(w io.Writer, dir string, epoch int64) error {
	return writeTar(w, dir, epoch, false)
}

// WriteLayerTar writes a stored layer the same way, but keeping every
// time and the overlayfs attributes (trusted.overlay.*) that mark opaque
// directories: the archive is the layer itself, not an image of it.
func WriteLayerTar(w io.Writer, dir string) error {
	return writeTar(w, dir, keepAllTimes, true)
}

// keepAllTimes is an epoch no time is later than.
const keepAllTimes = 253402300799 // 9999-12-31T23:59:59Z

func writeTar(w io.Writer, dir string, epoch int64, overlay bool) error {
	tw := tar.NewWriter(w)
	links := map[uint64]string{} // inode → first name
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		name := "./"
		if rel != "." {
			name = "./" + filepath.ToSlash(rel)
		}
		h := &tar.Header{
			Name:    name,
			Mode:    int64(manifest.ModeOf(fi.Mode())),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: clamp(fi.ModTime(), epoch),
			Format:  tar.FormatPAX,
		}
		switch {
		case fi.IsDir():
			h.Typeflag = tar.TypeDir
			if rel != "." {
				h.Name += "/"
			}
		case fi.Mode().IsRegular():
			if st.Nlink > 1 {
				if first, ok := links[st.Ino]; ok {
					h.Typeflag, h.Linkname = tar.TypeLink, first
					break
				}
				links[st.Ino] = name
			}
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		case fi.Mode()&fs.ModeSymlink != 0:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeNamedPipe != 0:
			h.Typeflag = tar.TypeFifo
		case fi.Mode()&fs.ModeDevice != 0:
			h.Typeflag = tar.TypeBlock
			if fi.Mode()&fs.ModeCharDevice != 0 {
				h.Typeflag = tar.TypeChar
			}
			h.Devmajor, h.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
		}
		if err := addXattrs(h, p, overlay); err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// addXattrs records a file's extended attributes, sorted by name through
// the PAX record map (archive/tar writes records in sorted order).
func addXattrs(h *tar.Header, p string, overlay bool) error {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || !overlay && strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return fmt.Errorf("%s: xattr %s: %w", p, name, err)
		}
		val := make([]byte, vsize)
		if _, err := unix.Lgetxattr(p, name, val); err != nil {
			return fmt.Errorf("%s: xattr %s: %w", p, name, err)
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+name] = string(val)
	}
	return nil
}

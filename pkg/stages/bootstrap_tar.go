package stages

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imgplan/imgplan/pkg/fsroot"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// untarBootstrap unpacks a rootfs archive into the empty tree, keeping
// numeric owners, modes, links, device nodes, xattrs and times. Entries
// are written through the root, so absolute or ".."-laden symlinks in the
// archive resolve inside the tree; entries whose names climb out with ".."
// are refused.
func untarBootstrap(_ context.Context, env Env, p *BootstrapParams) error {
	src, err := env.Input(RoleSource)
	if err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReaderSize(f, 1<<20), p.Compression)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	defer r.Close()
	if err := Untar(r, env.Root()); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	return nil
}

// decompress wraps r by compression name (none, gzip, xz, zstd; bzip2
// for RPM repository metadata).
func decompress(r io.Reader, compression string) (io.ReadCloser, error) {
	switch compression {
	case "none", "":
		return io.NopCloser(r), nil
	case "gzip":
		return gzip.NewReader(r)
	case "xz":
		x, err := xz.NewReader(r)
		return io.NopCloser(x), err
	case "zstd":
		z, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("unknown compression %q", compression)
}

// Untar writes a tar stream into root.
func Untar(r io.Reader, root *fsroot.Root) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name, err := entryPath(h.Name)
		if err != nil {
			return err
		}
		if sparse(h) {
			// A sparse map can make a few bytes of archive claim exabytes
			// of holes; rootfs archives have no reason to hold one.
			return fmt.Errorf("entry %q: sparse entries are not supported (repack the archive without --sparse)", h.Name)
		}
		if name == "/" && h.Typeflag != tar.TypeDir {
			return fmt.Errorf("entry %q: the root must be a directory", h.Name)
		}
		perm := manifest.Mode(h.Mode & 0o7777).FileMode()
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = root.Mkdir(name, perm, h.Uid, h.Gid)
			dirs = append(dirs, dirTime{name, h.ModTime})
		case tar.TypeReg:
			err = root.WriteFile(name, tr, fsroot.WriteOptions{Perm: perm, UID: h.Uid, GID: h.Gid})
		case tar.TypeSymlink:
			if err = root.RemoveAll(name); err == nil {
				if err = root.Symlink(h.Linkname, name); err == nil {
					err = root.Lchown(name, h.Uid, h.Gid)
				}
			}
		case tar.TypeLink:
			var target string
			if target, err = entryPath(h.Linkname); err == nil {
				if err = root.RemoveAll(name); err == nil {
					err = root.Link(target, name)
				}
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			typ := map[byte]fs.FileMode{tar.TypeChar: fs.ModeDevice | fs.ModeCharDevice, tar.TypeBlock: fs.ModeDevice, tar.TypeFifo: fs.ModeNamedPipe}[h.Typeflag]
			if err = root.RemoveAll(name); err == nil {
				if err = root.Mknod(name, typ|perm, uint32(h.Devmajor), uint32(h.Devminor)); err == nil {
					err = root.Lchown(name, h.Uid, h.Gid)
				}
			}
		default:
			continue // PAX globals, GNU long names are handled by archive/tar
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if err := root.Lsetxattr(name, x, []byte(v)); err != nil {
					return fmt.Errorf("entry %q: xattr %s: %w", h.Name, x, err)
				}
			}
		}
		if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeLink {
			if err := root.Lutimes(name, h.ModTime, h.ModTime); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		}
	}
	// Directories last, deepest first: writing their entries moved their times.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].path > dirs[j].path })
	for _, d := range dirs {
		if err := root.Lutimes(d.path, d.t, d.t); err != nil {
			return err
		}
	}
	return nil
}

// sparse reports whether h is a GNU sparse entry, old style or PAX.
func sparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// entryPath turns an archive entry name into an image path; names that
// climb above the root with ".." are refused.
func entryPath(name string) (string, error) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("entry %q leaves the root (..)", name)
		}
	}
	return path.Clean("/" + name), nil
}

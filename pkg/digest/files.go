package digest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// ErrUnsupportedType reports a device node, FIFO or socket in a local input:
// imgplan copies only regular files, directories and symlinks from the host.
var ErrUnsupportedType = errors.New("unsupported file type")

// Files hashes local files and trees. It remembers each file's digest under
// its identity (device, inode, size, change time), so planning many variants
// that share a base reads every file once. Safe for concurrent use.
type Files struct {
	mu    sync.Mutex
	cache map[fileID]Digest
}

type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
	ctime    int64
}

// NewFiles returns an empty cache.
func NewFiles() *Files { return &Files{cache: map[fileID]Digest{}} }

func idOf(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, true
}

// File returns the digest of a regular file's content.
func (f *Files) File(path string) (Digest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	return f.file(path, fi)
}

func (f *Files) file(path string, fi fs.FileInfo) (Digest, error) {
	id, ok := idOf(fi)
	if ok {
		f.mu.Lock()
		d, hit := f.cache[id]
		f.mu.Unlock()
		if hit {
			return d, nil
		}
	}
	r, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	d := FromHash(h)
	if ok {
		f.mu.Lock()
		f.cache[id] = d
		f.mu.Unlock()
	}
	return d, nil
}

// TreeEntry is one entry of a local directory tree, as imgplan will copy it.
type TreeEntry struct {
	Path   string      // slash-separated, relative to the tree root; "." is the root
	Mode   fs.FileMode // type bits and permission bits (setuid/setgid/sticky kept)
	Target string      // symlink target, verbatim
	Digest Digest      // content digest of a regular file
	Size   int64
}

// Tree walks root and returns its entries sorted by path, and a digest over
// every entry's path, type, permission bits, link target and content.
// Ownership and times of the source are not part of it: imgplan does not
// copy them (owners come from the manifest, times from the epoch).
func (f *Files) Tree(root string) ([]TreeEntry, Digest, error) {
	return f.TreeExcept(root, nil)
}

// TreeExcept is Tree leaving out the directories skip says to (given the
// directory's path relative to root).
func (f *Files) TreeExcept(root string, skip func(rel, path string) bool) ([]TreeEntry, Digest, error) {
	var entries []TreeEntry
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if de.IsDir() && rel != "." && skip != nil && skip(rel, p) {
			return filepath.SkipDir
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		e := TreeEntry{Path: filepath.ToSlash(rel), Mode: fi.Mode()}
		switch {
		case fi.Mode().IsDir():
		case fi.Mode().IsRegular():
			e.Size = fi.Size()
			if e.Digest, err = f.file(p, fi); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %w (%s): only regular files, directories and symlinks are copied from the host; make device nodes, FIFOs and sockets in the image with a run hook", p, ErrUnsupportedType, fi.Mode().Type())
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	h := sha256.New()
	fmt.Fprintf(h, "imgplan.tree.v1\n")
	for _, e := range entries {
		fmt.Fprintf(h, "%q %o %q %s\n", e.Path, uint32(e.Mode), e.Target, e.Digest)
	}
	return entries, FromHash(h), nil
}

// Path returns the digest of a file's content, or of a directory's tree.
func (f *Files) Path(path string) (Digest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		_, d, err := f.Tree(path)
		return d, err
	}
	return f.File(path)
}

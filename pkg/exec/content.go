package exec

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"lukechampine.com/blake3"

	"github.com/imgplan/imgplan/pkg/digest"
)

// ContentDigest is the digest of a directory's content: every path with
// its type, permission bits, owner, size, content, link target, device
// numbers, xattrs and hardlinks — but not times — in a canonical encoding.
// It also returns the space the directory takes on disk. File content is
// hashed in 1 MiB chunks, holes skipped and all-zero chunks counted as
// holes, so the digest depends on the content only (not on where a
// filesystem keeps holes) and a sparse 2 GiB image costs only its data.
// Chunks are hashed with BLAKE3 (4.5 GB/s a core here, SHA-256 1.6 GB/s):
// outputs are committed right after they are written, so this is on the
// critical path of every build.
func ContentDigest(dir string) (digest.Digest, int64, error) {
	h := sha256.New()
	fmt.Fprintln(h, "imgplan.content.v2")
	links := map[uint64]string{} // inode → first path, for hardlinks
	buf := make([]byte, chunkSize)
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
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%q %o %d %d", rel, st.Mode, st.Uid, st.Gid)
		first, linked := "", false
		if st.Nlink > 1 && !fi.IsDir() {
			first, linked = links[st.Ino]
			if !linked {
				links[st.Ino] = rel
			}
		}
		switch {
		case linked:
			fmt.Fprintf(h, " link %q", first)
		case fi.Mode().IsRegular():
			fd, err := fileDigest(p, fi.Size(), buf)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " file %d %s", fi.Size(), fd)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, " -> %q", target)
		case fi.Mode()&fs.ModeDevice != 0:
			fmt.Fprintf(h, " dev %d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
		}
		if err := writeXattrs(h, p); err != nil {
			return err
		}
		fmt.Fprintln(h)
		return nil
	})
	if err != nil {
		return "", 0, fmt.Errorf("content of %s: %w", dir, err)
	}
	usage, err := diskUsage(dir)
	return digest.FromHash(h), usage, err
}

// diskUsage is the space dir takes on disk, counting hardlinked inodes once.
func diskUsage(dir string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink > 1 && !fi.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

const chunkSize = 1 << 20

var zeroChunk = make([]byte, chunkSize)

// fileDigest hashes a file chunk by chunk: "z" for a chunk of zeros (read
// or skipped as a hole), the chunk's BLAKE3 otherwise; the file's digest is
// the SHA-256 of those marks. The chunks of a large file are hashed on
// every CPU.
func fileDigest(p string, size int64, buf []byte) (digest.Digest, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	n := int((size + chunkSize - 1) / chunkSize)
	sums := make([][]byte, n)
	workers := min(runtime.NumCPU(), n)
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := buf
			if w > 0 {
				b = make([]byte, chunkSize)
			}
			for errs[w] == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				sums[i], errs[w] = chunkSum(f, int64(i)*chunkSize, size, b)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	h := sha256.New()
	for _, s := range sums {
		h.Write(s)
	}
	return digest.FromHash(h), nil
}

var zeroMark = []byte("z")

// chunkSum is the mark of the chunk at off: zeroMark when it is all zeros
// (a hole, found without reading, or read), else its BLAKE3. Reading
// through a mapping instead would count the file in our resident memory.
func chunkSum(f *os.File, off, size int64, buf []byte) ([]byte, error) {
	n := min(chunkSize, size-off)
	// Where the next data is: a chunk wholly before it is a hole.
	data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) || err == nil && data >= off+n {
		return zeroMark, nil
	}
	chunk := buf[:n]
	if _, err := f.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.Equal(chunk, zeroChunk[:n]) {
		return zeroMark, nil
	}
	sum := blake3.Sum256(chunk)
	return sum[:], nil
}

// writeXattrs writes a file's extended attributes, sorted by name.
func writeXattrs(h hash.Hash, p string) error {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return err
	}
	names := strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00")
	sort.Strings(names)
	for _, n := range names {
		vsize, err := unix.Lgetxattr(p, n, nil)
		if err != nil {
			return err
		}
		val := make([]byte, vsize)
		if _, err := unix.Lgetxattr(p, n, val); err != nil {
			return err
		}
		fmt.Fprintf(h, " xattr %q=%q", n, val)
	}
	return nil
}

package outputs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrCpioRange reports a value that a newc header's 32-bit fields cannot
// hold: a file of 4 GiB or more, or a modification time before 1970 or
// after 2106.
var ErrCpioRange = errors.New("value out of range for a newc cpio header")

// WriteCpio writes the tree at dir to w as a cpio archive in the "newc"
// format (magic 070701), the format the Linux kernel unpacks as an
// initramfs (init/initramfs.c). The bytes depend only on the tree's
// content:
//
//   - entries in the order WriteTar uses (each directory's entries sorted
//     by name, a directory before its entries), the root named "." and
//     everything else by its slash-separated path without "./";
//   - inode numbers assigned 1, 2, … in that order, device 0, numeric
//     owners, modification times clamped to epoch, and link counts counted
//     in the archive (2 plus subdirectories for a directory, the number of
//     names for a hardlinked file), never the host's;
//   - hardlinked files (regular files, FIFOs and device nodes) share one
//     inode number and link count, and a regular file's data is stored
//     once, with its last name, the earlier names having size 0. That is
//     GNU cpio's newc convention; the kernel creates the first name, links
//     the later names to it and writes the data of whichever entry has it;
//   - a symlink's target as its data, FIFOs and device nodes with size 0,
//     sockets skipped (no archive format keeps them).
//
// Symlinks are never followed. Extended attributes are dropped, as newc
// has no place for them: file capabilities (security.capability) and
// SELinux labels do not survive, so a tree that needs them must be
// shipped as tar, squashfs or a filesystem image instead.
//
// For the kernel the archive may be compressed with gzip, xz or zstd (as
// compressor does; the kernel also needs CONFIG_RD_GZIP, _XZ or _ZSTD).
// Its xz decoder verifies CRC32 checks only, not xz's default CRC64, which
// is why compressor writes xz with CRC32.
func WriteCpio(w io.Writer, dir string, epoch int64) error {
	entries, err := cpioEntries(dir)
	if err != nil {
		return err
	}
	cw := &cpioWriter{w: w}
	for _, e := range entries {
		if err := cw.entry(e, epoch); err != nil {
			return err
		}
	}
	// GNU cpio and the kernel's gen_init_cpio give the trailer a link
	// count of 1 and zeros everywhere else.
	return cw.header(newcHeader{nlink: 1}, "TRAILER!!!")
}

// cpioEntry is one member of the archive, gathered before any is written
// so that link counts and the carrier of each hardlinked file's data are
// known up front.
type cpioEntry struct {
	path  string // on the host
	name  string // in the archive
	st    unix.Stat_t
	ino   uint32
	nlink uint32
	data  bool // carries the data: the last name of a hardlinked file
}

// cpioEntries lists the tree in archive order.
func cpioEntries(dir string) ([]*cpioEntry, error) {
	type devIno struct{ dev, ino uint64 }
	var (
		entries []*cpioEntry
		dirs    = map[string]*cpioEntry{} // by archive name, for link counts
		links   = map[devIno][]*cpioEntry{}
		next    uint32
	)
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		e := &cpioEntry{path: p, nlink: 1, data: true}
		if err := unix.Lstat(p, &e.st); err != nil {
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		e.name = filepath.ToSlash(rel)
		typ := e.st.Mode & unix.S_IFMT
		if e.name == "." && typ != unix.S_IFDIR {
			return fmt.Errorf("%s: not a directory", p)
		}
		switch typ {
		case unix.S_IFSOCK:
			return nil
		case unix.S_IFDIR:
			e.nlink = 2
			if e.name != "." {
				dirs[path.Dir(e.name)].nlink++
			}
			dirs[e.name] = e
		case unix.S_IFREG, unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
			// The kernel links only these (maybe_link); a hardlinked
			// symlink is stored as separate symlinks.
			if e.st.Nlink > 1 {
				k := devIno{e.st.Dev, e.st.Ino}
				if g := links[k]; len(g) > 0 {
					e.ino = g[0].ino
				}
				links[k] = append(links[k], e)
			}
		case unix.S_IFLNK:
		default:
			return fmt.Errorf("%s: unsupported file type %#o", p, typ)
		}
		if e.ino == 0 {
			next++
			e.ino = next
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Names outside the tree do not count: the link count is what the
	// archive recreates. Each group is set on its own, in any order.
	for _, g := range links {
		for _, e := range g {
			e.nlink, e.data = uint32(len(g)), false
		}
		g[len(g)-1].data = true
	}
	return entries, nil
}

// newcHeader holds a header's numeric fields; c_dev and c_check are always
// zero here.
type newcHeader struct {
	ino, mode, uid, gid, nlink uint32
	mtime, size                int64
	rdevMajor, rdevMinor       uint32
}

type cpioWriter struct {
	w   io.Writer
	buf []byte
}

var cpioZeros [3]byte

func (cw *cpioWriter) entry(e *cpioEntry, epoch int64) error {
	st := &e.st
	h := newcHeader{
		ino:   e.ino,
		mode:  st.Mode,
		uid:   st.Uid,
		gid:   st.Gid,
		nlink: e.nlink,
		mtime: clamp(time.Unix(st.Mtim.Unix()), epoch).Unix(),
	}
	var target string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if e.data {
			h.size = st.Size
		}
	case unix.S_IFLNK:
		var err error
		if target, err = os.Readlink(e.path); err != nil {
			return err
		}
		h.size = int64(len(target))
	case unix.S_IFCHR, unix.S_IFBLK:
		h.rdevMajor, h.rdevMinor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	if err := cw.header(h, e.name); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if target != "" {
		if _, err := io.WriteString(cw.w, target); err != nil {
			return err
		}
	} else if h.size > 0 {
		if err := cw.copyData(e); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
	}
	_, err := cw.w.Write(cpioZeros[:pad4(h.size)])
	return err
}

// header writes a header and the name, NUL-terminated and padded so that
// the data starts on a 4-byte boundary (the kernel's N_ALIGN).
func (cw *cpioWriter) header(h newcHeader, name string) error {
	if h.mtime < 0 || h.mtime > math.MaxUint32 {
		return fmt.Errorf("modification time %d: %w", h.mtime, ErrCpioRange)
	}
	if h.size > math.MaxUint32 {
		return fmt.Errorf("size %d: %w", h.size, ErrCpioRange)
	}
	namesize := len(name) + 1
	b := fmt.Appendf(cw.buf[:0], "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.size,
		0, 0, h.rdevMajor, h.rdevMinor, namesize, 0)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, cpioZeros[:pad4(int64(len(b)))]...)
	cw.buf = b
	_, err := cw.w.Write(b)
	return err
}

// copyData writes a regular file's data. The file is opened without
// following symlinks (and without blocking, should a FIFO have taken its
// place) and must still be the inode and size that were listed.
func (cw *cpioWriter) copyData(e *cpioEntry) error {
	fd, err := unix.Open(e.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: e.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), e.path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != e.st.Dev || st.Ino != e.st.Ino || st.Size != e.st.Size || st.Mode != e.st.Mode {
		return errors.New("changed while being archived")
	}
	if _, err := io.CopyN(cw.w, f, st.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("shrank while being archived")
		}
		return err
	}
	return nil
}

// pad4 is the padding that brings n to a multiple of 4.
func pad4(n int64) int { return int(-n & 3) }

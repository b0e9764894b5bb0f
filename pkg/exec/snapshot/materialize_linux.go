package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Baseline is the identity of every entry of a materialized tree, taken when
// the tree was built, against which Diff finds what a stage changed.
//
// An entry is unchanged when it is the same inode with the same ctime. The
// tree is private to one build, and the kernel sets an inode's ctime to the
// current time on every change of its content or metadata — write, truncate,
// chmod, chown, setxattr, utimes, rename of the entry, a change of its link
// count — and userspace cannot set ctime. Reading changes no ctime, as
// reading copies nothing up in overlayfs.
//
// "Same inode" is device, inode number, file type and, where the filesystem
// records it (ext4, xfs, btrfs, tmpfs), birth time: inode numbers are reused
// as soon as they are freed, so a directory removed and recreated often gets
// its old number back, but never its old birth time. Without birth times
// such a directory is diffed entry by entry — each old entry whited out —
// instead of becoming opaque; the merged tree is the same.
//
// Timestamps are coarse (a clock tick) unless the filesystem has multigrain
// timestamps, so a change made in the same tick as the baseline could keep
// the recorded ctime. Materialize therefore waits, before it returns, until
// the filesystem stamps changes later than every ctime it recorded (at most a
// tick, or a second on filesystems with second granularity). Every later
// change, and every inode created later, then has a ctime no baseline entry
// has. Stepping the system clock back between Materialize and Diff defeats
// this.
type Baseline struct {
	entries map[string]baseEntry // by slash-separated path below the root; "" is the root
}

type baseEntry struct {
	stamp
	names []string // a directory's entries, sorted
}

// Len returns the number of entries recorded, the root included.
func (b *Baseline) Len() int { return len(b.entries) }

// stamp is what a baseline keeps of an entry.
type stamp struct {
	dev, ino uint64
	typ      uint32              // S_IFMT bits
	btime    unix.StatxTimestamp // zero where the filesystem records none
	ctime    unix.StatxTimestamp
}

func (s stamp) sameInode(o stamp) bool {
	return s.dev == o.dev && s.ino == o.ino && s.typ == o.typ && s.btime == o.btime
}

func (s stamp) isDir() bool { return s.typ == unix.S_IFDIR }

// stampOf stats path without following a symlink.
func stampOf(path string) (stamp, error) {
	var sx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT,
		unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx)
	if errors.Is(err, unix.ENOSYS) {
		st, err := lstat(path)
		if err != nil {
			return stamp{}, err
		}
		return stamp{dev: st.Dev, ino: st.Ino, typ: fileType(st),
			ctime: unix.StatxTimestamp{Sec: int64(st.Ctim.Sec), Nsec: uint32(st.Ctim.Nsec)}}, nil
	}
	if err != nil {
		return stamp{}, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	s := stamp{
		dev:   unix.Mkdev(sx.Dev_major, sx.Dev_minor),
		ino:   sx.Ino,
		typ:   uint32(sx.Mode) & unix.S_IFMT,
		ctime: sx.Ctime,
	}
	if sx.Mask&unix.STATX_BTIME != 0 {
		s.btime = sx.Btime
	}
	return s, nil
}

// Materialize applies lowers (bottom-most first — the reverse of
// MountOverlay's order) into the empty directory target and returns its
// baseline.
func Materialize(lowers []string, target string) (*Baseline, error) {
	names, err := readDirNames(target)
	if err != nil {
		return nil, fmt.Errorf("materialize: %w", err)
	}
	if len(names) > 0 {
		return nil, fmt.Errorf("materialize into %s: directory not empty", target)
	}
	for i, l := range lowers {
		if err := ApplyLayer(l, target); err != nil {
			return nil, fmt.Errorf("materialize layer %d of %d: %w", i+1, len(lowers), err)
		}
	}
	b, err := takeBaseline(target)
	if err != nil {
		return nil, fmt.Errorf("materialize into %s: %w", target, err)
	}
	return b, nil
}

// takeBaseline records every entry of the tree at root, then settles.
func takeBaseline(root string) (*Baseline, error) {
	rs, err := stampOf(root)
	if err != nil {
		return nil, err
	}
	b := &Baseline{entries: make(map[string]baseEntry)}
	var newest unix.StatxTimestamp
	if err := b.record("", root, rs, rs.dev, &newest); err != nil {
		return nil, err
	}
	// The root's ctime is not compared (Diff always writes the root's
	// metadata), so it can serve as the probe of the filesystem's clock.
	if err := settle(root, newest); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Baseline) record(rel, full string, s stamp, dev uint64, newest *unix.StatxTimestamp) error {
	if s.dev != dev {
		return fmt.Errorf("%s: a mount point inside the tree", full)
	}
	if rel != "" && tsAfter(s.ctime, *newest) {
		*newest = s.ctime
	}
	e := baseEntry{stamp: s}
	if s.isDir() {
		names, err := readDirNames(full)
		if err != nil {
			return err
		}
		e.names = names
		for _, n := range names {
			p := filepath.Join(full, n)
			cs, err := stampOf(p)
			if err != nil {
				return err
			}
			if err := b.record(path.Join(rel, n), p, cs, dev, newest); err != nil {
				return err
			}
		}
	}
	b.entries[rel] = e
	return nil
}

// settleTimeout bounds settle; filesystems with the coarsest timestamps
// (one second) need a little over a second.
const settleTimeout = 5 * time.Second

// settle waits until the filesystem of root stamps changes later than
// newest. It probes with a chmod of root to its own mode, which changes
// nothing but root's ctime.
func settle(root string, newest unix.StatxTimestamp) error {
	st, err := lstat(root)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		if err := unix.Fchmodat(unix.AT_FDCWD, root, st.Mode&07777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: root, Err: err}
		}
		now, err := stampOf(root)
		if err != nil {
			return err
		}
		if tsAfter(now.ctime, newest) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: filesystem timestamps did not pass %v within %v (clock stepped back?)",
				root, time.Unix(newest.Sec, int64(newest.Nsec)), settleTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func tsAfter(a, b unix.StatxTimestamp) bool {
	return a.Sec > b.Sec || a.Sec == b.Sec && a.Nsec > b.Nsec
}

package snapshot

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// This file generates seeded random trees and random stage operations, and
// runs one recorded sequence of operations on different trees.

type opKind int

const (
	opCreate opKind = iota
	opMkdir
	opModify // overwrite in place, same size
	opTruncate
	opChmod
	opChown
	opSetxattr
	opRemovexattr
	opRemove    // rm of a non-directory
	opRemoveAll // rm -rf of a directory
	opRecreate  // rm -rf of a directory, then mkdir of the same name
	opRename
	opRetarget // replace a symlink by one with another target
	opLink
	opMknodChr
	opMknodBlk
	opMkfifo
	opUtimes
	numOpKinds
)

var opNames = [...]string{"create", "mkdir", "modify", "truncate", "chmod", "chown", "setxattr",
	"removexattr", "rm", "rm -rf", "recreate", "rename", "retarget", "link", "mknod c", "mknod b",
	"mkfifo", "utimes"}

type op struct {
	kind     opKind
	path, to string // relative, slash-separated
	data     []byte
	off      int64
	size     int64
	mode     uint32
	uid, gid int
	xattr    string
	times    [2]unix.Timespec
	dev      uint64
}

func (o op) String() string {
	s := opNames[o.kind] + " /" + o.path
	if o.to != "" {
		s += " /" + o.to
	}
	return s
}

// apply runs o on the tree at root.
func (o op) apply(root string) error {
	p, q := filepath.Join(root, o.path), filepath.Join(root, o.to)
	switch o.kind {
	case opCreate:
		if err := os.WriteFile(p, o.data, 0o600); err != nil {
			return err
		}
		return unix.Chmod(p, o.mode)
	case opMkdir:
		if err := unix.Mkdir(p, 0o700); err != nil {
			return err
		}
		return unix.Chmod(p, o.mode)
	case opModify:
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(o.data, o.off); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case opTruncate:
		return unix.Truncate(p, o.size)
	case opChmod:
		return unix.Fchmodat(unix.AT_FDCWD, p, o.mode, 0)
	case opChown:
		return unix.Lchown(p, o.uid, o.gid)
	case opSetxattr:
		return unix.Lsetxattr(p, o.xattr, o.data, 0)
	case opRemovexattr:
		return unix.Lremovexattr(p, o.xattr)
	case opRemove:
		return unix.Unlink(p)
	case opRemoveAll:
		return os.RemoveAll(p)
	case opRecreate:
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := unix.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := unix.Chmod(p, o.mode); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(p, "fresh"), o.data, 0o644)
	case opRename:
		return move(p, q)
	case opRetarget:
		if err := unix.Unlink(p); err != nil {
			return err
		}
		return os.Symlink(string(o.data), p)
	case opLink:
		return unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, q, 0)
	case opMknodChr:
		return unix.Mknod(p, unix.S_IFCHR|o.mode, int(o.dev))
	case opMknodBlk:
		return unix.Mknod(p, unix.S_IFBLK|o.mode, int(o.dev))
	case opMkfifo:
		return unix.Mkfifo(p, o.mode)
	case opUtimes:
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, o.times[:], unix.AT_SYMLINK_NOFOLLOW)
	}
	return fmt.Errorf("unknown op %d", o.kind)
}

// move is mv: rename, and where the filesystem refuses (overlayfs with
// redirect_dir off, for a directory from a lower layer) copy with all
// metadata, then remove.
func move(src, dst string) error {
	err := unix.Rename(src, dst)
	if !errors.Is(err, unix.EXDEV) {
		return err
	}
	st, err := lstat(src)
	if err != nil {
		return err
	}
	c := newCopier()
	if err := c.copyTree(src, dst, st, nil); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// gen picks random operations that are valid on the tree at root, and keeps
// track of what they did to entries' times.
type gen struct {
	rng  *rand.Rand
	root string
	seq  int
	// lowerLinks are files hardlinked in the lower layers; overlayfs breaks
	// such links on copy-up and a materialized tree does not (see the package
	// doc), so operations leave their contents and metadata alone.
	lowerLinks map[string]bool
	// timeDirty are entries whose mtime an operation set to "now", which
	// differs between two runs of the same operations.
	timeDirty map[string]bool
	// dirRenames counts renames of directories, which exercise EXDEV in
	// overlayfs.
	dirRenames int
}

func newGen(seed uint64, root string) *gen {
	return &gen{
		rng:        rand.New(rand.NewPCG(seed, seed^0x5eed)),
		root:       root,
		lowerLinks: map[string]bool{},
		timeDirty:  map[string]bool{},
	}
}

type genEntry struct {
	rel string
	st  *unix.Stat_t
}

// entries lists the tree, the root first.
func (g *gen) entries(t *testing.T) []genEntry {
	t.Helper()
	var out []genEntry
	var walk func(rel string)
	walk = func(rel string) {
		st := mustLstat(t, filepath.Join(g.root, rel))
		out = append(out, genEntry{rel, st})
		if !isDir(st) {
			return
		}
		names, err := readDirNames(filepath.Join(g.root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			walk(path.Join(rel, n))
		}
	}
	walk("")
	return out
}

// noteLowerLinks records the files that are hardlinked now, before any
// operation.
func (g *gen) noteLowerLinks(t *testing.T) {
	for _, e := range g.entries(t) {
		if !isDir(e.st) && e.st.Nlink > 1 {
			g.lowerLinks[e.rel] = true
		}
	}
}

var nameStems = []string{"f", "d", "with space", "x:y", "a,b", `back\slash`, ".hidden", "ünï", "n"}

func (g *gen) name() string {
	g.seq++
	return fmt.Sprintf("%s%d", nameStems[g.rng.IntN(len(nameStems))], g.seq)
}

func (g *gen) bytes(max int) []byte {
	b := make([]byte, g.rng.IntN(max+1))
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

func (g *gen) fileMode() uint32 {
	return []uint32{0o644, 0o600, 0o755, 0o400, 0o4755, 0o2755, 0o666}[g.rng.IntN(7)]
}

func (g *gen) dirMode() uint32 {
	return []uint32{0o755, 0o700, 0o555, 0o1777, 0o2775}[g.rng.IntN(5)]
}

func (g *gen) owner() (int, int) {
	ids := []int{0, 1, 1000, 65534}
	return ids[g.rng.IntN(len(ids))], ids[g.rng.IntN(len(ids))]
}

func (g *gen) time() unix.Timespec {
	return unix.Timespec{Sec: 1e9 + g.rng.Int64N(6e8), Nsec: g.rng.Int64N(1e9)}
}

func (g *gen) dev() uint64 {
	return unix.Mkdev(uint32(1+g.rng.IntN(200)), uint32(g.rng.IntN(256)))
}

func parentOf(rel string) string {
	if p := path.Dir(rel); p != "." {
		return p
	}
	return ""
}

func within(rel, dir string) bool {
	return dir == "" || rel == dir || strings.HasPrefix(rel, dir+"/")
}

func pick[T any](g *gen, xs []T) (T, bool) {
	var zero T
	if len(xs) == 0 {
		return zero, false
	}
	return xs[g.rng.IntN(len(xs))], true
}

func filter(es []genEntry, keep func(genEntry) bool) []genEntry {
	var out []genEntry
	for _, e := range es {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// dropUnder forgets what the maps know about dir and everything below it.
func (g *gen) dropUnder(dir string) {
	for _, m := range []map[string]bool{g.lowerLinks, g.timeDirty} {
		for k := range m {
			if within(k, dir) {
				delete(m, k)
			}
		}
	}
}

// moveUnder moves what the maps know about src and below to dst.
func (g *gen) moveUnder(src, dst string) {
	g.dropUnder(dst)
	for _, m := range []map[string]bool{g.lowerLinks, g.timeDirty} {
		var moved []string
		for k := range m {
			if within(k, src) {
				moved = append(moved, k)
			}
		}
		for _, k := range moved {
			delete(m, k)
			m[dst+strings.TrimPrefix(k, src)] = true
		}
	}
}

func (g *gen) dirty(rels ...string) {
	for _, r := range rels {
		g.timeDirty[r] = true
	}
}

// namesOf returns every name of e's inode.
func namesOf(all []genEntry, e genEntry) []string {
	if isDir(e.st) || e.st.Nlink < 2 {
		return []string{e.rel}
	}
	var out []string
	for _, x := range all {
		if idOf(x.st) == idOf(e.st) {
			out = append(out, x.rel)
		}
	}
	return out
}

// next returns a random operation valid on the tree as it is now.
func (g *gen) next(t *testing.T) op {
	t.Helper()
	for {
		if o, ok := g.try(g.entries(t), opKind(g.rng.IntN(int(numOpKinds)))); ok {
			return o
		}
	}
}

func (g *gen) try(all []genEntry, kind opKind) (op, bool) {
	rest := all[1:] // without the root
	dirs := filter(all, func(e genEntry) bool { return isDir(e.st) })
	mutable := filter(rest, func(e genEntry) bool { return !g.lowerLinks[e.rel] })
	typed := func(typ uint32) []genEntry {
		return filter(mutable, func(e genEntry) bool { return fileType(e.st) == typ })
	}
	o := op{kind: kind}
	switch kind {
	case opCreate, opMkdir, opMknodChr, opMknodBlk, opMkfifo:
		d, _ := pick(g, dirs)
		o.path = path.Join(d.rel, g.name())
		o.data = g.bytes(3000)
		switch kind {
		case opCreate:
			o.mode = g.fileMode()
		case opMkdir:
			o.mode = g.dirMode()
		default:
			o.mode = []uint32{0o600, 0o660, 0o644}[g.rng.IntN(3)]
			o.dev = g.dev()
		}
		g.dirty(o.path, d.rel)
	case opModify:
		f, ok := pick(g, filter(typed(unix.S_IFREG), func(e genEntry) bool { return e.st.Size > 0 }))
		if !ok {
			return o, false
		}
		o.path = f.rel
		o.off = g.rng.Int64N(f.st.Size)
		o.data = g.bytes(100)
		o.data = o.data[:min(int64(len(o.data)), f.st.Size-o.off)]
		g.dirty(namesOf(all, f)...)
	case opTruncate:
		f, ok := pick(g, typed(unix.S_IFREG))
		if !ok {
			return o, false
		}
		o.path, o.size = f.rel, g.rng.Int64N(2*f.st.Size+10)
		g.dirty(namesOf(all, f)...)
	case opChmod:
		e, ok := pick(g, filter(mutable, func(e genEntry) bool { return fileType(e.st) != unix.S_IFLNK }))
		if !ok {
			return o, false
		}
		o.path, o.mode = e.rel, g.fileMode()
		if isDir(e.st) {
			o.mode = g.dirMode()
		}
	case opChown:
		e, ok := pick(g, mutable)
		if !ok {
			return o, false
		}
		o.path = e.rel
		o.uid, o.gid = g.owner()
	case opSetxattr:
		e, ok := pick(g, mutable)
		if !ok {
			return o, false
		}
		o.path, o.data = e.rel, g.bytes(40)
		o.xattr = fmt.Sprintf("trusted.t%d", g.rng.IntN(3))
		if typ := fileType(e.st); (typ == unix.S_IFREG || typ == unix.S_IFDIR) && g.rng.IntN(2) == 0 {
			o.xattr = fmt.Sprintf("user.u%d", g.rng.IntN(3))
		}
	case opRemovexattr:
		var cands []op
		for _, e := range mutable {
			x, _ := readXattrs(filepath.Join(g.root, e.rel))
			for k := range x {
				cands = append(cands, op{kind: kind, path: e.rel, xattr: k})
			}
		}
		slices.SortFunc(cands, func(a, b op) int { return strings.Compare(a.path+a.xattr, b.path+b.xattr) })
		c, ok := pick(g, cands)
		if !ok {
			return o, false
		}
		o = c
	case opRemove:
		e, ok := pick(g, filter(rest, func(e genEntry) bool { return !isDir(e.st) }))
		if !ok {
			return o, false
		}
		o.path = e.rel
		g.dropUnder(e.rel)
		g.dirty(parentOf(e.rel))
	case opRemoveAll, opRecreate:
		e, ok := pick(g, filter(rest, func(e genEntry) bool { return isDir(e.st) }))
		if !ok {
			return o, false
		}
		o.path, o.mode, o.data = e.rel, g.dirMode(), g.bytes(100)
		g.dropUnder(e.rel)
		g.dirty(parentOf(e.rel))
		if kind == opRecreate {
			g.dirty(e.rel, path.Join(e.rel, "fresh"))
		}
	case opRename:
		src, ok := pick(g, filter(mutable, func(e genEntry) bool {
			// overlayfs copies a directory it cannot rename, like mv across
			// filesystems, which breaks hardlinks between inside and outside;
			// leave directories holding hardlinked files alone.
			return !isDir(e.st) || !slices.ContainsFunc(all, func(x genEntry) bool {
				return within(x.rel, e.rel) && !isDir(x.st) && x.st.Nlink > 1
			})
		}))
		if !ok {
			return o, false
		}
		d, _ := pick(g, filter(dirs, func(d genEntry) bool { return !within(d.rel, src.rel) }))
		o.path, o.to = src.rel, path.Join(d.rel, g.name())
		if !isDir(src.st) && g.rng.IntN(3) == 0 {
			// Sometimes over an existing non-directory.
			if over, ok := pick(g, filter(rest, func(e genEntry) bool {
				return !isDir(e.st) && e.rel != src.rel
			})); ok {
				o.to = over.rel
			}
		}
		if isDir(src.st) {
			g.dirRenames++
			g.dirty(o.to)
		}
		g.moveUnder(o.path, o.to)
		g.dirty(parentOf(o.path), parentOf(o.to))
	case opRetarget:
		e, ok := pick(g, typed(unix.S_IFLNK))
		if !ok {
			return o, false
		}
		o.path, o.data = e.rel, []byte(g.name())
		g.dirty(e.rel, parentOf(e.rel))
	case opLink:
		src, ok := pick(g, filter(mutable, func(e genEntry) bool { return !isDir(e.st) }))
		if !ok {
			return o, false
		}
		d, _ := pick(g, dirs)
		o.path, o.to = src.rel, path.Join(d.rel, g.name())
		g.dirty(d.rel)
		if g.timeDirty[src.rel] {
			g.dirty(o.to)
		}
	case opUtimes:
		e, ok := pick(g, filter(all, func(e genEntry) bool { return !g.lowerLinks[e.rel] }))
		if !ok {
			return o, false
		}
		o.path, o.times = e.rel, [2]unix.Timespec{g.time(), g.time()}
		for _, n := range namesOf(all, e) {
			delete(g.timeDirty, n)
		}
	}
	return o, true
}

// run generates n operations on the tree at root, applies each, and returns
// them with their outcomes.
func (g *gen) run(t *testing.T, n int) ([]op, []error) {
	t.Helper()
	ops := make([]op, n)
	errs := make([]error, n)
	for i := range ops {
		ops[i] = g.next(t)
		errs[i] = ops[i].apply(g.root)
		if errs[i] != nil {
			t.Logf("op %d %v: %v", i, ops[i], errs[i])
		}
	}
	return ops, errs
}

// replay applies ops to root and checks each has the same outcome as before.
func replay(t *testing.T, root string, ops []op, want []error) {
	t.Helper()
	for i, o := range ops {
		if err := o.apply(root); (err == nil) != (want[i] == nil) {
			t.Fatalf("op %d %v: %v, first run: %v", i, o, err, want[i])
		}
	}
}

// genTree fills dir with a random tree of every file type, with random
// owners, modes, xattrs and times, and hardlinked pairs.
func (g *gen) genTree(t *testing.T, dir string, depth int) {
	t.Helper()
	n := 3 + g.rng.IntN(5)
	for range n {
		p := filepath.Join(dir, g.name())
		var err error
		switch k := g.rng.IntN(10); {
		case k < 2 && depth > 0:
			if err = unix.Mkdir(p, 0o700); err == nil {
				g.genTree(t, p, depth-1)
			}
		case k < 5:
			err = os.WriteFile(p, g.bytes(4000), 0o644)
		case k == 5:
			err = os.Symlink([]string{"../x", "/etc/passwd", g.name()}[g.rng.IntN(3)], p)
		case k == 6:
			q := filepath.Join(dir, g.name())
			if err = os.WriteFile(p, g.bytes(500), 0o644); err == nil {
				err = os.Link(p, q)
			}
		case k == 7:
			err = unix.Mknod(p, []uint32{unix.S_IFCHR, unix.S_IFBLK}[g.rng.IntN(2)]|0o600, int(g.dev()))
		case k == 8:
			err = unix.Mknod(p, []uint32{unix.S_IFIFO, unix.S_IFSOCK}[g.rng.IntN(2)]|0o644, 0)
		default:
			err = os.WriteFile(p, g.bytes(100), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		g.randomMeta(t, p)
	}
}

func (g *gen) randomMeta(t *testing.T, p string) {
	t.Helper()
	st := mustLstat(t, p)
	uid, gid := g.owner()
	if err := unix.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	switch fileType(st) {
	case unix.S_IFLNK:
	case unix.S_IFDIR:
		if err := unix.Chmod(p, g.dirMode()); err != nil {
			t.Fatal(err)
		}
	default:
		if err := unix.Chmod(p, g.fileMode()); err != nil {
			t.Fatal(err)
		}
	}
	if g.rng.IntN(3) == 0 {
		if err := unix.Lsetxattr(p, "trusted.lower", g.bytes(20), 0); err != nil {
			t.Fatal(err)
		}
	}
	if typ := fileType(st); (typ == unix.S_IFREG || typ == unix.S_IFDIR) && g.rng.IntN(3) == 0 {
		if err := unix.Lsetxattr(p, "user.lower", g.bytes(20), 0); err != nil {
			t.Fatal(err)
		}
	}
	ts := []unix.Timespec{g.time(), g.time()}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

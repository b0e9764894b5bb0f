package outputs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const cpioEpoch = 5000

// cpioNode is one entry of a test tree. Nodes with the same link group are
// one inode: the first created is written, the others linked to it.
type cpioNode struct {
	name   string
	typ    uint32 // unix.S_IF*
	perm   uint32 // including setuid, setgid, sticky
	data   string // file content or symlink target
	group  string
	mtime  int64 // 0: left at creation time, after the epoch
	uid    int   // applied as root only
	gid    int
	rdev   [2]uint32
	asRoot bool // created only as root
}

func cpioNodes() []cpioNode {
	return []cpioNode{
		{name: "bin", typ: unix.S_IFDIR, perm: 0o755},
		{name: "bin/sh", typ: unix.S_IFLNK, data: "suid", mtime: 2000, uid: 3, gid: 4},
		{name: "bin/suid", typ: unix.S_IFREG, perm: 0o4755, data: "setuid!"},
		{name: "dev", typ: unix.S_IFDIR, perm: 0o755},
		{name: "dev/loop0", typ: unix.S_IFBLK, perm: 0o660, rdev: [2]uint32{7, 0}, gid: 6, asRoot: true},
		{name: "dev/null", typ: unix.S_IFCHR, perm: 0o666, rdev: [2]uint32{1, 3}, asRoot: true},
		{name: "dev/tty1", typ: unix.S_IFCHR, perm: 0o620, rdev: [2]uint32{4, 1}, mtime: 1500, gid: 5, asRoot: true},
		{name: "etc", typ: unix.S_IFDIR, perm: 0o755, mtime: 3000},
		{name: "etc/abs", typ: unix.S_IFLNK, data: "/etc/old"},
		{name: "etc/dangling", typ: unix.S_IFLNK, data: "../nowhere/at/all"},
		{name: "etc/empty", typ: unix.S_IFREG, perm: 0o600},
		{name: "etc/hl1", typ: unix.S_IFREG, perm: 0o640, data: "shared data", group: "hl", mtime: 1200, uid: 7, gid: 42},
		{name: "etc/old", typ: unix.S_IFREG, perm: 0o644, data: "old", mtime: 1000},
		{name: "etc/sub", typ: unix.S_IFDIR, perm: 0o2750, gid: 9},
		{name: "etc/sub/deep", typ: unix.S_IFDIR, perm: 0o700, uid: 1000, gid: 1000},
		{name: "etc/sub/deep/f", typ: unix.S_IFREG, perm: 0o400, data: "12345", uid: 1000, gid: 1000},
		{name: "lib", typ: unix.S_IFDIR, perm: 0o755},
		{name: "lib/hl2", typ: unix.S_IFREG, perm: 0o640, data: "shared data", group: "hl", mtime: 1200, uid: 7, gid: 42},
		{name: "lib/sgid", typ: unix.S_IFREG, perm: 0o2711, data: "ab"},
		{name: "run", typ: unix.S_IFDIR, perm: 0o755},
		{name: "run/fifo", typ: unix.S_IFIFO, perm: 0o620},
		{name: "run/sock", typ: unix.S_IFSOCK, perm: 0o755}, // skipped
		{name: "tmp", typ: unix.S_IFDIR, perm: 0o1777},
		{name: "usr", typ: unix.S_IFDIR, perm: 0o755},
		{name: "usr/hl3", typ: unix.S_IFREG, perm: 0o640, data: "shared data", group: "hl", mtime: 1200, uid: 7, gid: 42},
		{name: "usr/lib", typ: unix.S_IFDIR, perm: 0o755},
		{name: "usr/lib/big", typ: unix.S_IFREG, perm: 0o644, data: strings.Repeat("0123456789", 1000) + "xyz"},
	}
}

// cpioTree creates the nodes under a new directory in the given order
// (missing parents first), then sets owners, modes and times.
func cpioTree(t *testing.T, nodes []cpioNode) string {
	t.Helper()
	root := os.Geteuid() == 0
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	first := map[string]string{}
	var made []cpioNode
	for _, n := range nodes {
		if n.asRoot && !root {
			continue
		}
		p := filepath.Join(dir, n.name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		switch n.typ {
		case unix.S_IFDIR:
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
		case unix.S_IFREG:
			if f, ok := first[n.group]; ok && n.group != "" {
				must(os.Link(f, p))
			} else {
				must(os.WriteFile(p, []byte(n.data), 0o600))
				first[n.group] = p
			}
		case unix.S_IFLNK:
			must(os.Symlink(n.data, p))
		default:
			must(unix.Mknod(p, n.typ|0o600, int(unix.Mkdev(n.rdev[0], n.rdev[1]))))
		}
		made = append(made, n)
	}
	// Deepest first, so that setting a directory's time comes after
	// everything inside it has been changed.
	slices.SortStableFunc(made, func(a, b cpioNode) int { return strings.Count(b.name, "/") - strings.Count(a.name, "/") })
	for _, n := range made {
		p := filepath.Join(dir, n.name)
		if root {
			must(os.Lchown(p, n.uid, n.gid))
		}
		if n.typ != unix.S_IFLNK {
			must(unix.Chmod(p, n.perm)) // os.Chmod would need Go's mode bits
		}
		if n.mtime != 0 {
			ts := []unix.Timespec{{Sec: n.mtime}, {Sec: n.mtime}}
			must(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
	return dir
}

func writeCpio(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteCpio(&buf, dir, cpioEpoch); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func needCpio(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs GNU cpio (apt-get install cpio)")
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("%s %s: stderr: %s", name, strings.Join(args, " "), stderr.Bytes())
	}
	return out
}

// TestWriteCpioExtract extracts the archive with GNU cpio and compares the
// result with the source tree, entry by entry.
func TestWriteCpioExtract(t *testing.T) {
	needCpio(t)
	if os.Geteuid() != 0 {
		t.Log("not root: no device nodes and no owners are tested (CI runs this as root)")
	}
	src := cpioTree(t, cpioNodes())
	archive := writeCpio(t, src)
	out := t.TempDir()
	run(t, archive, "cpio", "-idm", "--quiet", "-D", out)

	srcPaths, outPaths := walkNames(t, src), walkNames(t, out)
	if !slices.Equal(srcPaths, outPaths) {
		t.Fatalf("extracted %v\nwant %v", outPaths, srcPaths)
	}
	for _, name := range srcPaths {
		var s, o unix.Stat_t
		sp, op := filepath.Join(src, name), filepath.Join(out, name)
		if err := unix.Lstat(sp, &s); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(op, &o); err != nil {
			t.Fatal(err)
		}
		if s.Mode != o.Mode {
			t.Errorf("%s: mode %#o, want %#o", name, o.Mode, s.Mode)
		}
		if os.Geteuid() == 0 && (s.Uid != o.Uid || s.Gid != o.Gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, o.Uid, o.Gid, s.Uid, s.Gid)
		}
		if s.Rdev != o.Rdev {
			t.Errorf("%s: device %d:%d, want %d:%d", name, unix.Major(o.Rdev), unix.Minor(o.Rdev), unix.Major(s.Rdev), unix.Minor(s.Rdev))
		}
		// GNU cpio leaves symlinks' own times alone, and sets a
		// directory's time when it meets the directory, so the entries
		// that follow change it again (the kernel sets directories' times
		// at the end). TestWriteCpioHeaders checks those times.
		typ := s.Mode & unix.S_IFMT
		if want := min(s.Mtim.Sec, cpioEpoch); typ != unix.S_IFLNK && typ != unix.S_IFDIR && o.Mtim.Sec != want {
			t.Errorf("%s: mtime %d, want %d", name, o.Mtim.Sec, want)
		}
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			a, _ := os.ReadFile(sp)
			b, err := os.ReadFile(op)
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: content %q (%v), want %q", name, b, err, a)
			}
			if s.Nlink != o.Nlink {
				t.Errorf("%s: %d links, want %d", name, o.Nlink, s.Nlink)
			}
		case unix.S_IFLNK:
			a, _ := os.Readlink(sp)
			b, err := os.Readlink(op)
			if err != nil || a != b {
				t.Errorf("%s: target %q (%v), want %q", name, b, err, a)
			}
		}
	}
	var ino [3]uint64
	for i, name := range []string{"etc/hl1", "lib/hl2", "usr/hl3"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(out, name), &st); err != nil {
			t.Fatal(err)
		}
		ino[i] = st.Ino
	}
	if ino[0] != ino[1] || ino[1] != ino[2] {
		t.Errorf("hardlinks extracted as inodes %v, want one", ino)
	}
}

// walkNames lists a tree's paths, root first as ".".
func walkNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestWriteCpioListing: GNU cpio lists the entries in sorted order (each
// directory's entries by name, a directory before them), "." first.
func TestWriteCpioListing(t *testing.T) {
	needCpio(t)
	// "etc/sub-x" sorts after "etc/sub/…" by component, before it by bytes.
	nodes := append(cpioNodes(), cpioNode{name: "etc/sub-x", typ: unix.S_IFREG, perm: 0o644})
	archive := writeCpio(t, cpioTree(t, nodes))
	var names []string
	for line := range strings.Lines(string(run(t, archive, "cpio", "-itv", "--quiet"))) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "l") {
			line, _, _ = strings.Cut(line, " -> ")
		}
		f := strings.Fields(line)
		names = append(names, f[len(f)-1])
	}
	var want []string
	for _, n := range nodes {
		if n.typ != unix.S_IFSOCK && (!n.asRoot || os.Geteuid() == 0) {
			want = append(want, n.name)
		}
	}
	slices.SortFunc(want, func(a, b string) int {
		return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
	})
	want = append([]string{"."}, want...)
	if !slices.Equal(names, want) {
		t.Errorf("cpio -itv lists\n%v\nwant\n%v", names, want)
	}
}

// TestWriteCpioDeterministic: the same tree built in another directory, in
// another order (other inode numbers, change times, and modification times
// after the epoch), gives the same bytes.
func TestWriteCpioDeterministic(t *testing.T) {
	nodes := cpioNodes()
	a := writeCpio(t, cpioTree(t, nodes))
	slices.Reverse(nodes)
	b := writeCpio(t, cpioTree(t, nodes))
	if !bytes.Equal(a, b) {
		t.Errorf("different bytes for the same tree (%d and %d bytes)", len(a), len(b))
	}
}

// newcEntry is a parsed newc header: the 13 fields after the magic, by
// their index in the header.
type newcEntry struct {
	f    [13]uint64
	name string
	data []byte
}

const (
	fIno = iota
	fMode
	fUID
	fGID
	fNlink
	fMtime
	fSize
	fDevMajor
	fDevMinor
	fRdevMajor
	fRdevMinor
	fNamesize
	fCheck
)

// parseNewc reads an archive as the kernel does (init/initramfs.c: 110-byte
// header, name padded with N_ALIGN, data padded to 4) and insists on the
// trailer being last.
func parseNewc(t *testing.T, b []byte) []newcEntry {
	t.Helper()
	nAlign := func(n int) int { return ((n + 1) &^ 3) + 2 }
	var out []newcEntry
	off := 0
	for {
		if off%4 != 0 || off+110 > len(b) {
			t.Fatalf("header at %d of %d", off, len(b))
		}
		if magic := string(b[off : off+6]); magic != "070701" {
			t.Fatalf("magic %q at %d", magic, off)
		}
		var e newcEntry
		for i := range e.f {
			s := string(b[off+6+8*i : off+14+8*i])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			e.f[i] = v
		}
		ns, size := int(e.f[fNamesize]), int(e.f[fSize])
		name := b[off+110 : off+110+ns]
		if name[ns-1] != 0 || bytes.IndexByte(name[:ns-1], 0) >= 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		e.name = string(name[:ns-1])
		start := off + 110 + nAlign(ns)
		if pad := b[off+110+ns : start]; bytes.Count(pad, []byte{0}) != len(pad) {
			t.Errorf("%s: name padding %q", e.name, pad)
		}
		e.data = b[start : start+size]
		off = (start + size + 3) &^ 3
		if pad := b[start+size : off]; bytes.Count(pad, []byte{0}) != len(pad) {
			t.Errorf("%s: data padding %q", e.name, pad)
		}
		out = append(out, e)
		if e.name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
	}
}

// TestWriteCpioHeaders checks the raw headers: sequential inode numbers,
// link counts, sizes, and hardlinks as the kernel unpacks them.
func TestWriteCpioHeaders(t *testing.T) {
	nodes := cpioNodes()
	dir := cpioTree(t, nodes)
	entries := parseNewc(t, writeCpio(t, dir))
	if entries[0].name != "." {
		t.Errorf("first entry %q, want \".\"", entries[0].name)
	}
	trailer := entries[len(entries)-1]
	if trailer.f != [13]uint64{fNlink: 1, fNamesize: 11} {
		t.Errorf("trailer %v", trailer.f)
	}
	entries = entries[:len(entries)-1]

	byName := map[string]newcEntry{}
	var maxIno uint64
	for _, e := range entries {
		byName[e.name] = e
		switch ino := e.f[fIno]; {
		case ino == maxIno+1:
			maxIno = ino
		case ino > maxIno:
			t.Errorf("%s: inode %d after %d, want sequential", e.name, ino, maxIno)
		}
		if e.f[fDevMajor] != 0 || e.f[fDevMinor] != 0 || e.f[fCheck] != 0 {
			t.Errorf("%s: dev %d:%d check %d, want zeros", e.name, e.f[fDevMajor], e.f[fDevMinor], e.f[fCheck])
		}
		if strings.HasPrefix(e.name, "/") || strings.HasPrefix(e.name, "./") {
			t.Errorf("name %q", e.name)
		}
	}
	if _, ok := byName["run/sock"]; ok {
		t.Error("socket archived")
	}

	subdirs := map[string]uint64{}
	for _, n := range nodes {
		if n.typ == unix.S_IFDIR {
			subdirs[path.Dir(n.name)]++
		}
	}
	for _, n := range nodes {
		e, ok := byName[n.name]
		if n.typ == unix.S_IFSOCK || (n.asRoot && os.Geteuid() != 0) {
			continue
		}
		if !ok {
			t.Errorf("%s missing", n.name)
			continue
		}
		perm := n.perm
		if n.typ == unix.S_IFLNK {
			perm = 0o777
		}
		if e.f[fMode] != uint64(n.typ|perm) {
			t.Errorf("%s: mode %#o, want %#o", n.name, e.f[fMode], n.typ|perm)
		}
		if os.Geteuid() == 0 && (e.f[fUID] != uint64(n.uid) || e.f[fGID] != uint64(n.gid)) {
			t.Errorf("%s: owner %d:%d, want %d:%d", n.name, e.f[fUID], e.f[fGID], n.uid, n.gid)
		}
		wantMtime := uint64(cpioEpoch)
		if n.mtime != 0 {
			wantMtime = uint64(n.mtime)
		}
		if e.f[fMtime] != wantMtime {
			t.Errorf("%s: mtime %d, want %d", n.name, e.f[fMtime], wantMtime)
		}
		if e.f[fRdevMajor] != uint64(n.rdev[0]) || e.f[fRdevMinor] != uint64(n.rdev[1]) {
			t.Errorf("%s: rdev %d:%d, want %v", n.name, e.f[fRdevMajor], e.f[fRdevMinor], n.rdev)
		}
		wantNlink, wantData := uint64(1), n.data
		switch {
		case n.typ == unix.S_IFDIR:
			wantNlink = 2 + subdirs[n.name]
		case n.group != "":
			wantNlink = 3
			if n.name != "usr/hl3" {
				wantData = "" // the data goes with the last name
			}
		}
		if e.f[fNlink] != wantNlink {
			t.Errorf("%s: nlink %d, want %d", n.name, e.f[fNlink], wantNlink)
		}
		if string(e.data) != wantData {
			t.Errorf("%s: data %.20q (%d bytes), want %.20q", n.name, e.data, len(e.data), wantData)
		}
	}
	if e := byName["."]; e.f[fNlink] != 2+subdirs["."] || e.f[fMode]&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf(".: nlink %d mode %#o", e.f[fNlink], e.f[fMode])
	}
	hl := []uint64{byName["etc/hl1"].f[fIno], byName["lib/hl2"].f[fIno], byName["usr/hl3"].f[fIno]}
	if hl[0] != hl[1] || hl[1] != hl[2] {
		t.Errorf("hardlinks have inodes %v, want one", hl)
	}

	// The kernel's unpacker (do_name, maybe_link, do_copy): the first name
	// of an (ino, devmajor, devminor, type) with nlink ≥ 2 is created and
	// truncated, later names are linked to it, opened without O_TRUNC,
	// truncated to their size if they have one, and their data written.
	type inode struct{ data []byte }
	files := map[string]*inode{}
	seen := map[[4]uint64]string{}
	for _, e := range entries {
		if e.f[fMode]&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		var ind *inode
		if e.f[fNlink] >= 2 {
			k := [4]uint64{e.f[fIno], e.f[fDevMajor], e.f[fDevMinor], e.f[fMode] & unix.S_IFMT}
			if old, ok := seen[k]; ok {
				ind = files[old]
			} else {
				seen[k] = e.name
			}
		}
		if ind == nil {
			ind = &inode{}
		}
		files[e.name] = ind
		if size := e.f[fSize]; size > 0 {
			ind.data = append(ind.data[:0], make([]byte, size)...)
		}
		copy(ind.data, e.data)
	}
	for _, n := range nodes {
		if n.typ != unix.S_IFREG {
			continue
		}
		if got := string(files[n.name].data); got != n.data {
			t.Errorf("kernel unpacks %s as %.20q, want %.20q", n.name, got, n.data)
		}
	}
	if files["etc/hl1"] != files["usr/hl3"] || files["lib/hl2"] != files["usr/hl3"] {
		t.Error("kernel unpacks the hardlinks as separate files")
	}
}

// TestWriteCpioCompressed: compressed through compressor, the archive is
// what the system tools decompress (xz with the CRC32 check the kernel
// needs).
func TestWriteCpioCompressed(t *testing.T) {
	dir := cpioTree(t, cpioNodes())
	plain := writeCpio(t, dir)
	for _, tc := range []struct {
		comp string
		tool []string
	}{
		{"gzip", []string{"gzip"}},
		{"xz", []string{"xz"}},
		{"zstd", []string{"zstd", "-q"}},
	} {
		t.Run(tc.comp, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool[0]); err != nil {
				t.Skipf("needs %s (apt-get install %s)", tc.tool[0], tc.tool[0])
			}
			var buf bytes.Buffer
			w, err := compressor(&buf, tc.comp, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteCpio(w, dir, cpioEpoch); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "initrd."+tc.comp)
			if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, nil, tc.tool[0], append(tc.tool[1:], "-t", f)...)
			if got := run(t, nil, tc.tool[0], append(tc.tool[1:], "-dc", f)...); !bytes.Equal(got, plain) {
				t.Errorf("decompresses to %d bytes, not the %d of the archive", len(got), len(plain))
			}
			if tc.comp != "xz" {
				return
			}
			check := ""
			for line := range strings.Lines(string(run(t, nil, "xz", "--robot", "-lv", f))) {
				if f := strings.Split(strings.TrimSpace(line), "\t"); f[0] == "file" && len(f) > 6 {
					check = f[6]
				}
			}
			if check != "CRC32" {
				t.Errorf("xz check %q, want CRC32 (the kernel's xz decoder checks nothing else)", check)
			}
		})
	}
}

// TestWriteCpioErrors: what newc cannot hold, and trees that are not
// trees, fail instead of writing a wrong archive.
func TestWriteCpioErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  error
	}{
		{"mtime before 1970", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, time.Unix(-10, 0), time.Unix(-10, 0)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ErrCpioRange},
		{"root is a symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "link")
			if err := os.Symlink(dir, p); err != nil {
				t.Fatal(err)
			}
			return p
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteCpio(&buf, tc.setup(t, t.TempDir()), cpioEpoch)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("error %v, want an error (matching %v)", err, tc.want)
			}
		})
	}
}

package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// A hostile umask for every test: exact modes must not depend on it.
	syscall.Umask(0o077)
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets owners and setuid bits of files (CI runs it as root)")
	}
}

// ent is one entry of a test tree built on the host.
type ent struct {
	kind     byte // 'f', 'd', 'l'
	data     string
	mode     uint32 // raw st_mode bits, so setuid & co read as in ls -l
	uid, gid int
}

func file(data string, mode uint32) ent { return ent{kind: 'f', data: data, mode: mode} }
func dir(mode uint32) ent               { return ent{kind: 'd', mode: mode} }
func link(target string) ent            { return ent{kind: 'l', data: target} }
func (e ent) owner(uid, gid int) ent    { e.uid, e.gid = uid, gid; return e }

// build creates tree under base with host calls. Keys are slash paths;
// missing parents become 0755 directories. It refuses keys below a symlink
// of the tree so that building can never write through one.
func build(t *testing.T, base string, tree map[string]ent) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(tree))
	for _, k := range keys {
		for _, l := range keys {
			if tree[l].kind == 'l' && strings.HasPrefix(k, l+"/") {
				t.Fatalf("test tree: %s is below symlink %s", k, l)
			}
		}
		e, p := tree[k], filepath.Join(base, k)
		mkdirs(t, filepath.Dir(p))
		switch e.kind {
		case 'd':
			must(t, os.Mkdir(p, 0o700))
		case 'f':
			must(t, os.WriteFile(p, []byte(e.data), 0o600))
		case 'l':
			must(t, os.Symlink(e.data, p))
		}
		must(t, os.Lchown(p, e.uid, e.gid))
		if e.kind != 'l' {
			must(t, unix.Chmod(p, e.mode))
		}
	}
}

// mkdirs is os.MkdirAll with 0755 despite the test umask.
func mkdirs(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		return
	}
	mkdirs(t, filepath.Dir(p))
	must(t, os.Mkdir(p, 0o755))
	must(t, os.Chmod(p, 0o755))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// describe renders the host entry p for comparisons: type, exact mode bits
// (with setuid, setgid, sticky), owner and content or target. It refuses
// paths whose parents are symlinks, so an assertion cannot itself escape.
func describe(t *testing.T, p string) string {
	t.Helper()
	d := filepath.Dir(p)
	if real, err := filepath.EvalSymlinks(d); err == nil && real != d {
		t.Fatalf("describe %s: parent is reached through a symlink (%s)", p, real)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return "missing"
		}
		t.Fatal(err)
	}
	perm, own := st.Mode&0o7777, fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fmt.Sprintf("dir %04o %s", perm, own)
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		must(t, err)
		return fmt.Sprintf("file %04o %s %q", perm, own, b)
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		must(t, err)
		return fmt.Sprintf("link %s -> %s", own, target)
	}
	return fmt.Sprintf("%s %04o %s", typeName(st.Mode), perm, own)
}

// expect compares describe of each host path (relative to base) with want.
func expect(t *testing.T, base string, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got := describe(t, filepath.Join(base, k)); got != want[k] {
			t.Errorf("%s:\n got  %s\n want %s", k, got, want[k])
		}
	}
}

// snapshot describes every entry under base, skipping the subtree skip,
// with modification times, so any change to what it covers shows.
func snapshot(t *testing.T, base, skip string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		// ctime catches every inode change the rest misses: xattrs,
		// links, and metadata set back to its old value.
		m[p] = fmt.Sprintf("%s nlink=%d mtime=%d.%09d ctime=%d.%09d", describe(t, p), st.Nlink, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		return nil
	})
	must(t, err)
	return m
}

func diffSnapshots(before, after map[string]string) []string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if a, ok := after[k]; !ok {
			d = append(d, fmt.Sprintf("removed %s (%s)", k, before[k]))
		} else if a != before[k] {
			d = append(d, fmt.Sprintf("changed %s: %s => %s", k, before[k], a))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[k]; !ok {
			d = append(d, fmt.Sprintf("added %s (%s)", k, after[k]))
		}
	}
	return d
}

// noTempFiles fails if a WriteFile or Symlink temporary is left in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".imgplan-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// newRoot builds tree in a fresh directory and opens it as a root.
func newRoot(t *testing.T, tree map[string]ent) (*Root, string) {
	t.Helper()
	needRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	dir = filepath.Join(dir, "root")
	mkdirs(t, dir)
	build(t, dir, tree)
	r, err := Open(dir)
	must(t, err)
	t.Cleanup(func() {
		r.Close()
		noTempFiles(t, dir)
	})
	return r, dir
}

// fixture is an adversarial image root next to a host sentinel directory.
type fixture struct {
	r        *Root
	base     string // holds sentinel and root; everything but root is "outside"
	root     string // host path of the image root
	sentinel string // host directory the image's symlinks aim at
	shadow   string // image path of sentinel, i.e. where chroot semantics send them
	escaped  bool   // set by the test that escapes on purpose
}

// adversarial builds a root whose symlinks aim at the sentinel outside it:
//
//	/etc    -> <sentinel>                   absolute host path
//	/etc2   -> ../../../…/<sentinel>        ".." chain far past the root
//	/loop   -> /loop, /a -> /b, /b -> /a    loops
//	/dangle -> /nowhere
//	/self   -> /proc/self/root, /fd0 -> /proc/self/fd/0   magic-link style
//	<sentinel>/motd -> <sentinel>/file      (the shadow inside the root)
//	<sentinel>/rel  -> ../../…/<sentinel>/file
//	/dir/{hostlink -> <sentinel>, rellink -> ../../…/<sentinel>/file, keep}
//	/real/f
//
// The shadow, root+sentinel, exists so writes through those links succeed
// and can be checked to land there. Cleanup fails the test if anything
// outside the root changed.
func adversarial(t *testing.T) *fixture {
	t.Helper()
	needRoot(t)
	base, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	f := &fixture{base: base, sentinel: filepath.Join(base, "sentinel"), root: filepath.Join(base, "deep", "er", "root")}
	f.shadow = f.sentinel
	build(t, f.sentinel, map[string]ent{
		"file":      file("precious\n", 0o644),
		"sub":       dir(0o755),
		"sub/inner": file("inner\n", 0o600).owner(3, 3),
	})
	up, s := strings.Repeat("../", 16), f.sentinel[1:]
	build(t, f.root, map[string]ent{
		"etc":           link(f.sentinel),
		"etc2":          link(up + s),
		"loop":          link("/loop"),
		"a":             link("/b"),
		"b":             link("/a"),
		"dangle":        link("/nowhere"),
		"self":          link("/proc/self/root"),
		"fd0":           link("/proc/self/fd/0"),
		s:               dir(0o755),
		s + "/motd":     link(f.sentinel + "/file"),
		s + "/rel":      link(up + s + "/file"),
		"dir":           dir(0o755),
		"dir/hostlink":  link(f.sentinel),
		"dir/rellink":   link(up + s + "/file"),
		"dir/keep":      file("keep\n", 0o644),
		"real":          dir(0o755),
		"real/f":        file("f\n", 0o644),
		"real/sub":      dir(0o755),
		"real/sub/leaf": file("leaf\n", 0o644),
	})
	before := snapshot(t, base, f.root)
	f.r, err = Open(f.root)
	must(t, err)
	t.Cleanup(func() {
		f.r.Close()
		if f.escaped {
			return
		}
		for _, d := range diffSnapshots(before, snapshot(t, base, f.root)) {
			t.Errorf("outside the root: %s", d)
		}
		noTempFiles(t, f.root)
	})
	return f
}

// in returns the host path of an image path that contains no symlinks.
func (f *fixture) in(p string) string { return filepath.Join(f.root, p) }

// check compares err with want: nil must succeed, errAny any error,
// anything else errors.Is.
func check(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == errAny && err == nil:
		t.Fatal("no error, want one")
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// errAny as a wanted error accepts any error.
var errAny = errors.New("any error")

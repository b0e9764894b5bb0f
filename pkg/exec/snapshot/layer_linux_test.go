package snapshot

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mustWhiteout(t *testing.T, p string) {
	t.Helper()
	if err := makeWhiteout(p); err != nil {
		t.Fatal(err)
	}
}

func mustSetxattr(t *testing.T, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}

// TestApplyLayer applies a hand-made layer with whiteouts and opaque
// directories and checks the result entry by entry and against overlayfs.
func TestApplyLayer(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	l1, l2 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2")
	for _, f := range []string{"a", "b", "d/x", "d/y", "e/z", "e/sub/w", "f", "g/k", "h/k", "h/keep"} {
		writeFile(t, filepath.Join(l1, f), "l1 "+f)
	}
	if err := os.Symlink("a", filepath.Join(l1, "s")); err != nil {
		t.Fatal(err)
	}

	mkdirs(t, l2, filepath.Join(l2, "h"), filepath.Join(l2, "f"))
	mustWhiteout(t, filepath.Join(l2, "a"))                   // a deleted file
	mustWhiteout(t, filepath.Join(l2, "d"))                   // a deleted directory
	mustWhiteout(t, filepath.Join(l2, "never"))               // deleting what is not there
	writeFile(t, filepath.Join(l2, "e", "new"), "l2 e/new")   // e replaced by an opaque dir
	mustSetxattr(t, filepath.Join(l2, "e"), opaqueXattr, "y") //
	writeFile(t, filepath.Join(l2, "f", "in"), "l2 f/in")     // a dir over a file
	writeFile(t, filepath.Join(l2, "g"), "l2 g")              // a file over a dir
	mustWhiteout(t, filepath.Join(l2, "h", "k"))              // merge: one deleted,
	writeFile(t, filepath.Join(l2, "h", "m"), "l2 h/m")       // one added
	if err := unix.Chmod(filepath.Join(l2, "h"), 0o710); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(l2, "p1"), "linked") // hardlinks within the layer
	mkdirs(t, filepath.Join(l2, "n"))
	if err := os.Link(filepath.Join(l2, "p1"), filepath.Join(l2, "n", "p2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(l2, "s")); err != nil { // symlink retargeted
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(l2, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(l2, "sparse")) // 8 MiB, one block of data at 4 MiB
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sparse.WriteAt([]byte("data"), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	writeFile(t, filepath.Join(l2, "b"), "l2 b")
	mustSetxattr(t, filepath.Join(l2, "b"), "user.x", "1")
	mustSetxattr(t, filepath.Join(l2, "b"), "trusted.overlay.origin", "ignored") // bookkeeping

	tree := filepath.Join(dir, "tree")
	mkdirs(t, tree)
	if _, err := Materialize([]string{l1, l2}, tree); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "d", "never", "e/z", "e/sub", "h/k"} {
		assertMissing(t, filepath.Join(tree, p))
	}
	for p, want := range map[string]string{"b": "l2 b", "e/new": "l2 e/new", "f/in": "l2 f/in",
		"g": "l2 g", "h/m": "l2 h/m", "h/keep": "l1 h/keep", "n/p2": "linked"} {
		if got := readFile(t, filepath.Join(tree, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if st := mustLstat(t, filepath.Join(tree, "h")); st.Mode&07777 != 0o710 {
		t.Errorf("h mode %#o, want the layer's 0710", st.Mode&07777)
	}
	if a, b := mustLstat(t, filepath.Join(tree, "p1")), mustLstat(t, filepath.Join(tree, "n", "p2")); a.Ino != b.Ino {
		t.Error("p1 and n/p2 are no longer hardlinked")
	}
	if st := mustLstat(t, filepath.Join(tree, "null")); st.Rdev != unix.Mkdev(1, 3) || fileType(st) != unix.S_IFCHR {
		t.Errorf("null: mode %#o rdev %d", st.Mode, st.Rdev)
	}
	if st := mustLstat(t, filepath.Join(tree, "sparse")); st.Size != 8<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("sparse: size %d, %d bytes allocated", st.Size, st.Blocks*512)
	}
	if x := overlayXattrsIn(t, tree); len(x) > 0 {
		t.Errorf("overlay xattrs copied: %v", x)
	}

	merged := filepath.Join(dir, "merged")
	mkdirs(t, merged)
	mustMount(t, []string{l2, l1}, "", "", merged)
	compareManifests(t, merged, tree)
	compareMeta(t, merged, tree, nil)
	mustUnmount(t, merged)
}

func TestUnsupportedLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets trusted.* xattrs")
	}
	for _, tc := range []struct{ name, xattr, value string }{
		{"redirect", "trusted.overlay.redirect", "/elsewhere"},
		{"metacopy", "trusted.overlay.metacopy", ""},
		{"opaque x", opaqueXattr, "x"},
		{"unknown", "trusted.overlay.future", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			layer, tree := filepath.Join(dir, "layer"), filepath.Join(dir, "tree")
			mkdirs(t, filepath.Join(layer, "d"), tree)
			mustSetxattr(t, filepath.Join(layer, "d"), tc.xattr, tc.value)
			if err := ApplyLayer(layer, tree); !errors.Is(err, ErrUnsupportedLayer) {
				t.Errorf("ApplyLayer: %v, want ErrUnsupportedLayer", err)
			}
			if err := Normalize(layer); !errors.Is(err, ErrUnsupportedLayer) {
				t.Errorf("Normalize: %v, want ErrUnsupportedLayer", err)
			}
		})
	}
}

func TestDiffPreconditions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: copies ownership")
	}
	dir := t.TempDir()
	tree, other, upper := filepath.Join(dir, "tree"), filepath.Join(dir, "other"), filepath.Join(dir, "upper")
	mkdirs(t, tree, other, upper)
	b, err := Materialize(nil, tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := Diff(other, b, upper); err == nil {
		t.Error("Diff of another tree: no error")
	}
	writeFile(t, filepath.Join(upper, "x"), "")
	if err := Diff(tree, b, upper); err == nil {
		t.Error("Diff into a non-empty upper: no error")
	}
	if _, err := Materialize(nil, upper); err == nil {
		t.Error("Materialize into a non-empty dir: no error")
	}
}

// A stage that changes nothing yields an empty layer whose root carries the
// tree's root metadata.
func TestDiffUnchanged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: copies ownership")
	}
	dir := t.TempDir()
	base, tree, upper := filepath.Join(dir, "base"), filepath.Join(dir, "tree"), filepath.Join(dir, "upper")
	writeFile(t, filepath.Join(base, "d", "f"), "x")
	if err := unix.Chmod(base, 0o751); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, tree, upper)
	b, err := Materialize([]string{base}, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(tree, "d", "f")); err != nil { // reading changes nothing
		t.Fatal(err)
	}
	if err := Diff(tree, b, upper); err != nil {
		t.Fatal(err)
	}
	names, err := readDirNames(upper)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("layer of an unchanged tree holds %v", names)
	}
	if st := mustLstat(t, upper); st.Mode&07777 != 0o751 {
		t.Errorf("layer root mode %#o, want 0751", st.Mode&07777)
	}
}

// A directory removed and recreated becomes opaque, even when the new
// directory got the old one's inode number back.
func TestDiffRecreatedDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets trusted.* xattrs")
	}
	dir := t.TempDir()
	base, tree, upper := filepath.Join(dir, "base"), filepath.Join(dir, "tree"), filepath.Join(dir, "upper")
	writeFile(t, filepath.Join(base, "d", "x"), "x")
	writeFile(t, filepath.Join(base, "d", "y"), "y")
	mkdirs(t, tree, upper)
	b, err := Materialize([]string{base}, tree)
	if err != nil {
		t.Fatal(err)
	}
	old := mustLstat(t, filepath.Join(tree, "d"))
	if err := os.RemoveAll(filepath.Join(tree, "d")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "d", "z"), "z")
	t.Logf("inode number reused: %v", mustLstat(t, filepath.Join(tree, "d")).Ino == old.Ino)
	if err := Diff(tree, b, upper); err != nil {
		t.Fatal(err)
	}
	assertOpaque(t, filepath.Join(upper, "d"), true)
	assertMissing(t, filepath.Join(upper, "d", "x"))
	if got := readFile(t, filepath.Join(upper, "d", "z")); got != "z" {
		t.Errorf("d/z = %q", got)
	}
}

// On a filesystem with one-second timestamps and no birth times (ext4 with
// 128-byte inodes), a change made right after Materialize must still show:
// Materialize waits for the clock to pass the baseline.
func TestDiffCoarseTimestamps(t *testing.T) {
	privateNS(t)
	for _, tool := range []string{"mkfs.ext4", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	dir := testDir(t)
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	mkdirs(t, mnt)
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"mkfs.ext4", "-q", "-F", "-I", "128", img},
		{"mount", "-o", "loop", img, mnt},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v: %v: %s", cmd, err, out)
		}
	}
	defer mustUnmount(t, mnt)

	base, tree, upper := filepath.Join(dir, "base"), filepath.Join(mnt, "tree"), filepath.Join(dir, "upper")
	writeFile(t, filepath.Join(base, "f"), "aaaa")
	writeFile(t, filepath.Join(base, "d", "x"), "x")
	mkdirs(t, tree, upper)
	start := time.Now()
	b, err := Materialize([]string{base}, tree)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stampOf(filepath.Join(tree, "f"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Materialize took %v; ctime %d.%09d; birth time recorded: %v", time.Since(start), s.ctime.Sec, s.ctime.Nsec, s.btime != unix.StatxTimestamp{})

	f, err := os.OpenFile(filepath.Join(tree, "f"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("bbbb"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.RemoveAll(filepath.Join(tree, "d")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "d", "y"), "y")
	if err := Diff(tree, b, upper); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(upper, "f")); got != "bbbb" {
		t.Errorf("layer f = %q, want the change", got)
	}
	again := filepath.Join(dir, "again")
	mkdirs(t, again)
	if _, err := Materialize([]string{base, upper}, again); err != nil {
		t.Fatal(err)
	}
	compareManifests(t, tree, again)
	compareMeta(t, tree, again, nil)
}

package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var forcedMethods = []mountMethod{methodFsconfigFD, methodFsconfigPath, methodClassic}

func TestOverlayBasics(t *testing.T) {
	for _, m := range forcedMethods {
		t.Run(m.String(), func(t *testing.T) {
			privateNS(t)
			dir := testDir(t)
			l1, l2, l3 := filepath.Join(dir, "l1"), filepath.Join(dir, "l2"), filepath.Join(dir, "l3")
			upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
			mkdirs(t, l1, l2, l3, upper, work, merged)
			writeFile(t, filepath.Join(l1, "a"), "l1")
			writeFile(t, filepath.Join(l1, "b"), "l1")
			writeFile(t, filepath.Join(l1, "c"), "l1")
			writeFile(t, filepath.Join(l1, "d", "x"), "l1")
			writeFile(t, filepath.Join(l2, "b"), "l2")
			writeFile(t, filepath.Join(l2, "c"), "l2")
			writeFile(t, filepath.Join(l2, "d", "y"), "l2")
			writeFile(t, filepath.Join(l3, "c"), "l3")
			lowers := []string{l3, l2, l1} // topmost first

			if err := InitUpper(lowers, upper); err != nil {
				t.Fatal(err)
			}
			got, err := mountOverlay(lowers, upper, work, merged, m)
			if err != nil {
				t.Fatal(err)
			}
			if got != m {
				t.Errorf("mounted with %v, want %v", got, m)
			}
			for name, want := range map[string]string{"a": "l1", "b": "l2", "c": "l3", "d/x": "l1", "d/y": "l2"} {
				if got := readFile(t, filepath.Join(merged, name)); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if err := os.Remove(filepath.Join(merged, "a")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(merged, "d")); err != nil {
				t.Fatal(err)
			}
			mkdirs(t, filepath.Join(merged, "d"))
			writeFile(t, filepath.Join(merged, "d", "z"), "upper")
			writeFile(t, filepath.Join(merged, "b"), "upper")
			mustUnmount(t, merged)

			assertWhiteout(t, filepath.Join(upper, "a"))
			assertOpaque(t, filepath.Join(upper, "d"), true)
			assertMissing(t, filepath.Join(upper, "d", "x"))
			if got := readFile(t, filepath.Join(upper, "b")); got != "upper" {
				t.Errorf("upper b = %q", got)
			}
			assertMissing(t, filepath.Join(upper, "c"))
			if err := Normalize(upper); err != nil {
				t.Fatal(err)
			}
			for _, x := range overlayXattrsIn(t, upper) {
				if !strings.HasSuffix(x, `/d trusted.overlay.opaque="y"`) {
					t.Errorf("after Normalize: %s", x)
				}
			}

			// Read-only: the upper as the top layer.
			ro := []string{upper, l3, l2, l1}
			if _, err := mountOverlay(ro, "", "", merged, m); err != nil {
				t.Fatal(err)
			}
			assertMissing(t, filepath.Join(merged, "a"))
			assertMissing(t, filepath.Join(merged, "d", "x"))
			assertMissing(t, filepath.Join(merged, "d", "y"))
			for name, want := range map[string]string{"b": "upper", "c": "l3", "d/z": "upper"} {
				if got := readFile(t, filepath.Join(merged, name)); got != want {
					t.Errorf("read-only %s = %q, want %q", name, got, want)
				}
			}
			err = os.WriteFile(filepath.Join(merged, "new"), nil, 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write to read-only overlay: %v, want EROFS", err)
			}
			mustUnmount(t, merged)

			// A single read-only layer keeps overlay semantics: its whiteouts
			// and opaque marks stay hidden.
			if got, err := mountOverlay([]string{upper}, "", "", merged, m); err != nil {
				t.Fatal(err)
			} else if got == methodBind {
				t.Errorf("single layer mounted as a bind mount")
			}
			assertMissing(t, filepath.Join(merged, "a"))
			if _, err := getXattr(filepath.Join(merged, "d"), opaqueXattr); err == nil {
				t.Errorf("opaque xattr visible through the overlay")
			}
			if err := os.WriteFile(filepath.Join(merged, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("write to single-layer overlay: %v, want EROFS", err)
			}
			mustUnmount(t, merged)
		})
	}
}

func TestUpperWithoutLowers(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	mkdirs(t, upper, work, merged)
	m, err := mountOverlay(nil, upper, work, merged, methodAuto)
	if err != nil {
		t.Fatal(err)
	}
	if m != methodBind {
		t.Errorf("method %v, want bind", m)
	}
	writeFile(t, filepath.Join(merged, "f"), "x")
	mustUnmount(t, merged)
	if got := readFile(t, filepath.Join(upper, "f")); got != "x" {
		t.Errorf("upper f = %q", got)
	}
}

func TestMountArgs(t *testing.T) {
	for _, tc := range []struct {
		name                string
		lowers              []string
		upper, work, target string
	}{
		{"no target", []string{"/a"}, "", "", ""},
		{"nothing", nil, "", "", "/t"},
		{"upper without work", []string{"/a"}, "/u", "", "/t"},
		{"too deep", make([]string, maxLowers+1), "", "", "/t"},
		{"empty lower", []string{"/a", ""}, "", "", "/t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := MountOverlay(tc.lowers, tc.upper, tc.work, tc.target); err == nil {
				t.Error("no error")
			}
		})
	}
}

// longLayers makes n layers whose paths are all longer than 100 bytes (every
// tenth longer than fsconfig's 255-byte string limit). Layer i holds
// "layer-i" and "top" = i; the bottom one also holds "bottom".
func longLayers(t *testing.T, dir string, n int) []string {
	t.Helper()
	name := strings.Repeat("long-layer-name-", 7) // 112 bytes
	lowers := make([]string, n)
	for i := range lowers {
		p := filepath.Join(dir, fmt.Sprintf("%s%03d", name, i))
		if i%10 == 0 {
			p = filepath.Join(p, name, name) // > 255 bytes
		}
		writeFile(t, filepath.Join(p, fmt.Sprintf("layer-%03d", i)), "x")
		writeFile(t, filepath.Join(p, "top"), fmt.Sprint(i))
		lowers[i] = p
	}
	writeFile(t, filepath.Join(lowers[n-1], "bottom"), "bottom")
	return lowers
}

func TestDeepStack(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	lowers := longLayers(t, dir, 150)
	total := 0
	for _, l := range lowers {
		total += len(l) + 1
	}
	t.Logf("150 layers, %d bytes of paths", total)
	merged := filepath.Join(dir, "merged")
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	mkdirs(t, merged, upper, work)

	for _, m := range []mountMethod{methodAuto, methodFsconfigFD, methodFsconfigPath} {
		for _, rw := range []bool{false, true} {
			u, w := "", ""
			if rw {
				u, w = upper, work
			}
			start := time.Now()
			used, err := mountOverlay(lowers, u, w, merged, m)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v rw=%v: mounted 150 layers with %v in %v", m, rw, used, time.Since(start))
			checkDeepStack(t, merged)
			mustUnmount(t, merged)
		}
	}
}

func checkDeepStack(t *testing.T, merged string) {
	t.Helper()
	if got := readFile(t, filepath.Join(merged, "bottom")); got != "bottom" {
		t.Errorf("bottom = %q", got)
	}
	if got := readFile(t, filepath.Join(merged, "top")); got != "0" {
		t.Errorf("top = %q, want the topmost layer's", got)
	}
	names, err := readDirNames(merged)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 152 {
		t.Errorf("%d entries, want 152", len(names))
	}
}

func TestClassicMountDeepStack(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	lowers := longLayers(t, dir, 150)
	merged := filepath.Join(dir, "merged")
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	mkdirs(t, merged, upper, work)
	start := time.Now()
	if _, err := mountOverlay(lowers, upper, work, merged, methodClassic); err != nil {
		t.Fatal(err)
	}
	t.Logf("mount(2): mounted 150 layers in %v", time.Since(start))
	checkDeepStack(t, merged)
	writeFile(t, filepath.Join(merged, "new"), "x")
	mustUnmount(t, merged)
	if got := readFile(t, filepath.Join(upper, "new")); got != "x" {
		t.Errorf("upper new = %q", got)
	}
}

func TestEscapeOption(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/path": "/plain/path",
		"/a:b,c\\d":   `/a\:b\,c\\d`,
		`/x\:`:        `/x\\\:`,
	} {
		if got := escapeOption(in); got != want {
			t.Errorf("escapeOption(%q) = %q, want %q", in, got, want)
		}
	}
}

// Without /proc/self/fd the classic mount names layers by escaped paths; a
// layer path with the separators in it must still mount.
func TestClassicMountEscapedPaths(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	l1, l2 := filepath.Join(dir, `odd:name,with\chars`), filepath.Join(dir, "l2")
	merged := filepath.Join(dir, "merged")
	writeFile(t, filepath.Join(l1, "a"), "l1")
	writeFile(t, filepath.Join(l2, "b"), "l2")
	mkdirs(t, merged)
	// Hide /proc in this namespace so procFDUsable is false.
	if err := unix.Mount("tmpfs", "/proc", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount("/proc", unix.MNT_DETACH) }) // before testDir's checks
	if procFDUsable() {
		t.Fatal("/proc/self/fd still usable")
	}
	if _, err := mountOverlay([]string{l2, l1}, "", "", merged, methodClassic); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(merged, "a")); got != "l1" {
		t.Errorf("a = %q", got)
	}
	mustUnmount(t, merged)
}

func TestOverlaySupported(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	if err := OverlaySupported(dir); err != nil {
		t.Fatal(err)
	}
	names, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("probe left %v behind", names)
	}
	if err := OverlaySupported(filepath.Join(dir, "missing")); !errors.Is(err, ErrNoOverlay) {
		t.Errorf("probe under a missing dir: %v, want ErrNoOverlay", err)
	}
}

// The bind mount MountOverlay falls back to for one read-only layer on
// kernels without data-only layers.
func TestBindMountReadOnly(t *testing.T) {
	privateNS(t)
	dir := testDir(t)
	src, target := filepath.Join(dir, "src"), filepath.Join(dir, "target")
	writeFile(t, filepath.Join(src, "f"), "x")
	mkdirs(t, target)
	if err := bindMount(src, target, true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(target, "f")); got != "x" {
		t.Errorf("f = %q", got)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write: %v, want EROFS", err)
	}
	mustUnmount(t, target)
}

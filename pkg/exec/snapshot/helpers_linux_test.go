package snapshot

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/continuity"
	"golang.org/x/sys/unix"
)

// Mount namespaces in tests.
//
// Each test that mounts calls privateNS, which locks the test goroutine to
// its OS thread, unshares that thread's mount namespace and makes every mount
// in it private — and never unlocks the thread, so when the test goroutine
// ends the runtime ends the thread, and the namespace and anything still
// mounted in it with the thread. (Re-executing the test binary would isolate
// more, but costs a process per test and hides failures behind exit codes.)
// Consequences: a test does all its mounted-path work on its own goroutine;
// cleanups (which run on that goroutine) still see the private namespace.
//
// init locks the main goroutine to the main thread, so no test ever runs on
// the thread group leader: /proc/self/mountinfo keeps showing the host's
// namespace, and each test checks it for leaks.
func init() { runtime.LockOSThread() }

func privateNS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs in a private mount namespace")
	}
	runtime.LockOSThread() // never unlocked, see above
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare mount namespace: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / rprivate: %v", err)
	}
}

// testDir returns a new temporary directory and registers a check, run
// before the directory is removed, that nothing stays mounted under it:
// not in the host's namespace (a leak out of the test's namespace), and not
// in the test's own (a missing Unmount, detached so removal can proceed).
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, m := range mountsUnder(t, "/proc/self/mountinfo", dir) {
			t.Errorf("mount leaked into the host namespace: %s", m)
		}
		for _, m := range mountsUnder(t, "/proc/thread-self/mountinfo", dir) {
			t.Errorf("left mounted: %s", m)
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
				t.Errorf("detach %s: %v", m, err)
			}
		}
	})
	return dir
}

func mountsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatalf("read %s: %v", mountinfo, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.Reverse(out) // innermost first, for detaching
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for space...) of
// /proc/*/mountinfo.
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mustMount mounts and registers nothing: tests unmount explicitly, so that
// Unmount is exercised and a forgotten one is reported by testDir.
func mustMount(t *testing.T, lowers []string, upper, work, target string) {
	t.Helper()
	if err := MountOverlay(lowers, upper, work, target); err != nil {
		t.Fatal(err)
	}
}

func mustUnmount(t *testing.T, target string) {
	t.Helper()
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustLstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	st, err := lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func assertMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s: want it gone, lstat says %v", p, err)
	}
}

func assertWhiteout(t *testing.T, p string) {
	t.Helper()
	if st := mustLstat(t, p); !isWhiteout(st) {
		t.Errorf("%s: want a whiteout (c 0:0), have mode %#o rdev %d", p, st.Mode, st.Rdev)
	}
}

func assertOpaque(t *testing.T, p string, want bool) {
	t.Helper()
	v, err := getXattr(p, opaqueXattr)
	if got := err == nil && string(v) == "y"; got != want {
		t.Errorf("%s: opaque = %v, want %v (%q, %v)", p, got, want, v, err)
	}
}

// overlayXattrsIn lists the trusted.overlay.* xattrs anywhere under root.
func overlayXattrsIn(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		names, err := listXattrs(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			if strings.HasPrefix(n, overlayXattrPrefix) {
				v, _ := getXattr(p, n)
				out = append(out, fmt.Sprintf("%s %s=%q", strings.TrimPrefix(p, root), n, v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Tree comparison.

// compareManifests compares two trees with continuity: paths, types, modes,
// owners, xattrs, content digests, symlink targets, device numbers and
// hardlink groups (not times, and not the root, which continuity skips).
func compareManifests(t *testing.T, a, b string) {
	t.Helper()
	ta, tb := manifestText(t, a), manifestText(t, b)
	if ta == tb {
		return
	}
	ra, rb := splitResources(ta), splitResources(tb)
	var diffs []string
	for _, k := range sortedKeys(ra, rb) {
		if ra[k] != rb[k] {
			diffs = append(diffs, fmt.Sprintf("%s:\n  %s\n  %s", k, orNone(ra[k]), orNone(rb[k])))
		}
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
	}
	t.Errorf("continuity manifests of %s and %s differ:\n%s", a, b, strings.Join(diffs, "\n"))
}

func manifestText(t *testing.T, root string) string {
	t.Helper()
	ctx, err := continuity.NewContext(root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := continuity.BuildManifest(noSockets{ctx})
	if err != nil {
		t.Fatalf("manifest of %s: %v", root, err)
	}
	var buf bytes.Buffer
	if err := continuity.MarshalText(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// noSockets hides sockets from continuity 0.5.0, which fails on them (it
// compares a wrapped ErrNotFound with ==); compareMeta covers them.
type noSockets struct{ continuity.Context }

func (c noSockets) Walk(fn filepath.WalkFunc) error {
	return c.Context.Walk(func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		return fn(p, fi, err)
	})
}

// splitResources keys the "resource: { ... }" blocks of a text manifest by
// their first path line.
func splitResources(text string) map[string]string {
	out := map[string]string{}
	for _, block := range strings.Split(text, "resource:")[1:] {
		lines := strings.Fields(strings.ReplaceAll(block, "\n", " "))
		key := strings.Join(lines, " ")
		if len(lines) > 2 {
			key = lines[2] // path: "..."
		}
		out[key] = strings.Join(lines, " ")
	}
	return out
}

// Metadata snapshots: what continuity leaves out (times, the root, xattrs of
// devices and fifos, sockets).

type meta struct {
	typ, perm  uint32
	uid, gid   uint32
	rdev, size uint64
	mtime      unix.Timespec
	link       string
	xattrs     string
}

func (m meta) String() string {
	return fmt.Sprintf("type %#o perm %#o owner %d:%d rdev %d size %d mtime %d.%09d link %q xattrs {%s}",
		m.typ, m.perm, m.uid, m.gid, m.rdev, m.size, m.mtime.Sec, m.mtime.Nsec, m.link, m.xattrs)
}

// metaTree describes every entry under root, the root itself as "".
func metaTree(t *testing.T, root string) map[string]meta {
	t.Helper()
	out := map[string]meta{}
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		st := mustLstat(t, p)
		x, err := readXattrs(p)
		if err != nil {
			t.Fatal(err)
		}
		var xs []string
		for k, v := range x {
			xs = append(xs, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(xs)
		m := meta{typ: fileType(st), perm: st.Mode & 07777, uid: st.Uid, gid: st.Gid,
			rdev: st.Rdev, mtime: st.Mtim, xattrs: strings.Join(xs, " ")}
		switch m.typ {
		case unix.S_IFREG:
			m.size = uint64(st.Size)
		case unix.S_IFLNK:
			m.link, _ = os.Readlink(p)
		}
		out[rel] = m
		if isDir(st) {
			names, err := readDirNames(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				walk(path.Join(rel, n))
			}
		}
	}
	walk("")
	return out
}

// compareMeta compares two trees entry by entry, mtimes included except for
// entries in timeDirty (changed at different moments in the two trees).
func compareMeta(t *testing.T, a, b string, timeDirty map[string]bool) {
	t.Helper()
	ma, mb := metaTree(t, a), metaTree(t, b)
	var diffs []string
	for _, k := range sortedKeys(ma, mb) {
		x, inA := ma[k]
		y, inB := mb[k]
		if inA && inB && timeDirty[k] {
			x.mtime, y.mtime = unix.Timespec{}, unix.Timespec{}
		}
		switch {
		case !inA || !inB:
			diffs = append(diffs, fmt.Sprintf("/%s: only in %s", k, map[bool]string{true: "first", false: "second"}[inA]))
		case x != y:
			diffs = append(diffs, fmt.Sprintf("/%s:\n  %v\n  %v", k, x, y))
		}
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
	}
	if len(diffs) > 0 {
		t.Errorf("trees %s and %s differ:\n%s", a, b, strings.Join(diffs, "\n"))
	}
}

func sortedKeys[V any](ms ...map[string]V) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

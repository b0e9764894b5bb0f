package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testParentEnv makes the test binary act as imgplan itself (the parent of
// a sandbox) so a test can SIGKILL it.
const testParentEnv = "SANDBOX_TEST_PARENT"

func TestMain(m *testing.M) {
	Init()
	if arg := os.Getenv(testParentEnv); arg != "" {
		os.Exit(helperParent(arg))
	}
	os.Exit(m.Run())
}

// helperParent runs the blocking sandbox until it is killed.
func helperParent(arg string) int {
	var a blockArg
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err := Run(context.Background(), "test-block", a, Options{Stdout: os.Stderr, Stderr: os.Stderr})
	fmt.Fprintln(os.Stderr, "helper parent: Run returned:", err)
	return 1
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces and mounts (CI runs it as root)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (Debian busybox-static) for test roots")
	}
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// sharedTempDir is a temporary directory bind-mounted onto itself with
// shared propagation, so a mount made below it in the sandbox would show on
// the host if the sandbox failed to make its mounts private.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount test dir: %v", err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

var applets = sync.OnceValues(func() ([]string, error) {
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
})

type rootOpts struct {
	full   bool   // the usual top-level directories and /usr/sbin
	marker string // a /<marker>/sleep link to busybox, for daemons to find
}

// buildRoot makes a tiny image root: a static busybox and its applets.
func buildRoot(t *testing.T, root string, o rootOpts) {
	t.Helper()
	names, err := applets()
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755))
	for _, n := range names {
		if n != "busybox" {
			must(t, os.Symlink("busybox", filepath.Join(root, "bin", n)))
		}
	}
	if o.full {
		for _, d := range []string{"proc", "sys", "dev", "run", "etc", "root", "usr/sbin"} {
			must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		}
		must(t, os.Mkdir(filepath.Join(root, "tmp"), 0o755))
		must(t, os.Chmod(filepath.Join(root, "tmp"), 0o1777))
		must(t, os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 192.0.2.1\n"), 0o644))
	}
	if o.marker != "" {
		must(t, os.Mkdir(filepath.Join(root, o.marker), 0o755))
		must(t, os.Symlink("/bin/busybox", filepath.Join(root, o.marker, "sleep")))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry below dir: type, mode, size, link target,
// and for small regular files a content digest.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		case fi.Mode().IsRegular():
			desc += fmt.Sprintf(" %d", fi.Size())
			if fi.Size() < 1<<16 {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(sum[:8])
			}
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if w, ok := after[k]; !ok {
			t.Errorf("%s: %s is gone (was %s)", what, k, v)
		} else if w != v {
			t.Errorf("%s: %s changed: %s, was %s", what, k, w, v)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared (%s)", what, k, v)
		}
	}
}

// mountsUnder lists the mount points below dir in a mountinfo file.
func mountsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	return mountPointsUnder(string(b), dir)
}

func mountPointsUnder(mountinfo, dir string) []string {
	var out []string
	for _, m := range parseMountinfo(mountinfo) {
		if strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point+" ("+m.fstype+")")
		}
	}
	return out
}

type mountEntry struct{ point, fstype, opts, superOpts string }

func parseMountinfo(s string) []mountEntry {
	var out []mountEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		if sep+3 >= len(f) {
			continue
		}
		out = append(out, mountEntry{point: unescapeMount(f[4]), opts: f[5], fstype: f[sep+1], superOpts: f[sep+3]})
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
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

// procsWith lists the processes whose command line contains marker.
func procsWith(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(marker)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reapMarked kills whatever a failed test left running.
func reapMarked(t *testing.T, marker string) {
	t.Cleanup(func() {
		for _, pid := range procsWith(marker) {
			t.Logf("killing leftover process %d", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// eventually polls cond until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostPIDs are the host's PIDs of a worker and its init, read in the
// worker through the host's procfs (still at /proc outside the image).
type hostPIDs struct{ Init, Worker int }

func readHostPIDs() (hostPIDs, error) {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return hostPIDs{}, err
	}
	worker, err := strconv.Atoi(self)
	if err != nil {
		return hostPIDs{}, err
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return hostPIDs{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			ppid, err := strconv.Atoi(strings.TrimSpace(v))
			return hostPIDs{Init: ppid, Worker: worker}, err
		}
	}
	return hostPIDs{}, errors.New("no PPid in /proc/self/status")
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// childOutput collects a sandbox's output for the log of a failing test.
type childOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *childOutput) logOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			o.mu.Lock()
			defer o.mu.Unlock()
			t.Logf("sandbox output:\n%s", o.buf.String())
		}
	})
}

func testOptions(t *testing.T) Options {
	out := &childOutput{}
	out.logOnFailure(t)
	return Options{Stdout: out, Stderr: out}
}

func allAPI() APIMounts {
	return APIMounts{Proc: true, Sys: true, Dev: true, Run: true, Tmp: true, Resolv: true}
}

// runProbe runs the probe func over root and returns its report; every
// script must succeed and MountAPI must not fail unless mountErr.
func runProbe(t *testing.T, arg probeArg, mountErr bool) probeOut {
	t.Helper()
	arg.Host = os.Getpid()
	if arg.Out == "" {
		arg.Out = filepath.Join(filepath.Dir(arg.Root), randomName("probe-")+".json")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Run(ctx, "test-probe", arg, testOptions(t)); err != nil {
		t.Fatal(err)
	}
	var out probeOut
	readJSON(t, arg.Out, &out)
	must(t, os.Remove(arg.Out))
	if m := mountPointsUnder(out.HostMountinfo, filepath.Dir(arg.Root)); len(m) != 0 {
		t.Errorf("while the sandbox ran, the host saw its mounts: %v", m)
	}
	if (out.MountErr != "") != mountErr {
		t.Fatalf("MountAPI error %q, want one: %v", out.MountErr, mountErr)
	}
	for i, e := range out.Errors {
		if e != "" {
			t.Errorf("script %d %q: %s\n%s", i, arg.Scripts[i], e, out.Outputs[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

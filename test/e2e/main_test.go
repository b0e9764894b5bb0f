// Package e2e builds real images with the imgplan binary: mmdebstrap
// against the Debian archive (the host's configured sources), overlayfs,
// namespaces. Tests need root and network; they skip with -short or when
// not root. Every test shares one store, so a run bootstraps each base
// once; IMGPLAN_E2E_STORE moves it (default /var/tmp/imgplan-e2e).
package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/digest"
	iexec "github.com/imgplan/imgplan/pkg/exec"
)

var (
	bin   string // the imgplan binary under test
	store string // the shared store
	repo  string // the repository root
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Geteuid() != 0 {
		fmt.Println("e2e: skipped (needs root and network; not with -short)")
		os.Exit(0)
	}
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
	dir, err := os.MkdirTemp("", "imgplan-e2e-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "imgplan")
	build := exec.Command("go", "build", "-o", bin, "./cmd/imgplan")
	build.Dir, build.Stdout, build.Stderr = repo, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("e2e: building imgplan:", err)
		os.Exit(1)
	}
	store = os.Getenv("IMGPLAN_E2E_STORE")
	if store == "" {
		store = "/var/tmp/imgplan-e2e"
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one imgplan run.
type result struct {
	out, err string
	code     int
	report   *iexec.Report
}

// imgplan runs the binary with the shared store; out is the output
// directory (the report is read from it after apply).
func imgplan(t *testing.T, out string, args ...string) result {
	t.Helper()
	full := append([]string{}, args...)
	if len(args) > 0 && args[0] == "apply" {
		full = append(full, "--out", out)
	}
	return imgplanStore(t, store, full...)
}

// imgplanStore runs the binary with the given store.
func imgplanStore(t *testing.T, storeDir string, args ...string) result {
	t.Helper()
	full := append([]string{}, args...)
	if len(args) > 0 && (args[0] == "apply" || args[0] == "plan" || args[0] == "diff" || args[0] == "lock") {
		full = append(full, "--cache-dir", storeDir)
	}
	var out string
	for i, a := range full {
		if a == "--out" && i+1 < len(full) {
			out = full[i+1]
		}
	}
	cmd := exec.Command(bin, full...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if len(args) > 0 && args[0] == "apply" && r.code == 0 {
		b, err := os.ReadFile(filepath.Join(out, iexec.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		r.report = &iexec.Report{}
		if err := json.Unmarshal(b, r.report); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// apply runs imgplan apply and fails the test unless it succeeds.
func apply(t *testing.T, manifest, out string, extra ...string) *iexec.Report {
	t.Helper()
	r := imgplan(t, out, append([]string{"apply", manifest}, extra...)...)
	if r.code != 0 {
		t.Fatalf("imgplan apply %s: exit %d\n%s", manifest, r.code, r.err)
	}
	t.Logf("apply %s:\n%s", filepath.Base(manifest), r.err)
	return r.report
}

// statuses returns node ID → cached/built.
func statuses(r *iexec.Report) map[string]string {
	out := map[string]string{}
	for _, n := range r.Nodes {
		out[n.ID] = n.Status
	}
	return out
}

// assertBuilt checks exactly the listed nodes were built and the rest cached.
func assertBuilt(t *testing.T, r *iexec.Report, built ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range built {
		want[id] = true
	}
	for _, n := range r.Nodes {
		if want[n.ID] != (n.Status == "built") {
			t.Errorf("node %s: %s, want built=%v", n.ID, n.Status, want[n.ID])
		}
	}
}

// copyExample copies a manifest and the files it names into a new
// directory, so a test can change them.
func copyExample(t *testing.T, paths ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		cmd := exec.Command("cp", "-a", filepath.Join(repo, p), filepath.Join(dir, filepath.Base(p)))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", p, err, b)
		}
	}
	return dir
}

// mountsUnder lists mounts whose mount point is under dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

func digestOf(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

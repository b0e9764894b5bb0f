package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	iexec "github.com/imgplan/imgplan/pkg/exec"
)

// variants writes a base extending examples/debian-minimal.yaml (copied
// with its files) and variants of it, each with its own files entry and a
// tar output. extra is added to the base.
func variants(t *testing.T, base string, names ...string) (dir string) {
	t.Helper()
	dir = copyExample(t, "examples/debian-minimal.yaml", "examples/files")
	b := "apiVersion: imgplan/v1\nname: e2e-base\nextends: debian-minimal.yaml\n" + base +
		"outputs:\n  - {type: tar, path: rootfs.tar}\n"
	write(t, filepath.Join(dir, "base.yaml"), b)
	for _, n := range names {
		// The content is new in every run, so the variant's own nodes are
		// built even with a store kept from an earlier run.
		write(t, filepath.Join(dir, n+".yaml"), fmt.Sprintf(
			"apiVersion: imgplan/v1\nname: e2e-%s\nextends: base.yaml\nfiles:\n  - {dest: /etc/variant, content: \"%s %d\\n\"}\n", n, n, time.Now().UnixNano()))
	}
	return dir
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNoChangeAndOneFileChange: a second apply with no change builds
// nothing; changing one overlaid file rebuilds files and what follows.
func TestNoChangeAndOneFileChange(t *testing.T) {
	dir := variants(t, "", "one")
	m := filepath.Join(dir, "one.yaml")
	out := t.TempDir()
	apply(t, m, out)
	rep := apply(t, m, out)
	assertBuilt(t, rep)
	for _, o := range rep.Outputs {
		if o.Copied {
			t.Errorf("unchanged output %s copied again", o.Path)
		}
	}
	crontab := filepath.Join(dir, "files/debian-minimal/root.crontab")
	f, err := os.OpenFile(crontab, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "# one more line, %d\n", time.Now().UnixNano())
	f.Close()
	rep = apply(t, m, out)
	assertBuilt(t, rep, "files", "run:post-files", "fstab", "services", "finalize", "tree", "output:rootfs.tar")
}

// TestVariantsShareTheBase: a second variant reuses every stage before
// its own files.
func TestVariantsShareTheBase(t *testing.T) {
	dir := variants(t, "", "va", "vb")
	apply(t, filepath.Join(dir, "va.yaml"), t.TempDir())
	rep := apply(t, filepath.Join(dir, "vb.yaml"), t.TempDir())
	for _, id := range []string{"bootstrap", "packages", "system", "users"} {
		if s := statuses(rep)[id]; s != "cached" {
			t.Errorf("second variant: %s is %s, want cached", id, s)
		}
	}
	if s := statuses(rep)["files"]; s != "built" {
		t.Errorf("second variant: files is %s, want built", s)
	}
}

// TestConcurrentVariants: two applies of two variants of a new base,
// started together on one store: every shared node is built once, and
// both succeed.
func TestConcurrentVariants(t *testing.T) {
	// A new epoch gives the base new keys, so nothing is cached yet.
	dir := variants(t, fmt.Sprintf("epoch: %d\n", time.Now().UnixNano()%1e9), "ca", "cb")
	var wg sync.WaitGroup
	reps := make([]*iexec.Report, 2)
	for i, n := range []string{"ca", "cb"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i] = apply(t, filepath.Join(dir, n+".yaml"), t.TempDir())
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range []string{"bootstrap", "packages", "system", "users"} {
		a, b := statuses(reps[0])[id], statuses(reps[1])[id]
		if !(a == "built" && b == "cached" || a == "cached" && b == "built") {
			t.Errorf("%s: %s and %s; want it built once", id, a, b)
		}
	}
	for i, r := range reps {
		if s := statuses(r)["output:rootfs.tar"]; s != "built" {
			t.Errorf("variant %d: output %s", i, s)
		}
	}
}

// TestKillDuringPackages kills apply with SIGKILL while the packages stage
// runs: afterwards no mount or process of it remains, no object is
// partial, and the next apply resumes at packages.
func TestKillDuringPackages(t *testing.T) {
	dir := variants(t, fmt.Sprintf("epoch: %d\npackages:\n  install: [bc]\n", time.Now().UnixNano()%1e9), "kill")
	m := filepath.Join(dir, "kill.yaml")
	out := t.TempDir()
	cmd := exec.Command(bin, "apply", m, "--cache-dir", store, "--out", out)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	started := false
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 && f[0] == "build" && f[1] == "packages" {
			started = true
			break
		}
	}
	if !started {
		t.Fatal("apply ended without starting the packages stage")
	}
	time.Sleep(1500 * time.Millisecond) // well into apt-get
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("apply was not killed: %v", err)
	}

	// Within a few seconds everything of the build is gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs, mounts := buildProcesses(), mountsUnder(store)
		if len(procs)+len(mounts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after SIGKILL: processes %v, mounts %v", procs, mounts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertObjectsComplete(t)

	rep := apply(t, m, out)
	st := statuses(rep)
	if st["bootstrap"] != "cached" || st["packages"] != "built" {
		t.Errorf("after the kill: bootstrap %s, packages %s; want cached, built", st["bootstrap"], st["packages"])
	}
	// The killed build's scratch area is gone (other tests may be using
	// the store: only this manifest's keys count).
	left, _ := os.ReadDir(filepath.Join(store, "v1/tmp"))
	for _, e := range left {
		for _, n := range rep.Nodes {
			if strings.HasPrefix(e.Name(), n.Key.Hex()) {
				t.Errorf("scratch area of %s left after the next apply", n.ID)
			}
		}
	}
}

// buildProcesses lists processes that belong to a build: the imgplan
// binary under test, or a package manager.
func buildProcesses() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.HasPrefix(cmd, bin) || strings.Contains(cmd, "apt-get") || strings.Contains(cmd, "dpkg") || strings.Contains(cmd, "mmdebstrap") {
			out = append(out, filepath.Dir(p)+": "+cmd)
		}
	}
	return out
}

// assertObjectsComplete: every object in the store has its metadata and
// its payload has the content digest recorded when it was committed.
func assertObjectsComplete(t *testing.T) {
	t.Helper()
	s, err := iexec.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir(filepath.Join(store, "v1/objects"))
	for _, d := range dirs {
		key := "sha256:" + d.Name()
		obj, err := s.Get(digestOf(t, key))
		if errors.Is(err, iexec.ErrNotFound) {
			continue // of an older format (a store kept from older builds)
		}
		if err != nil {
			t.Errorf("object %s: %v", d.Name(), err)
			continue
		}
		content, _, err := iexec.ContentDigest(obj.Data())
		if err != nil || content != obj.Meta.Content {
			t.Errorf("object %s (%s): content %s, recorded %s (%v)", d.Name()[:12], obj.Meta.Kind, content, obj.Meta.Content, err)
		}
	}
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	iexec "github.com/imgplan/imgplan/pkg/exec"
)

// killPoint is where TestKillAnywhere kills an apply: delay after the
// node's "building" event. outputs narrows the manifest's outputs to the
// one being killed, so the node to kill is the only one building.
type killPoint struct {
	node    string
	delay   time.Duration
	outputs string
}

// killOutputs are the outputs of the image TestKillAnywhere builds: one of
// each kind.
var killOutputs = map[string]string{
	"output:rootfs.tar":       "{type: tar, path: rootfs.tar}",
	"output:root.img":         "{type: ext4, path: root.img}",
	"output:root.squashfs":    "{type: squashfs, path: root.squashfs}",
	"output:rootfs.cpio.gz":   "{type: cpio, path: rootfs.cpio.gz}",
	"output:rootfs":           "{type: dir, path: rootfs}",
	"output:root-xz.squashfs": "{type: squashfs, path: root-xz.squashfs, compression: xz}",
}

// TestKillAnywhere kills imgplan apply with SIGKILL at 20 points spread
// over the build of a Debian image (every stage kind and output kind at
// least once). After each kill: no process, mount or loop device of the
// build is left, imgplan cache verify finds every object intact, and
// the next apply reuses every node committed before the kill. A last apply
// finishes the image.
func TestKillAnywhere(t *testing.T) {
	dir := variants(t, fmt.Sprintf("epoch: %d\npackages:\n  install: [bc]\n", time.Now().UnixNano()%1e9), "kill")
	m := filepath.Join(dir, "kill.yaml")
	var all []string
	for _, o := range killOutputs {
		all = append(all, o)
	}
	sort.Strings(all)
	allOutputs := "outputs=[" + strings.Join(all, ", ") + "]"

	points := []killPoint{
		{"bootstrap", 500 * time.Millisecond, ""},
		{"bootstrap", 3 * time.Second, ""},
		{"bootstrap", 8 * time.Second, ""},
		{"packages", 200 * time.Millisecond, ""},
		{"packages", 1500 * time.Millisecond, ""},
		{"packages", 4 * time.Second, ""},
		{"system", 0, ""},
		{"users", 0, ""},
		{"files", 0, ""},
		{"run:post-files", 0, ""},
		{"fstab", 0, ""},
		{"services", 0, ""},
		{"finalize", 0, ""},
		{"tree", 0, ""},
		{"output:rootfs.tar", 0, ""},
		{"output:root.img", 100 * time.Millisecond, ""},
		{"output:root.squashfs", 300 * time.Millisecond, ""},
		{"output:rootfs.cpio.gz", 0, ""},
		{"output:rootfs", 0, ""},
		{"output:root-xz.squashfs", 1 * time.Second, ""},
	}
	keys := planKeys(t, m, allOutputs)

	killed := map[string]bool{}
	committed := map[string]bool{} // node ID → in the store after the last kill
	for i, p := range points {
		if committed[p.node] {
			t.Fatalf("point %d: %s is already committed; the points are out of order", i+1, p.node)
		}
		outputs := allOutputs
		if o, ok := killOutputs[p.node]; ok {
			outputs = "outputs=[" + o + "]"
		}
		events, err := applyAndKill(t, m, outputs, p.node, p.delay)
		if err != nil {
			t.Fatalf("point %d (%s +%v): %v", i+1, p.node, p.delay, err)
		}
		// The nodes committed before the kill were reused, not rebuilt.
		for id := range committed {
			if events[id] == "building" {
				t.Errorf("point %d: %s was committed before the last kill, yet built again", i+1, id)
			}
		}
		running := []string{}
		for id, ev := range events {
			if ev == "building" {
				running = append(running, id)
			}
		}
		sort.Strings(running)
		t.Logf("kill %2d: %s +%v; building at the kill: %v", i+1, p.node, p.delay, running)
		if events[p.node] != "building" {
			t.Errorf("point %d: %s was %q at the kill, want building", i+1, p.node, events[p.node])
		}
		killed[p.node] = true
		assertCleanAfterKill(t, i+1, keys)

		verifyStore(t, store)
		s, err := iexec.OpenStore(store)
		if err != nil {
			t.Fatal(err)
		}
		for id, key := range keys {
			if _, err := s.Get(digestOf(t, key)); err == nil {
				committed[id] = true
			}
		}
		if t.Failed() {
			return
		}
	}
	fmt.Printf("kill anywhere: %d/%d kills left a clean host and a complete store\n", len(points), len(points))

	// Every stage kind and output kind was killed at least once.
	for id := range keys {
		if !killed[id] {
			t.Errorf("no kill during %s", id)
		}
	}
	rep := apply(t, m, t.TempDir(), "--set", allOutputs)
	for _, n := range rep.Nodes {
		if committed[n.ID] && n.Status != "cached" {
			t.Errorf("final apply: %s %s, committed before", n.ID, n.Status)
		}
	}
	// The killed builds' scratch areas are gone (other tests may be using
	// the store: only this plan's keys count).
	left, _ := os.ReadDir(filepath.Join(store, "v1/tmp"))
	for _, e := range left {
		for id, key := range keys {
			if strings.HasPrefix(e.Name(), strings.TrimPrefix(key, "sha256:")) {
				t.Errorf("scratch area of %s left after the final apply: %s", id, e.Name())
			}
		}
	}
}

// planKeys returns node ID → key from imgplan plan --format json.
func planKeys(t *testing.T, manifest string, set string) map[string]string {
	t.Helper()
	r := imgplan(t, "", "plan", manifest, "--format", "json", "--set", set)
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.err)
	}
	var p struct {
		Nodes []struct{ ID, Key string }
	}
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, n := range p.Nodes {
		keys[n.ID] = n.Key
	}
	return keys
}

// applyAndKill starts apply, kills it with SIGKILL delay after node's
// "building" event, and returns each node's last event before the kill.
func applyAndKill(t *testing.T, manifest, outputs, node string, delay time.Duration) (map[string]string, error) {
	t.Helper()
	cmd := exec.Command(bin, "apply", manifest, "--cache-dir", store, "--out", t.TempDir(),
		"--set", outputs, "--log-format", "json", "-j", "1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer cmd.Process.Kill()
	events := map[string]string{}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var tail []string
	for sc.Scan() {
		var ev struct{ Node, Status string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Node == "" {
			tail = append(tail, sc.Text())
			continue
		}
		events[ev.Node] = ev.Status
		if ev.Node == node && ev.Status == "building" {
			time.Sleep(delay)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				return nil, err
			}
			go func() {
				for sc.Scan() {
				}
			}()
			if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				return nil, fmt.Errorf("apply ended before the kill (%v)", err)
			}
			return events, nil
		}
	}
	err = cmd.Wait()
	return nil, fmt.Errorf("apply ended (%v) without building %s:\n%s", err, node, strings.Join(tail, "\n"))
}

// assertCleanAfterKill waits up to five seconds for every process, mount
// and loop device of the killed build to be gone.
func assertCleanAfterKill(t *testing.T, point int, keys map[string]string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		procs, mounts, loops := storeProcesses(store, keys), mountsUnder(store), loopDevicesUnder(store)
		if len(procs)+len(mounts)+len(loops) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("point %d: left after SIGKILL: processes %v, mounts %v, loop devices %v", point, procs, mounts, loops)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storeProcesses lists processes of the builds of keys (node ID → key) in
// storeDir: the imgplan binary under test, or any process whose root
// directory or command line is in one of their scratch areas (mmdebstrap,
// apt, dpkg, mkfs, ...). Builds of other manifests in the store do not
// count.
func storeProcesses(storeDir string, keys map[string]string) []string {
	var out []string
	var scratches []string
	for _, k := range keys {
		scratches = append(scratches, filepath.Join(storeDir, "v1/tmp", strings.TrimPrefix(k, "sha256:")))
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		root, _ := os.Readlink(filepath.Join(p, "root"))
		mine := strings.HasPrefix(cmd, bin)
		for _, sc := range scratches {
			mine = mine || strings.Contains(cmd, sc) || strings.HasPrefix(root, sc)
		}
		if mine {
			out = append(out, filepath.Base(p)+": "+cmd)
		}
	}
	return out
}

// loopDevicesUnder lists loop devices backed by files under dir.
func loopDevicesUnder(dir string) []string {
	b, _ := exec.Command("losetup", "-a", "-n", "-O", "NAME,BACK-FILE").Output()
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGCDuringApply: `imgplan cache gc --max-size 1` runs again and again
// while an apply builds; every object the apply holds survives (gc lists
// it as busy), the apply succeeds with intact outputs, and once it has
// ended the same gc empties the store.
func TestGCDuringApply(t *testing.T) {
	dir := t.TempDir()
	// Enough data that the outputs take a few seconds.
	src := filepath.Join(dir, "rootfs")
	big := make([]byte, 16<<20)
	for _, n := range []string{"a", "b"} {
		rand.Read(big)
		write(t, filepath.Join(src, "data", n), string(big))
	}
	write(t, filepath.Join(src, "etc/hostname"), "gc\n")
	write(t, filepath.Join(dir, "gc.yaml"), `apiVersion: imgplan/v1
name: e2e-gc
epoch: 1704067200
bootstrap: {distro: directory, source: rootfs}
files:
  - {dest: /etc/motd, content: "gc test\n"}
outputs:
  - {type: tar, path: rootfs.tar}
  - {type: squashfs, path: root.squashfs, compression: xz}
  - {type: ext4, path: root.img}
`)
	st := t.TempDir()
	out := t.TempDir()
	cmd := exec.Command(bin, "apply", filepath.Join(dir, "gc.yaml"), "--cache-dir", st, "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	busy, runs := 0, 0
	var applyErr error
loop:
	for {
		select {
		case applyErr = <-done:
			break loop
		default:
		}
		r := imgplanStore(t, st, "cache", "gc", "--max-size", "1", "--cache-dir", st)
		if r.code != 0 {
			t.Fatalf("gc during apply: exit %d\n%s", r.code, r.err)
		}
		select {
		case applyErr = <-done: // ended during this gc: removals are fine
			break loop
		default:
		}
		if strings.Contains(r.out, "removed") {
			t.Errorf("gc removed an object during the apply:\n%s", r.out)
		}
		busy += strings.Count(r.out, "busy")
		runs++
		time.Sleep(50 * time.Millisecond)
	}
	if applyErr != nil {
		t.Fatalf("apply with gc running beside it: %v\n%s", applyErr, stderr.String())
	}
	t.Logf("%d gc runs during the apply saw %d busy objects\n%s", runs, busy, stderr.String())
	if busy == 0 {
		t.Fatal("no gc run saw an object in use: the apply was too quick for the test to mean anything")
	}
	// The outputs are whole.
	for _, n := range []string{"a", "b"} {
		got, err := exec.Command("tar", "-xOf", filepath.Join(out, "rootfs.tar"), "./data/"+n).Output()
		want, _ := os.ReadFile(filepath.Join(src, "data", n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("rootfs.tar: data/%s differs from the source (%v)", n, err)
		}
	}
	// Nothing holds the objects now.
	r := imgplanStore(t, st, "cache", "gc", "--max-size", "1", "--cache-dir", st)
	if r.code != 0 || strings.Contains(r.out, "busy") {
		t.Fatalf("gc after the apply: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if objs, _ := os.ReadDir(filepath.Join(st, "v1/objects")); len(objs) != 0 {
		t.Errorf("%d objects left after gc --max-size 1 with nothing in use", len(objs))
	}
	assertNoLeftovers(t, st)
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildTwice applies a manifest twice, each time with a new, empty store
// (the second a second later), and returns the two output directories.
// The stores' download caches are seeded from the shared one by hard
// links: the same .debs either way, without fetching them twice.
func buildTwice(t *testing.T, manifest string, extra ...string) (a, b string) {
	t.Helper()
	var outs []string
	for range 2 {
		st := t.TempDir()
		if err := os.MkdirAll(filepath.Join(st, "v1"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(store, "v1/downloads")); err == nil {
			if b, err := exec.Command("cp", "-al", filepath.Join(store, "v1/downloads"), filepath.Join(st, "v1/downloads")).CombinedOutput(); err != nil {
				t.Fatalf("seed downloads: %v %s", err, b)
			}
		}
		out := t.TempDir()
		r := imgplanStore(t, st, append([]string{"apply", manifest, "--out", out}, extra...)...)
		if r.code != 0 {
			t.Fatalf("apply: exit %d\n%s", r.code, r.err)
		}
		if built := r.report.Built; built != len(r.report.Nodes) {
			t.Fatalf("a clean store built only %d of %d nodes", built, len(r.report.Nodes))
		}
		outs = append(outs, out)
	}
	return outs[0], outs[1]
}

func assertSameBytes(t *testing.T, a, b string, names ...string) {
	t.Helper()
	for _, n := range names {
		sa, sb := sha(t, filepath.Join(a, n)), sha(t, filepath.Join(b, n))
		if sa != sb {
			t.Errorf("%s differs between two clean builds: %s, %s", n, sa[:16], sb[:16])
		} else {
			t.Logf("%s: %s in both builds", n, sa[:16])
		}
	}
}

// TestReproducibleSpecial: every output of the tarball example is
// bit-for-bit identical between two builds with clean stores.
func TestReproducibleSpecial(t *testing.T) {
	a, b := buildTwice(t, filepath.Join(repo, "examples/special.yaml"))
	assertSameBytes(t, a, b, "rootfs.tar", "rootfs.tar.zst", "root.img", "root.squashfs", "rootfs.cpio.gz", "imgplan-packages.json", "imgplan-content.pb")
}

// TestReproducibleDebian: the same for a Debian image built from the
// archive, in every format.
func TestReproducibleDebian(t *testing.T) {
	a, b := buildTwice(t, filepath.Join(repo, "examples/debian-minimal.yaml"), "--set",
		"outputs=[{type: tar, path: rootfs.tar.xz}, {type: ext4, path: root.img}, {type: squashfs, path: root.squashfs}, {type: cpio, path: rootfs.cpio.zst}]")
	assertSameBytes(t, a, b, "rootfs.tar.xz", "root.img", "root.squashfs", "rootfs.cpio.zst", "imgplan-packages.json", "imgplan-content.pb")
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchOutputs runs bench/outputs.sh, so CI runs the output-assembly
// benchmark on every change and its log carries the ratios against
// mkfs.ext4 -d and mksquashfs on the same tree. Times on a shared CI
// machine are too noisy to assert; the test checks that every figure was
// measured, and holds imgplan's peak memory writing the 2 GiB ext4 to its
// target (200 MiB), which does not depend on the machine's load.
func TestBenchOutputs(t *testing.T) {
	cmd := exec.Command("sh", filepath.Join(repo, "bench", "outputs.sh"), "5")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "IMGPLAN_BENCH_STORE="+store)
	out, err := cmd.CombinedOutput()
	t.Logf("bench/outputs.sh 5:\n%s", out)
	if err != nil {
		t.Fatalf("bench/outputs.sh: %v", err)
	}

	ratio := regexp.MustCompile(`(?m)^(ext4 2GiB|squashfs zstd), (built in the sandbox|and committed to the store)\s+([0-9.]+)s\s+([0-9.]+)s\s+([0-9.]+)x$`)
	lines := ratio.FindAllSubmatch(out, -1)
	if len(lines) != 4 {
		t.Fatalf("want 4 ratio lines (ext4, squashfs; built, committed), got %d", len(lines))
	}
	for _, l := range lines {
		for _, f := range l[3:] {
			if v, err := strconv.ParseFloat(string(f), 64); err != nil || v <= 0 {
				t.Errorf("%s: figure %q is not a positive time or ratio", l[0], f)
			}
		}
	}

	mem := regexp.MustCompile(`(?m)^imgplan memory writing 2GiB ext4\s+([0-9]+) MiB`).FindSubmatch(out)
	if mem == nil {
		t.Fatal("no memory line")
	}
	mib, _ := strconv.Atoi(string(mem[1]))
	if mib <= 0 || mib > 200 {
		t.Errorf("peak memory writing the 2 GiB ext4: %d MiB, want 1..200", mib)
	}
}

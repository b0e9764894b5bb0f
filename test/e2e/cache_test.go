package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
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

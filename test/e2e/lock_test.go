package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/stages"
)

// TestLock locks a Debian manifest, applies it and checks with
// dpkg-query that exactly the pinned versions are installed; a second
// apply from an empty store gives an identical package manifest; a
// changed package list makes the lock stale (--locked then fails); and a
// lock naming a version the archive does not have fails before anything
// is written.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	manifestText := `apiVersion: imgplan/v1
name: e2e-lock
bootstrap:
  distro: debian
  release: bookworm
  variant: minbase
packages:
  install: [less, tree]
outputs:
  - {type: dir, path: rootfs}
`
	manifest := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(manifest, []byte(manifestText), 0o644); err != nil {
		t.Fatal(err)
	}
	r := imgplan(t, "", "lock", manifest)
	if r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.err)
	}
	lockPath := filepath.Join(dir, "web.lock.yaml")
	if strings.TrimSpace(r.out) != lockPath {
		t.Errorf("lock printed %q, want %q", r.out, lockPath)
	}
	lock, err := stages.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]string{}
	for _, p := range lock.Packages {
		pinned[p.Name] = p.Version
		if !strings.HasPrefix(p.Filename, "pool/") {
			t.Errorf("%s: filename %q is not an archive path", p.Name, p.Filename)
		}
	}
	if pinned["tree"] == "" || pinned["less"] == "" {
		t.Fatalf("lock lacks tree or less: %v", pinned)
	}
	if _, ok := pinned["dpkg"]; ok {
		t.Errorf("lock pins dpkg, which the bootstrap installed: %v", pinned)
	}

	// apply installs exactly the pinned versions.
	out := t.TempDir()
	r = imgplan(t, out, "apply", manifest, "--locked")
	if r.code != 0 {
		t.Fatalf("apply --locked: exit %d\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, "packages pinned by "+lockPath) {
		t.Errorf("apply does not say it uses the lock:\n%s", r.err)
	}
	installed := dpkgVersions(t, filepath.Join(out, "rootfs"))
	for name, v := range pinned {
		if installed[name] != v {
			t.Errorf("%s: installed %q, lock %q", name, installed[name], v)
		}
	}

	// A second apply from an empty store gives the same package manifest.
	out2 := t.TempDir()
	r = imgplanStore(t, t.TempDir(), "apply", manifest, "--out", out2)
	if r.code != 0 {
		t.Fatalf("second apply: exit %d\n%s", r.code, r.err)
	}
	a, b := readOut(t, out, "imgplan-packages.json"), readOut(t, out2, "imgplan-packages.json")
	if a != b {
		t.Errorf("package manifests differ between two applies with one lock:\n%s\n---\n%s", a, b)
	}

	// A changed package list makes the lock stale.
	if err := os.WriteFile(manifest, []byte(strings.Replace(manifestText, "[less, tree]", "[less, tree, file]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = imgplan(t, t.TempDir(), "apply", manifest, "--locked")
	if r.code == 0 || !strings.Contains(r.err, "lock is stale") {
		t.Errorf("apply --locked with a stale lock: exit %d\n%s", r.code, r.err)
	}
	r = imgplan(t, "", "plan", manifest)
	if r.code != 0 || !strings.Contains(r.out, "lock is stale") {
		t.Errorf("plan does not say the lock is stale: exit %d\n%s%s", r.code, r.out, r.err)
	}

	// A version the archive does not have fails clearly, and no image.
	if err := os.WriteFile(manifest, []byte(manifestText), 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(text), "version: "+pinned["tree"], "version: 0.0.1-imgplan1", 1)
	if bad == string(text) {
		t.Fatalf("could not edit tree's version in:\n%s", text)
	}
	if err := os.WriteFile(lockPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out3 := t.TempDir()
	r = imgplan(t, out3, "apply", manifest)
	if r.code == 0 || !strings.Contains(r.err, "the archive no longer has tree=0.0.1-imgplan1") {
		t.Errorf("apply with a version the archive lacks: exit %d\n%s", r.code, r.err)
	}
	if entries, _ := os.ReadDir(out3); len(entries) != 0 {
		t.Errorf("a failed apply left %v in the output directory", entries)
	}
}

// dpkgVersions reads name → version from an image's dpkg database.
func dpkgVersions(t *testing.T, root string) map[string]string {
	t.Helper()
	q, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package} ${Version}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(q)), "\n") {
		if n, v, ok := strings.Cut(l, " "); ok {
			out[n] = v
		}
	}
	return out
}

func readOut(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/stages"
)

// TestLockRPM locks a CentOS manifest against the fixture repository
// (rpmbuild + createrepo_c, served on loopback). The lock pins what the
// packages stage installs with the repository's locations and checksums.
// A newer release then published in the repository is what an unlocked
// apply installs, but the locked apply installs exactly the pinned
// versions (read back with rpm --root); a second apply from an empty store
// gives the same package manifest; a wrong checksum, a lock that leaves out
// a dependency and a pinned package the repository no longer has fail
// clearly, with nothing written.
func TestLockRPM(t *testing.T) {
	dir := fixtureRepo(t)
	srv := serveRepo(t, dir)
	repoDir := filepath.Join(dir, "6.3/os/x86_64")
	mirror := srv.URL + "/6.3/os/x86_64/"
	work := t.TempDir()
	manifest := filepath.Join(work, "web.yaml")
	text := fmt.Sprintf(`apiVersion: imgplan/v1
name: e2e-lock-rpm
bootstrap:
  distro: centos
  release: "6.3"
  arch: x86_64
  mirror: %s
  groups: [core]
  exclude: ["*i686*"]
  gpgcheck: false
packages:
  install: [openssh-clients, rsync]
outputs:
  - {type: dir, path: rootfs}
`, mirror)
	if err := os.WriteFile(manifest, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r := imgplan(t, "", "lock", manifest)
	if r.code != 0 {
		t.Fatalf("lock: exit %d\n%s", r.code, r.err)
	}
	lockPath := filepath.Join(work, "web.lock.yaml")
	lock, err := stages.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if lock.Manager != "dnf" {
		t.Errorf("lock manager %q, want dnf", lock.Manager)
	}
	pinned := map[string]stages.LockedPackage{}
	for _, p := range lock.Packages {
		pinned[p.Name] = p
	}
	// What the manifest installs and what they require; nothing of the
	// bootstrap's group.
	for _, n := range []string{"openssh-clients", "openssh", "rsync"} {
		p, ok := pinned[n]
		if !ok {
			t.Errorf("the lock does not pin %s: %+v", n, lock.Packages)
			continue
		}
		file := "Packages/" + n + "-1.0-1.el6.x86_64.rpm"
		if p.Version != "1.0-1.el6" || p.Arch != "x86_64" || p.Filename != file || p.Repo != "centos" {
			t.Errorf("%s pinned as %+v, want 1.0-1.el6 x86_64 %s from centos", n, p, file)
		}
		if sum := sha256File(t, filepath.Join(repoDir, file)); p.SHA256 != sum {
			t.Errorf("%s: lock sha256 %s, the repository's file %s", n, p.SHA256, sum)
		}
	}
	if len(lock.Packages) != 3 {
		t.Errorf("lock pins %d packages, want 3: %+v", len(lock.Packages), lock.Packages)
	}

	// A newer rsync is published: an apply without the lock takes it...
	publishRPM(t, dir, "rsync", "2.el6")
	aside := lockPath + ".aside"
	if err := os.Rename(lockPath, aside); err != nil {
		t.Fatal(err)
	}
	unlocked := t.TempDir()
	apply(t, manifest, unlocked)
	if v := rpmVersions(t, filepath.Join(unlocked, "rootfs"))["rsync"]; v != "1.0-2.el6.x86_64" {
		t.Fatalf("without the lock rsync is %q, want the new 1.0-2.el6.x86_64", v)
	}
	if err := os.Rename(aside, lockPath); err != nil {
		t.Fatal(err)
	}
	// ...the locked apply installs exactly the pinned versions.
	out := t.TempDir()
	r = imgplan(t, out, "apply", manifest, "--locked")
	if r.code != 0 {
		t.Fatalf("apply --locked: exit %d\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, "packages pinned by "+lockPath) {
		t.Errorf("apply does not say it uses the lock:\n%s", r.err)
	}
	installed := rpmVersions(t, filepath.Join(out, "rootfs"))
	for n, p := range pinned {
		if want := p.Version + "." + p.Arch; installed[n] != want {
			t.Errorf("%s: installed %q, lock %q", n, installed[n], want)
		}
	}

	// A second apply from an empty store gives the same package manifest.
	out2 := t.TempDir()
	r = imgplanStore(t, t.TempDir(), "apply", manifest, "--out", out2)
	if r.code != 0 {
		t.Fatalf("second apply: exit %d\n%s", r.code, r.err)
	}
	if a, b := readOut(t, out, "imgplan-packages.json"), readOut(t, out2, "imgplan-packages.json"); a != b {
		t.Errorf("package manifests differ between two applies with one lock:\n%s\n---\n%s", a, b)
	}

	// A checksum the download does not have fails before installing.
	good, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := pinned["openssh"].SHA256
	bad := strings.Replace(string(good), sum, strings.Repeat("0", 64), 1)
	if err := os.WriteFile(lockPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out3 := t.TempDir()
	r = imgplan(t, out3, "apply", manifest)
	if r.code == 0 || !strings.Contains(r.err, "downloaded openssh-1.0-1.el6.x86_64 has sha256 "+sum+", the lock says "+strings.Repeat("0", 64)) {
		t.Errorf("apply with a wrong checksum: exit %d\n%s", r.code, r.err)
	}
	if entries, _ := os.ReadDir(out3); len(entries) != 0 {
		t.Errorf("a failed apply left %v in the output directory", entries)
	}

	// A lock that leaves out a dependency (openssh, which openssh-clients
	// requires): dnf would install more than the lock pins, and fails.
	partial := *lock
	partial.Packages = nil
	for _, p := range lock.Packages {
		if p.Name != "openssh" {
			partial.Packages = append(partial.Packages, p)
		}
	}
	if err := partial.Write(lockPath); err != nil {
		t.Fatal(err)
	}
	out5 := t.TempDir()
	r = imgplan(t, out5, "apply", manifest)
	if r.code == 0 || !strings.Contains(r.err, "dnf also installed openssh-1.0-1.el6.x86_64, which the lock does not pin") {
		t.Errorf("apply with a lock lacking a dependency: exit %d\n%s", r.code, r.err)
	}
	if entries, _ := os.ReadDir(out5); len(entries) != 0 {
		t.Errorf("a failed apply left %v in the output directory", entries)
	}
	if err := os.WriteFile(lockPath, good, 0o644); err != nil {
		t.Fatal(err)
	}

	// The pinned rsync is withdrawn from the repository: the apply fails
	// naming it, and writes nothing.
	if err := os.Remove(filepath.Join(repoDir, "Packages/rsync-1.0-1.el6.x86_64.rpm")); err != nil {
		t.Fatal(err)
	}
	createrepo(t, dir)
	out4 := t.TempDir()
	r = imgplan(t, out4, "apply", manifest)
	if r.code == 0 || !strings.Contains(r.err, "the repositories no longer have rsync-1.0-1.el6.x86_64; run imgplan lock") {
		t.Errorf("apply with a withdrawn version: exit %d\n%s", r.code, r.err)
	}
	if entries, _ := os.ReadDir(out4); len(entries) != 0 {
		t.Errorf("a failed apply left %v in the output directory", entries)
	}
}

// publishRPM builds an empty x86_64 package name-1.0-release into the
// fixture repository and regenerates its metadata.
func publishRPM(t *testing.T, dir, name, release string) {
	t.Helper()
	work := t.TempDir()
	spec := filepath.Join(work, name+".spec")
	text := fmt.Sprintf("%%global debug_package %%{nil}\nName: %s\nVersion: 1.0\nRelease: %s\nSummary: %s, newer\nLicense: MIT\n\n%%description\nA newer %s.\n\n%%files\n", name, release, name, name)
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(work, "top")
	if b, err := exec.Command("rpmbuild", "-bb", "--target", "x86_64", "--define", "_topdir "+top, spec).CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s", name, err, b)
	}
	file := fmt.Sprintf("%s-1.0-%s.x86_64.rpm", name, release)
	b, err := os.ReadFile(filepath.Join(top, "RPMS/x86_64", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "6.3/os/x86_64/Packages", file), b, 0o644); err != nil {
		t.Fatal(err)
	}
	createrepo(t, dir)
}

// createrepo regenerates the fixture repository's metadata, with its
// comps groups.
func createrepo(t *testing.T, dir string) {
	t.Helper()
	comps := filepath.Join(filepath.Dir(dir), "comps.xml")
	if b, err := exec.Command("createrepo_c", "-g", comps, filepath.Join(dir, "6.3/os/x86_64")).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, b)
	}
}

// rpmVersions reads name → version-release.arch from an image's rpm
// database.
func rpmVersions(t *testing.T, root string) map[string]string {
	t.Helper()
	q, err := exec.Command("rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-qa", "--qf", `%{NAME} %{VERSION}-%{RELEASE}.%{ARCH}\n`).Output()
	if err != nil {
		t.Fatalf("rpm -qa in %s: %v", root, err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(q)), "\n") {
		if n, v, ok := strings.Cut(l, " "); ok {
			out[n] = v
		}
	}
	return out
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

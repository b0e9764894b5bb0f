package stages

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
)

const primaryXML = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="3">
<package type="rpm">
  <name>rsync</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="3.0.6" rel="9.el6"/>
  <checksum type="sha256" pkgid="YES">aaaa</checksum>
  <location href="Packages/rsync-3.0.6-9.el6.x86_64.rpm"/>
  <format><rpm:requires><rpm:entry name="libc.so.6"/></rpm:requires></format>
</package>
<package type="rpm">
  <name>bind-utils</name>
  <arch>x86_64</arch>
  <version epoch="32" ver="9.8.2" rel="0.10.rc1.el6"/>
  <checksum type="sha" pkgid="YES">bbbb</checksum>
  <location href="Packages/bind-utils-9.8.2-0.10.rc1.el6.x86_64.rpm"/>
</package>
<package type="rpm">
  <name>setup</name>
  <arch>noarch</arch>
  <version epoch="0" ver="2.8.14" rel="16.el6"/>
  <checksum type="sha256" pkgid="YES">cccc</checksum>
  <location href="Packages/setup-2.8.14-16.el6.noarch.rpm"/>
</package>
</metadata>
`

// writeRepoCache lays out dnf's cache of one repository, as dnf names it.
func writeRepoCache(t *testing.T, cache, id, url string, rpms map[string]string) {
	t.Helper()
	sum := sha256.Sum256([]byte(url))
	dir := filepath.Join(cache, id+"-"+hex.EncodeToString(sum[:])[:16])
	for _, d := range []string{"repodata", "packages"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repomd := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
  <data type="filelists"><location href="repodata/ff-filelists.xml.gz"/></data>
  <data type="primary"><location href="repodata/01-primary.xml.gz"/></data>
</repomd>
`
	if err := os.WriteFile(filepath.Join(dir, "repodata/repomd.xml"), []byte(repomd), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "repodata/01-primary.xml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(primaryXML))
	zw.Close()
	f.Close()
	for name, content := range rpms {
		if err := os.WriteFile(filepath.Join(dir, "packages", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveRPMLock(t *testing.T) {
	cache := t.TempDir()
	url := "http://127.0.0.1:8080/6.3/os/x86_64/"
	writeRepoCache(t, cache, "centos", url, map[string]string{"bind-utils-9.8.2-0.10.rc1.el6.x86_64.rpm": "the rpm"})
	m := &manifest.Manifest{Bootstrap: manifest.Bootstrap{Distro: "centos", Release: "6.3", Mirror: url}}
	s := &RPMSetup{Distro: "centos", Release: "6.3", Arch: "x86_64", Mirror: url}
	setup := RPMPackage{Name: "setup", Epoch: "0", Version: "2.8.14", Release: "16.el6", Arch: "noarch"}
	rsync := RPMPackage{Name: "rsync", Epoch: "0", Version: "3.0.6", Release: "9.el6", Arch: "x86_64"}
	bind := RPMPackage{Name: "bind-utils", Epoch: "32", Version: "9.8.2", Release: "0.10.rc1.el6", Arch: "x86_64"}
	l, err := ResolveRPMLock(m, s, []RPMPackage{setup}, []RPMPackage{setup, rsync, bind}, cache)
	if err != nil {
		t.Fatal(err)
	}
	fileSum := sha256.Sum256([]byte("the rpm"))
	want := []LockedPackage{
		// sha1 in the metadata: the cached package's SHA-256.
		{Name: "bind-utils", Version: "32:9.8.2-0.10.rc1.el6", Arch: "x86_64", SHA256: hex.EncodeToString(fileSum[:]), Filename: "Packages/bind-utils-9.8.2-0.10.rc1.el6.x86_64.rpm", Repo: "centos"},
		{Name: "rsync", Version: "3.0.6-9.el6", Arch: "x86_64", SHA256: "aaaa", Filename: "Packages/rsync-3.0.6-9.el6.x86_64.rpm", Repo: "centos"},
	}
	if l.Manager != "dnf" || l.Inputs != LockInputs(m) || len(l.Packages) != 2 || l.Packages[0] != want[0] || l.Packages[1] != want[1] {
		t.Errorf("lock:\n got %+v\nwant %+v", l, want)
	}
	// Round trip of the NEVRA dnf is given.
	for _, p := range []RPMPackage{rsync, bind} {
		lp := LockedPackage{Name: p.Name, Version: p.EVR(), Arch: p.Arch}
		if got := lockedRPM(lp); got != p {
			t.Errorf("lockedRPM(%+v) = %+v, want %+v", lp, got, p)
		}
	}
	if got := bind.NEVRA(); got != "bind-utils-32:9.8.2-0.10.rc1.el6.x86_64" {
		t.Errorf("NEVRA %q", got)
	}

	// A package no repository lists, and a repository dnf never cached.
	other := RPMPackage{Name: "other", Epoch: "0", Version: "1", Release: "1", Arch: "x86_64"}
	if _, err := ResolveRPMLock(m, s, nil, []RPMPackage{other}, cache); err == nil || !strings.Contains(err.Error(), "other-1-1.x86_64") {
		t.Errorf("a package not in the metadata: %v", err)
	}
	s2 := *s
	s2.Mirror = "http://127.0.0.1:9/elsewhere/"
	if _, err := ResolveRPMLock(m, &s2, nil, []RPMPackage{rsync}, cache); err == nil || !strings.Contains(err.Error(), "not in the store") {
		t.Errorf("an uncached repository: %v", err)
	}
}

func TestReadLockDNF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock.yaml")
	write := func(body string) {
		if err := os.WriteFile(path, []byte("format: imgplan.lock.v1\nmanager: dnf\ninputs: sha256:"+strings.Repeat("0", 64)+"\npackages:\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := strings.Repeat("a", 64)
	write("  - {name: rsync, version: 3.0.6-9.el6, arch: x86_64, sha256: " + sum + "}\n")
	if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), "arch and filename") {
		t.Errorf("a dnf lock without a filename: %v", err)
	}
	write("  - {name: rsync, version: 3.0.6-9.el6, arch: x86_64, sha256: " + sum + ", filename: Packages/rsync-3.0.6-9.el6.x86_64.rpm, repo: centos}\n")
	l, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	deb := &manifest.Manifest{Bootstrap: manifest.Bootstrap{Distro: "debian", Release: "bookworm"}}
	l.Inputs = LockInputs(deb)
	if err := CheckLock(l, deb, path); err == nil || errors.Is(err, ErrStaleLock) || !strings.Contains(err.Error(), "a dnf lock") {
		t.Errorf("a dnf lock beside a Debian manifest: %v", err)
	}
}

func TestLockInputsRPM(t *testing.T) {
	m := &manifest.Manifest{Bootstrap: manifest.Bootstrap{Distro: "centos", Release: "6.3", Groups: []string{"core"}}}
	base := LockInputs(m)
	m.Bootstrap.Exclude = []string{"*i686*"}
	if LockInputs(m) == base {
		t.Error("an exclude leaves the lock inputs alone")
	}
	m.Bootstrap.Exclude, m.Bootstrap.Groups = nil, []string{"core", "base"}
	if LockInputs(m) == base {
		t.Error("another group leaves the lock inputs alone")
	}
}

func TestNoMatch(t *testing.T) {
	msg := "dnf install: exit status 1: No match for argument: a-1-1.x86_64; Error: Unable to find a match: a-1-1.x86_64 b-2-1.noarch"
	var got []string
	for _, m := range noMatch.FindAllStringSubmatch(msg, -1) {
		got = append(got, m[1])
	}
	if len(got) != 2 || strings.Fields(got[1])[1] != "b-2-1.noarch" {
		t.Errorf("noMatch found %q", got)
	}
}

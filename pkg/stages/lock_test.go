package stages

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
)

func TestLockPath(t *testing.T) {
	for in, want := range map[string]string{"a/web.yaml": "a/web.lock.yaml", "x.yml": "x.lock.yml", "m": "m.lock"} {
		if got := LockPath(in); got != want {
			t.Errorf("LockPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLockInputs(t *testing.T) {
	m := func(install ...string) *manifest.Manifest {
		return &manifest.Manifest{Bootstrap: manifest.Bootstrap{Distro: "debian", Release: "bookworm"}, Packages: manifest.Packages{Install: install}}
	}
	base := LockInputs(m("nginx", "curl"))
	if LockInputs(m("curl", "nginx")) != base {
		t.Error("the order of packages.install changes the lock inputs")
	}
	if LockInputs(m("nginx", "curl", "htop")) == base {
		t.Error("adding a package leaves the lock inputs alone")
	}
	other := m("nginx", "curl")
	other.Bootstrap.Release = "trixie"
	if LockInputs(other) == base {
		t.Error("another release leaves the lock inputs alone")
	}
	other = m("nginx", "curl")
	other.Hostname = "web"
	if LockInputs(other) != base {
		t.Error("the hostname changes the lock inputs")
	}
	l := &Lock{Manager: "apt", Inputs: base}
	if err := CheckLock(l, m("nginx", "curl", "htop"), "x.lock.yaml"); !errors.Is(err, ErrStaleLock) {
		t.Errorf("CheckLock of a changed list: %v", err)
	}
	if err := CheckLock(l, m("curl", "nginx"), "x.lock.yaml"); err != nil {
		t.Errorf("CheckLock of the same list: %v", err)
	}
}

const statusBefore = `Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
`

const statusAfter = statusBefore + `
Package: less
Status: install ok installed
Architecture: amd64
Version: 590-2.1~deb12u2

Package: tree
Status: install ok installed
Architecture: amd64
Version: 2.1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
`

const index = `Package: less
Version: 590-2.1~deb12u2
Architecture: amd64
Filename: pool/main/l/less/less_590-2.1~deb12u2_amd64.deb
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: tree
Version: 2.1.0-1
Architecture: amd64
Filename: pool/main/t/tree/tree_2.1.0-1_amd64.deb
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
`

func TestResolveLock(t *testing.T) {
	lists, debs := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lists, "archive_dists_bookworm_main_binary-amd64_Packages"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Bootstrap: manifest.Bootstrap{Distro: "debian", Release: "bookworm"}, Packages: manifest.Packages{Install: []string{"less", "tree", "tzdata"}}}
	// tzdata is in no index: without its .deb there is no checksum.
	if _, err := ResolveLock(m, []byte(statusBefore), []byte(statusAfter), lists, debs); err == nil || !strings.Contains(err.Error(), "tzdata=2024a-0+deb12u1") {
		t.Fatalf("missing checksum: %v", err)
	}
	if err := os.WriteFile(filepath.Join(debs, "tzdata_2024a-0+deb12u1_all.deb"), []byte("deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ResolveLock(m, []byte(statusBefore), []byte(statusAfter), lists, debs)
	if err != nil {
		t.Fatal(err)
	}
	want := []LockedPackage{
		{Name: "less", Version: "590-2.1~deb12u2", Arch: "amd64", SHA256: strings.Repeat("1", 64), Filename: "pool/main/l/less/less_590-2.1~deb12u2_amd64.deb"},
		{Name: "tree", Version: "2.1.0-1", Arch: "amd64", SHA256: strings.Repeat("2", 64), Filename: "pool/main/t/tree/tree_2.1.0-1_amd64.deb"},
		{Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all"},
	}
	want[2].SHA256, _ = fileSHA256(filepath.Join(debs, "tzdata_2024a-0+deb12u1_all.deb"))
	if !reflect.DeepEqual(l.Packages, want) {
		t.Errorf("got %+v\nwant %+v", l.Packages, want)
	}
	if l.Inputs != LockInputs(m) {
		t.Error("the lock does not record its inputs")
	}

	// Written and read back unchanged.
	path := filepath.Join(t.TempDir(), "web.lock.yaml")
	if err := l.Write(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, l) {
		t.Errorf("read back %+v, wrote %+v", back, l)
	}
}

// TestAptLockedChecks runs the checks made before apt: a version the
// index lacks, and a checksum that differs, fail without running apt.
func TestAptLockedChecks(t *testing.T) {
	lists := t.TempDir()
	if err := os.WriteFile(filepath.Join(lists, "a_Packages"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pkg  LockedPackage
		want string
	}{
		{LockedPackage{Name: "tree", Version: "0.1-1", Arch: "amd64", SHA256: strings.Repeat("2", 64)}, "the archive no longer has tree=0.1-1 (amd64)"},
		{LockedPackage{Name: "tree", Version: "2.1.0-1", Arch: "amd64", SHA256: strings.Repeat("3", 64)}, "checksum mismatch: tree=2.1.0-1"},
	} {
		path := filepath.Join(t.TempDir(), "x.lock.yaml")
		l := &Lock{Format: LockFormat, Manager: "apt", Inputs: LockInputs(&manifest.Manifest{}), Packages: []LockedPackage{tc.pkg}}
		if err := l.Write(path); err != nil {
			t.Fatal(err)
		}
		ran := false
		err := aptLocked(path, lists, t.TempDir(), func(...string) error { ran = true; return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) || ran {
			t.Errorf("%+v: err %v (want %q), apt ran: %v", tc.pkg, err, tc.want, ran)
		}
	}
}

// TestCommittedLocksCurrent: the lock files in manifests/ were resolved
// from their manifests as they are (a change to either, or to what
// LockInputs covers, must come with imgplan lock).
func TestCommittedLocksCurrent(t *testing.T) {
	locks, _ := filepath.Glob("../../manifests/*.lock.yaml")
	if len(locks) == 0 {
		t.Fatal("no lock files in manifests/")
	}
	for _, lp := range locks {
		l, err := ReadLock(lp)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Load(strings.Replace(lp, ".lock.yaml", ".yaml", 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckLock(l, m, lp); err != nil {
			t.Error(err)
		}
	}
}

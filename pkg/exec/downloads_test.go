package exec

import (
	"os"
	"path/filepath"
	"testing"
)

// A build's download directory holds the shared cache's whole tree by hard
// links (dnf keeps a directory per repository); what the build adds is
// published back, except partial downloads and locks.
func TestDownloadsRoundTrip(t *testing.T) {
	shared, scratch := t.TempDir(), t.TempDir()
	e := &childEnv{j: &buildJob{Downloads: shared, Scratch: scratch}}
	cached := filepath.Join(shared, "dnf/centos/x86_64/centos-0123/packages/bash.rpm")
	flat := filepath.Join(shared, "dnf/centos/x86_64/top.rpm")
	for _, f := range []string{cached, flat} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := e.Downloads("dnf/centos/x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{cached, "centos-0123/packages/bash.rpm"}, {flat, "top.rpm"}} {
		if !same(pair[0], filepath.Join(dir, pair[1])) {
			t.Errorf("%s is not a hard link of the shared %s", pair[1], pair[0])
		}
	}
	added := filepath.Join(dir, "centos-0123/packages/ed.rpm")
	os.WriteFile(added, []byte("y"), 0o644)
	os.MkdirAll(filepath.Join(dir, "partial"), 0o755)
	os.WriteFile(filepath.Join(dir, "partial/half.rpm"), []byte("z"), 0o644)
	os.WriteFile(filepath.Join(dir, "lock"), nil, 0o644)
	if err := publishDownloads(scratch, shared); err != nil {
		t.Fatal(err)
	}
	if !same(added, filepath.Join(shared, "dnf/centos/x86_64/centos-0123/packages/ed.rpm")) {
		t.Error("the new package was not published")
	}
	for _, p := range []string{"partial/half.rpm", "lock"} {
		if _, err := os.Stat(filepath.Join(shared, "dnf/centos/x86_64", p)); err == nil {
			t.Errorf("%s was published", p)
		}
	}
}

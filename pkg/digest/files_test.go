package digest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestTreeDigest(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "etc/a.conf"), "a\n", 0o644)
	write(t, filepath.Join(dir, "bin/tool"), "#!/bin/sh\n", 0o755)
	if err := os.Symlink("tool", filepath.Join(dir, "bin/alias")); err != nil {
		t.Fatal(err)
	}
	f := NewFiles()
	entries, d0, err := f.Tree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 { // . bin bin/alias bin/tool etc etc/a.conf
		t.Errorf("entries: %+v", entries)
	}
	for _, change := range []func(){
		func() { write(t, filepath.Join(dir, "etc/a.conf"), "b\n", 0o644) }, // content, same size
		func() { write(t, filepath.Join(dir, "etc/a.conf"), "b\n", 0o600) }, // mode
		func() {
			os.Remove(filepath.Join(dir, "bin/alias"))
			os.Symlink("other", filepath.Join(dir, "bin/alias"))
		},
		func() { write(t, filepath.Join(dir, "etc/new"), "", 0o644) },
	} {
		change()
		_, d, err := NewFiles().Tree(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d == d0 {
			t.Errorf("change not seen in the tree digest")
		}
		d0 = d
	}
	// Times and owners are not part of it.
	_, before, _ := NewFiles().Tree(dir)
	if err := os.Chtimes(filepath.Join(dir, "etc/a.conf"), time0, time0); err != nil {
		t.Fatal(err)
	}
	if _, after, _ := NewFiles().Tree(dir); after != before {
		t.Errorf("a time change changed the digest")
	}
}

func TestTreeRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewFiles().Tree(dir); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("a FIFO in a tree: %v, want ErrUnsupportedType", err)
	}
}

func TestDigestParse(t *testing.T) {
	d := FromString("x")
	if _, err := Parse(string(d)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "sha256:", "sha256:XYZ", "md5:" + d.Hex(), "sha256:" + d.Hex()[:10], "sha256:" + d.Hex() + "00"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

var time0 = time.Unix(1, 0)

package outputs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/a"), []byte("a"), 0o640))
	must(os.Link(filepath.Join(dir, "etc/a"), filepath.Join(dir, "etc/b")))
	must(os.Symlink("/etc/a", filepath.Join(dir, "etc/link")))
	must(os.WriteFile(filepath.Join(dir, "suid"), []byte("s"), 0o755))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(os.Lchown(filepath.Join(dir, "etc/a"), 7, 42))
	}
	must(unix.Lsetxattr(filepath.Join(dir, "suid"), "user.imgplan", []byte("x"), 0))
	old := time.Unix(1000, 0)
	must(os.Chtimes(filepath.Join(dir, "etc/a"), old, old))
	return dir
}

func TestWriteTar(t *testing.T) {
	dir := tree(t)
	var buf bytes.Buffer
	if err := WriteTar(&buf, dir, 5000); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]*tar.Header{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		names = append(names, h.Name)
	}
	want := []string{"./", "./etc/", "./etc/a", "./etc/b", "./etc/link", "./suid"}
	if os.Geteuid() == 0 {
		want = []string{"./", "./etc/", "./etc/a", "./etc/b", "./etc/link", "./null", "./suid"}
	}
	if len(names) != len(want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("entry %d: %s, want %s (sorted)", i, names[i], want[i])
		}
	}
	if h := got["./etc/b"]; h.Typeflag != tar.TypeLink || h.Linkname != "./etc/a" {
		t.Errorf("hardlink: %+v", h)
	}
	if h := got["./etc/link"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/a" {
		t.Errorf("symlink: %+v", h)
	}
	if h := got["./suid"]; h.Mode != 0o4755 || h.PAXRecords["SCHILY.xattr.user.imgplan"] != "x" || h.ModTime.Unix() != 5000 {
		t.Errorf("suid: mode %o xattrs %v mtime %v (want clamped to 5000)", h.Mode, h.PAXRecords, h.ModTime)
	}
	if h := got["./etc/a"]; h.ModTime.Unix() != 1000 || h.Uname != "" || h.Gname != "" {
		t.Errorf("etc/a: mtime %v (older than the epoch: kept), owner names %q %q (numeric only)", h.ModTime, h.Uname, h.Gname)
	}
	if os.Geteuid() == 0 {
		if h := got["./etc/a"]; h.Uid != 7 || h.Gid != 42 {
			t.Errorf("owner %d:%d", h.Uid, h.Gid)
		}
		if h := got["./null"]; h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 {
			t.Errorf("device: %+v", h)
		}
	}
}

// TestWriteTarDeterministic: the same tree, touched again (new times after
// the epoch, new inodes), gives the same bytes, compressed every way.
func TestWriteTarDeterministic(t *testing.T) {
	dir := tree(t)
	sum := func(comp string) [32]byte {
		var buf bytes.Buffer
		w, err := compressor(&buf, comp, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteTar(w, dir, 5000); err != nil {
			t.Fatal(err)
		}
		w.Close()
		return sha256.Sum256(buf.Bytes())
	}
	for _, comp := range []string{"none", "gzip", "xz", "zstd"} {
		a := sum(comp)
		now := time.Now()
		os.Chtimes(filepath.Join(dir, "suid"), now, now)
		b, _ := os.ReadFile(filepath.Join(dir, "suid"))
		os.Remove(filepath.Join(dir, "suid"))
		os.WriteFile(filepath.Join(dir, "suid"), b, 0o755)
		os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid)
		unix.Lsetxattr(filepath.Join(dir, "suid"), "user.imgplan", []byte("x"), 0)
		if a != sum(comp) {
			t.Errorf("%s: different bytes for the same tree", comp)
		}
	}
}

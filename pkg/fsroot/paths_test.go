package fsroot

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// TestInvalidPaths: every operation rejects paths that are not absolute
// and clean before touching anything.
func TestInvalidPaths(t *testing.T) {
	r, dir := newRoot(t, map[string]ent{"etc/f": file("x", 0o644)})
	before := snapshot(t, dir, "")
	ops := map[string]func(p string) error{
		"Stat":      func(p string) error { _, err := r.Stat(p); return err },
		"Lstat":     func(p string) error { _, err := r.Lstat(p); return err },
		"ReadFile":  func(p string) error { _, err := r.ReadFile(p); return err },
		"Open":      func(p string) error { _, err := r.Open(p); return err },
		"Readlink":  func(p string) error { _, err := r.Readlink(p); return err },
		"Resolve":   func(p string) error { _, err := r.Resolve(p); return err },
		"MkdirAll":  func(p string) error { return r.MkdirAll(p, 0o755) },
		"WriteFile": func(p string) error { return r.WriteFile(p, strings.NewReader("x"), WriteOptions{Perm: 0o644}) },
		"Symlink":   func(p string) error { return r.Symlink("t", p) },
		"Mkdir":     func(p string) error { return r.Mkdir(p, 0o755, 0, 0) },
		"RemoveAll": func(p string) error { return r.RemoveAll(p) },
		"Lchown":    func(p string) error { return r.Lchown(p, 0, 0) },
		"Chmod":     func(p string) error { return r.Chmod(p, 0o755) },
		"Lutimes":   func(p string) error { return r.Lutimes(p, time.Now(), time.Now()) },
		"RenameOld": func(p string) error { return r.Rename(p, "/x") },
		"RenameNew": func(p string) error { return r.Rename("/etc/f", p) },
		"CopyTree":  func(p string) error { return r.CopyTree(t.TempDir(), p, 0, 0) },
		"LinkOld":   func(p string) error { return r.Link(p, "/x") },
		"LinkNew":   func(p string) error { return r.Link("/etc/f", p) },
		"Mknod":     func(p string) error { return r.Mknod(p, fs.ModeNamedPipe|0o644, 0, 0) },
		"Lsetxattr": func(p string) error { return r.Lsetxattr(p, "user.x", nil) },
	}
	for _, p := range []string{"", "etc/f", "./etc/f", "/etc/../etc/f", "/etc/./f", "//etc/f", "/etc/", "/etc/f/..", "/..", "/etc\x00/f"} {
		for name, op := range ops {
			if err := op(p); !errors.Is(err, ErrInvalidPath) {
				t.Errorf("%s(%q) = %v, want ErrInvalidPath", name, p, err)
			}
		}
	}
	for _, d := range diffSnapshots(before, snapshot(t, dir, "")) {
		t.Errorf("changed: %s", d)
	}
}

func TestClosedRoot(t *testing.T) {
	r, _ := newRoot(t, map[string]ent{"f": file("x", 0o644)})
	must(t, r.Close())
	if err := r.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if _, err := r.ReadFile("/f"); err == nil {
		t.Error("ReadFile on a closed root succeeded")
	}
	if err := r.WriteFile("/g", strings.NewReader("x"), WriteOptions{Perm: 0o644}); err == nil {
		t.Error("WriteFile on a closed root succeeded")
	}
}

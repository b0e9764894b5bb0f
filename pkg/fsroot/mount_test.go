package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mount mounts for the rest of the test, skipping it where mounting is not
// allowed. The unmount runs before the fixture's checks and removal.
func mount(t *testing.T, source, target, fstype string, flags uintptr) {
	t.Helper()
	mkdirs(t, target)
	if err := unix.Mount(source, target, fstype, flags, ""); err != nil {
		t.Skipf("needs to mount %s (root with CAP_SYS_ADMIN): %v", fstype+source, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

// TestMagicLinks mounts a real procfs inside the root: paths through its
// magic links (/proc/self/root, /proc/self/cwd, /proc/self/fd/N), directly
// or via the image's own symlinks, would reach the host and must fail.
func TestMagicLinks(t *testing.T) {
	f := adversarial(t)
	mount(t, "proc", f.in("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
	sfd, err := unix.Open(f.sentinel, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(sfd)
	build(t, f.root, map[string]ent{
		"pself": link("/proc/self/root"),
		"pfd":   link(fmt.Sprintf("/proc/self/fd/%d", sfd)),
		"pcwd":  link("../proc/thread-self/cwd"),
	})
	cwd, err := os.Getwd()
	must(t, err)
	const escapee = "fsroot-magic-link-escape"
	t.Cleanup(func() {
		if _, err := os.Lstat(filepath.Join(cwd, escapee)); err == nil {
			t.Errorf("a write escaped into the test's working directory %s", cwd)
			os.RemoveAll(filepath.Join(cwd, escapee))
		}
	})

	src := srcTree(t, map[string]ent{"file": file("copied", 0o644)})
	s := f.sentinel
	prefixes := []string{
		"/proc/self/root" + s, "/pself" + s, "/proc/thread-self/root" + s,
		fmt.Sprintf("/proc/self/fd/%d", sfd), "/pfd",
		"/proc/self/cwd", "/pcwd",
	}
	stamp := time.Unix(1, 0)
	for _, pre := range prefixes {
		ops := map[string]func() error{
			"WriteFile": func() error {
				return f.r.WriteFile(pre+"/"+escapee, strings.NewReader("x"), WriteOptions{Perm: 0o644, MkdirParents: true})
			},
			"WriteFile follow": func() error {
				return f.r.WriteFile(pre+"/file", strings.NewReader("x"), WriteOptions{Perm: 0o644, FollowSymlink: true})
			},
			"MkdirAll":  func() error { return f.r.MkdirAll(pre+"/"+escapee+"/x", 0o755) },
			"Mkdir":     func() error { return f.r.Mkdir(pre+"/"+escapee, 0o755, 0, 0) },
			"Symlink":   func() error { return f.r.Symlink("x", pre+"/"+escapee) },
			"Chmod":     func() error { return f.r.Chmod(pre+"/file", 0o777) },
			"Lchown":    func() error { return f.r.Lchown(pre+"/file", 9, 9) },
			"Lutimes":   func() error { return f.r.Lutimes(pre+"/file", stamp, stamp) },
			"RemoveAll": func() error { return f.r.RemoveAll(pre + "/file") },
			"Rename":    func() error { return f.r.Rename(pre+"/file", "/stolen") },
			"CopyTree":  func() error { return f.r.CopyTree(src, pre+"/"+escapee, 0, 0) },
			"Link":      func() error { return f.r.Link(pre+"/file", "/stolen") },
			"LinkInto":  func() error { return f.r.Link("/real/f", pre+"/"+escapee) },
			"Mknod":     func() error { return f.r.Mknod(pre+"/"+escapee, fs.ModeNamedPipe|0o644, 0, 0) },
			"Lsetxattr": func() error { return f.r.Lsetxattr(pre+"/file", "user.x", []byte("v")) },
			"ReadFile":  func() error { _, err := f.r.ReadFile(pre + "/file"); return err },
			"Resolve":   func() error { _, err := f.r.Resolve(pre + "/file"); return err },
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, unix.ELOOP) {
				t.Errorf("%s under %s = %v, want ELOOP", name, pre, err)
			}
		}
	}
	// Following a final magic link is refused too, and not replacing it.
	if err := f.r.WriteFile("/pself", strings.NewReader("x"), WriteOptions{Perm: 0o644, FollowSymlink: true}); !errors.Is(err, unix.ELOOP) {
		t.Errorf("WriteFile following /pself = %v, want ELOOP", err)
	}
	if _, err := f.r.Resolve("/proc/self/root"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("Resolve(/proc/self/root) = %v, want ELOOP", err)
	}
	if err := f.r.Chmod("/proc/self/root", 0o777); !errors.Is(err, ErrSymlink) {
		t.Errorf("Chmod(/proc/self/root) = %v, want ErrSymlink", err)
	}
}

// TestRemoveAllStopsAtMountPoints: a host directory bind-mounted into the
// root is not emptied by RemoveAll of a directory above it.
func TestRemoveAllStopsAtMountPoints(t *testing.T) {
	f := adversarial(t)
	mount(t, f.sentinel, f.in("dir/mnt"), "", unix.MS_BIND)
	for _, p := range []string{"/dir", "/dir/mnt"} {
		if err := f.r.RemoveAll(p); !errors.Is(err, ErrMountPoint) {
			t.Errorf("RemoveAll(%s) = %v, want ErrMountPoint", p, err)
		}
	}
	// The fixture's check after unmounting proves the sentinel intact.
}

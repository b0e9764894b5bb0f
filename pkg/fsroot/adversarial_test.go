package fsroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSentinelDetectsEscape proves the fixture's outside check can fail:
// naive writes through the host's view of the root follow /etc out of it.
func TestSentinelDetectsEscape(t *testing.T) {
	escapes := map[string]func(f *fixture) error{
		"write": func(f *fixture) error {
			return os.WriteFile(filepath.Join(f.root, "etc", "escaped"), []byte("x"), 0o644)
		},
		"chmod": func(f *fixture) error { return os.Chmod(filepath.Join(f.root, "etc", "file"), 0o644) }, // same mode
		"xattr": func(f *fixture) error { return unix.Setxattr(filepath.Join(f.root, "etc"), "user.x", []byte("v"), 0) },
		"link": func(f *fixture) error {
			return os.Link(filepath.Join(f.root, "etc", "file"), filepath.Join(f.root, "l"))
		},
	}
	for name, escape := range escapes {
		t.Run(name, func(t *testing.T) {
			f := adversarial(t)
			f.escaped = true
			before := snapshot(t, f.base, f.root)
			must(t, escape(f))
			if d := diffSnapshots(before, snapshot(t, f.base, f.root)); len(d) == 0 {
				t.Fatal("the escape went unnoticed")
			}
		})
	}
}

// TestAdversarial runs every write operation against symlinks aimed outside
// the root. Each case checks where the result landed inside the root; the
// fixture checks that nothing outside changed.
func TestAdversarial(t *testing.T) {
	needRoot(t)
	w := func(p string, follow bool) func(f *fixture) error {
		return func(f *fixture) error {
			return f.r.WriteFile(p, strings.NewReader("new\n"), WriteOptions{Perm: 0o640, UID: 7, GID: 8, FollowSymlink: follow})
		}
	}
	newFile := `file 0640 7:8 "new\n"`
	stamp := time.Unix(1_000_000, 5)

	tests := []struct {
		name    string
		op      func(f *fixture) error
		wantErr error // nil: must succeed
		want    func(f *fixture) map[string]string
	}{
		{"write through absolute dir symlink", w("/etc/new", false), nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/new": newFile} }},
		{"write through .. chain", w("/etc2/new", false), nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/new": newFile} }},
		{"write following final absolute symlink", w("/etc/motd", true), nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/file": newFile, f.shadow + "/motd": "link 0:0 -> " + f.sentinel + "/file"}
			}},
		{"write following final .. chain", w("/etc/rel", true), nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/file": newFile} }},
		{"write following link in dir with link to sentinel", w("/dir/rellink", true), nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/file": newFile, "dir/rellink": "link 0:0 -> " + strings.Repeat("../", 16) + f.sentinel[1:] + "/file"}
			}},
		{"write replacing final symlink", w("/etc/motd", false), nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/motd": newFile, f.shadow + "/file": "missing"}
			}},
		{"write replacing /etc itself", w("/etc", false), nil,
			func(f *fixture) map[string]string { return map[string]string{"etc": newFile} }},
		{"write following /etc itself", w("/etc", true), unix.EISDIR, nil},
		{"write below loop", w("/loop/x", false), unix.ELOOP, nil},
		{"write below mutual loop", w("/a/x", false), unix.ELOOP, nil},
		{"write following loop", w("/loop", true), unix.ELOOP, nil},
		{"write replacing loop", w("/loop", false), nil,
			func(f *fixture) map[string]string { return map[string]string{"loop": newFile} }},
		{"write following dangling", w("/dangle", true), nil,
			func(f *fixture) map[string]string {
				return map[string]string{"nowhere": newFile, "dangle": "link 0:0 -> /nowhere"}
			}},
		{"write below /proc/self/root lookalike", w("/self"+"/x", false), unix.ENOENT, nil},
		{"write following /proc/self/fd lookalike", w("/fd0", true), unix.ENOENT, nil},
		{"write with .. from caller", w("/etc/../../x", false), ErrInvalidPath, nil},
		{"write relative", w("etc/x", false), ErrInvalidPath, nil},
		{"write creating parents through symlink",
			func(f *fixture) error {
				return f.r.WriteFile("/etc/n1/n2/f", strings.NewReader("new\n"), WriteOptions{Perm: 0o640, UID: 7, GID: 8, MkdirParents: true})
			}, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/n1": "dir 0755 0:0", f.shadow + "/n1/n2": "dir 0755 0:0", f.shadow + "/n1/n2/f": newFile}
			}},

		{"mkdirall through symlinks", func(f *fixture) error { return f.r.MkdirAll("/etc2/d1/d2", 0o700) }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/d1": "dir 0700 0:0", f.shadow + "/d1/d2": "dir 0700 0:0"}
			}},
		{"mkdirall below loop", func(f *fixture) error { return f.r.MkdirAll("/loop/x", 0o755) }, unix.ELOOP, nil},
		{"mkdirall below dangling", func(f *fixture) error { return f.r.MkdirAll("/dangle/x", 0o755) }, fs.ErrExist,
			func(f *fixture) map[string]string { return map[string]string{"nowhere": "missing"} }},

		{"symlink through symlink", func(f *fixture) error { return f.r.Symlink("/target", "/etc/s") }, nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/s": "link 0:0 -> /target"} }},
		{"symlink replacing final symlink", func(f *fixture) error { return f.r.Symlink("/target", "/etc/motd") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/motd": "link 0:0 -> /target"}
			}},
		{"symlink replacing /etc", func(f *fixture) error { return f.r.Symlink("/target", "/etc") }, nil,
			func(f *fixture) map[string]string { return map[string]string{"etc": "link 0:0 -> /target"} }},

		{"mkdir through symlink", func(f *fixture) error { return f.r.Mkdir("/etc/m", 0o700, 7, 8) }, nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/m": "dir 0700 7:8"} }},
		{"mkdir on /etc", func(f *fixture) error { return f.r.Mkdir("/etc", 0o777, 7, 8) }, fs.ErrExist,
			func(f *fixture) map[string]string { return map[string]string{"etc": "link 0:0 -> " + f.sentinel} }},
		{"mkdir on final symlink", func(f *fixture) error { return f.r.Mkdir("/etc/motd", 0o777, 7, 8) }, fs.ErrExist, nil},

		{"removeall /etc", func(f *fixture) error { return f.r.RemoveAll("/etc") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{"etc": "missing", f.shadow: "dir 0755 0:0"}
			}},
		{"removeall final symlink", func(f *fixture) error { return f.r.RemoveAll("/etc/motd") }, nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/motd": "missing"} }},
		{"removeall of sentinel's subdir by name", func(f *fixture) error { return f.r.RemoveAll("/etc/sub") }, nil, nil},
		{"removeall of sentinel's file via chain", func(f *fixture) error { return f.r.RemoveAll("/etc2/file") }, nil, nil},
		{"removeall dir holding links to sentinel", func(f *fixture) error { return f.r.RemoveAll("/dir") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{"dir": "missing", f.shadow: "dir 0755 0:0"}
			}},
		{"removeall below loop", func(f *fixture) error { return f.r.RemoveAll("/loop/x") }, unix.ELOOP, nil},

		{"lchown /etc", func(f *fixture) error { return f.r.Lchown("/etc", 4242, 4343) }, nil,
			func(f *fixture) map[string]string { return map[string]string{"etc": "link 4242:4343 -> " + f.sentinel} }},
		{"lchown final symlink", func(f *fixture) error { return f.r.Lchown("/etc/motd", 4242, 4343) }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/motd": "link 4242:4343 -> " + f.sentinel + "/file"}
			}},
		{"lchown sentinel path", func(f *fixture) error { return f.r.Lchown("/etc2/file", 4242, 4343) }, unix.ENOENT, nil},

		{"chmod /etc", func(f *fixture) error { return f.r.Chmod("/etc", 0o777) }, ErrSymlink, nil},
		{"chmod final symlink", func(f *fixture) error { return f.r.Chmod("/etc/motd", 0o777) }, ErrSymlink, nil},
		{"chmod link to sentinel", func(f *fixture) error { return f.r.Chmod("/dir/hostlink", 0o777) }, ErrSymlink, nil},
		{"chmod sentinel path", func(f *fixture) error { return f.r.Chmod("/etc/sub", 0o777) }, unix.ENOENT, nil},
		{"chmod shadow dir through symlink", func(f *fixture) error { return f.r.Chmod("/etc2/motd", 0o711) }, ErrSymlink, nil},

		{"lutimes /etc", func(f *fixture) error { return f.r.Lutimes("/etc", stamp, stamp) }, nil, nil},
		{"lutimes final symlink", func(f *fixture) error { return f.r.Lutimes("/etc/motd", stamp, stamp) }, nil, nil},
		{"lutimes sentinel dir via chain", func(f *fixture) error { return f.r.Lutimes("/etc2/sub", stamp, stamp) }, unix.ENOENT, nil},

		{"rename within shadow", func(f *fixture) error { return f.r.Rename("/etc/motd", "/etc2/moved") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/motd": "missing", f.shadow + "/moved": "link 0:0 -> " + f.sentinel + "/file"}
			}},
		{"rename /etc itself", func(f *fixture) error { return f.r.Rename("/etc", "/etcx") }, nil,
			func(f *fixture) map[string]string { return map[string]string{"etcx": "link 0:0 -> " + f.sentinel} }},
		{"rename file into symlinked dir", func(f *fixture) error { return f.r.Rename("/real/f", "/etc/file") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/file": `file 0644 0:0 "f\n"`}
			}},
		{"rename sentinel file out", func(f *fixture) error { return f.r.Rename("/etc/file", "/stolen") }, unix.ENOENT, nil},

		{"link into symlinked dir", func(f *fixture) error { return f.r.Link("/real/f", "/etc/linked") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{f.shadow + "/linked": `file 0644 0:0 "f\n"`}
			}},
		{"link sentinel file by name", func(f *fixture) error { return f.r.Link("/etc/file", "/stolen") }, unix.ENOENT,
			func(f *fixture) map[string]string { return map[string]string{"stolen": "missing"} }},
		{"link final symlink itself", func(f *fixture) error { return f.r.Link("/etc/motd", "/motd2") }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{"motd2": "link 0:0 -> " + f.sentinel + "/file"}
			}},
		{"link below loop", func(f *fixture) error { return f.r.Link("/real/f", "/loop/x") }, unix.ELOOP, nil},

		{"mknod through symlink", func(f *fixture) error { return f.r.Mknod("/etc2/fifo", fs.ModeNamedPipe|0o600, 0, 0) }, nil,
			func(f *fixture) map[string]string { return map[string]string{f.shadow + "/fifo": "FIFO 0600 0:0"} }},
		{"mknod on final symlink", func(f *fixture) error { return f.r.Mknod("/etc/motd", fs.ModeNamedPipe|0o600, 0, 0) }, fs.ErrExist, nil},

		{"lsetxattr final symlink", func(f *fixture) error { return f.r.Lsetxattr("/etc/motd", "trusted.x", []byte("v")) }, nil, nil},
		{"lsetxattr /etc", func(f *fixture) error { return f.r.Lsetxattr("/etc", "trusted.x", []byte("v")) }, nil, nil},
		{"lsetxattr sentinel path", func(f *fixture) error { return f.r.Lsetxattr("/etc2/file", "user.x", []byte("v")) }, unix.ENOENT, nil},

		{"copytree into symlinked dest", func(f *fixture) error { return f.r.CopyTree(hostSrc(t, f), "/etc", 9, 9) }, nil,
			func(f *fixture) map[string]string {
				return map[string]string{
					f.shadow + "/file":      `file 0644 9:9 "copied\n"`,
					f.shadow + "/sub/inner": `file 0600 9:9 "copied inner\n"`,
					f.shadow + "/hl":        "link 9:9 -> " + f.sentinel,
					f.shadow + "/motd":      `file 0644 9:9 "copied motd\n"`,
				}
			}},
		{"copytree merges through symlinks to the sentinel, inside the root", func(f *fixture) error {
			src := filepath.Join(t.TempDir(), "src")
			build(t, src, map[string]ent{"etc/passwd": file("root:x:0:0::/:/bin/sh\n", 0o644), "dir/hostlink/x": file("x", 0o600)})
			return f.r.CopyTree(src, "/", 0, 0)
		}, nil,
			func(f *fixture) map[string]string {
				// /etc and dir/hostlink name the sentinel by its host path,
				// which inside the root is the shadow directory: both merge
				// into it (keep-dirlinks), and nothing reaches the host.
				return map[string]string{
					"etc":                "link 0:0 -> " + f.sentinel,
					"dir/hostlink":       "link 0:0 -> " + f.sentinel,
					f.shadow + "/passwd": `file 0644 0:0 "root:x:0:0::/:/bin/sh\n"`,
					f.shadow + "/x":      `file 0600 0:0 "x"`,
				}
			}},
		{"copytree into loop", func(f *fixture) error { return f.r.CopyTree(hostSrc(t, f), "/loop", 9, 9) }, unix.ELOOP, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := adversarial(t)
			err := tt.op(f)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.want != nil {
				expect(t, f.root, tt.want(f))
			}
		})
	}
}

// hostSrc is a host tree whose names collide with the sentinel's and whose
// symlinks point at it; copying it must not touch the sentinel.
func hostSrc(t *testing.T, f *fixture) string {
	src := filepath.Join(t.TempDir(), "src")
	build(t, src, map[string]ent{
		"file":      file("copied\n", 0o644),
		"sub":       dir(0o755),
		"sub/inner": file("copied inner\n", 0o600),
		"hl":        link(f.sentinel),
		"motd":      file("copied motd\n", 0o644),
	})
	return src
}

// TestAdversarialReads: reads resolve inside the root too and never return
// the sentinel's content.
func TestAdversarialReads(t *testing.T) {
	f := adversarial(t)
	for _, p := range []string{"/etc/file", "/etc/motd", "/etc/rel", "/etc2/file", "/dir/rellink", "/dir/hostlink/file"} {
		if b, err := f.r.ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s) = %q, %v; want not exist", p, b, err)
		}
	}
	for _, p := range []string{"/loop", "/a/x"} {
		if _, err := f.r.Stat(p); !errors.Is(err, unix.ELOOP) {
			t.Errorf("Stat(%s) = %v, want ELOOP", p, err)
		}
	}
	// Resolve gives host paths inside the root, where chroot semantics say.
	for p, want := range map[string]string{
		"/etc/motd":  f.in(f.shadow + "/file"),
		"/etc2/x":    f.in(f.shadow + "/x"),
		"/etc":       f.in(f.shadow),
		"/dangle":    f.in("nowhere"),
		"/dir/keep":  f.in("dir/keep"),
		"/etc/rel/x": "", // rel resolves to a missing file: parent missing
	} {
		got, err := f.r.Resolve(p)
		if want == "" {
			if err == nil {
				t.Errorf("Resolve(%s) = %s, want an error", p, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", p, got, err, want)
		}
	}
}

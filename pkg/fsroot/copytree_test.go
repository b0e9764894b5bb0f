package fsroot

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// srcTree builds a host source tree in its own directory with mode 0750.
func srcTree(t *testing.T, tree map[string]ent) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mkdirs(t, src)
	must(t, unix.Chmod(src, 0o750))
	build(t, src, tree)
	return src
}

func TestCopyTree(t *testing.T) {
	r, root := newRoot(t, map[string]ent{"etc": dir(0o755)})
	src := srcTree(t, map[string]ent{
		"bin/tool":      file("#!/bin/sh\n", 0o755).owner(500, 500),
		"bin/su":        file("su", 0o4755),
		"bin/sg":        file("sg", 0o2711),
		"conf":          file("secret", 0o600),
		"tmp":           dir(0o1777),
		"tmp/x":         file("x", 0o644),
		"private":       dir(0o700),
		"private/deep":  dir(0o500),
		"link":          link("../etc/passwd"),
		"abs":           link("/etc/passwd"),
		"dangling":      link("/nowhere"),
		"private/dlink": link("deep"),
	})
	must(t, r.CopyTree(src, "/opt/app", 1000, 1001))
	own := "1000:1001"
	expect(t, root, map[string]string{
		"opt":                   "dir 0755 0:0", // missing parent of dest
		"opt/app":               "dir 0750 " + own,
		"opt/app/bin":           "dir 0755 " + own,
		"opt/app/bin/tool":      `file 0755 ` + own + ` "#!/bin/sh\n"`,
		"opt/app/bin/su":        `file 4755 ` + own + ` "su"`,
		"opt/app/bin/sg":        `file 2711 ` + own + ` "sg"`,
		"opt/app/conf":          `file 0600 ` + own + ` "secret"`,
		"opt/app/tmp":           "dir 1777 " + own,
		"opt/app/tmp/x":         `file 0644 ` + own + ` "x"`,
		"opt/app/private":       "dir 0700 " + own,
		"opt/app/private/deep":  "dir 0500 " + own,
		"opt/app/link":          "link " + own + " -> ../etc/passwd",
		"opt/app/abs":           "link " + own + " -> /etc/passwd",
		"opt/app/dangling":      "link " + own + " -> /nowhere",
		"opt/app/private/dlink": "link " + own + " -> deep",
		"etc":                   "dir 0755 0:0",
		"etc/passwd":            "missing",
	})
}

// TestCopyTreeMerge covers the merge rules, one collision per case.
func TestCopyTreeMerge(t *testing.T) {
	tests := []struct {
		name     string
		existing map[string]ent
		src      map[string]ent
		wantErr  []string // substrings of the error
		want     map[string]string
	}{
		{name: "dir merges into dir, which keeps its mode and owner",
			existing: map[string]ent{"d": dir(0o711).owner(5, 5), "d/old": file("old", 0o644)},
			src:      map[string]ent{"d": dir(0o700), "d/new": file("new", 0o640)},
			want:     map[string]string{"d": "dir 0711 5:5", "d/old": `file 0644 0:0 "old"`, "d/new": `file 0640 9:9 "new"`}},
		{name: "file replaces file",
			existing: map[string]ent{"f": file("old", 0o777).owner(5, 5)},
			src:      map[string]ent{"f": file("new", 0o640)},
			want:     map[string]string{"f": `file 0640 9:9 "new"`}},
		{name: "file replaces symlink without following it",
			existing: map[string]ent{"f": link("/target"), "target": file("t", 0o644)},
			src:      map[string]ent{"f": file("new", 0o640)},
			want:     map[string]string{"f": `file 0640 9:9 "new"`, "target": `file 0644 0:0 "t"`}},
		{name: "symlink replaces file",
			existing: map[string]ent{"f": file("old", 0o644)},
			src:      map[string]ent{"f": link("elsewhere")},
			want:     map[string]string{"f": "link 9:9 -> elsewhere"}},
		{name: "symlink replaces symlink",
			existing: map[string]ent{"f": link("old")},
			src:      map[string]ent{"f": link("new")},
			want:     map[string]string{"f": "link 9:9 -> new"}},
		{name: "dir merges into what a symlink to a dir names (keep-dirlinks, merged /usr)",
			existing: map[string]ent{"bin": link("usr/bin"), "usr/bin/ls": file("ls", 0o755)},
			src:      map[string]ent{"bin": dir(0o700), "bin/hello": file("h", 0o755)},
			want: map[string]string{"bin": "link 0:0 -> usr/bin", "usr/bin/hello": `file 0755 9:9 "h"`,
				"usr/bin/ls": `file 0755 0:0 "ls"`, "usr/bin": "dir 0755 0:0"}},
		{name: "dir merges through an absolute symlink, inside the root",
			existing: map[string]ent{"d": link("/real"), "real/keep": file("k", 0o644)},
			src:      map[string]ent{"d": dir(0o755), "d/new": file("n", 0o644)},
			want: map[string]string{"d": "link 0:0 -> /real", "real/new": `file 0644 9:9 "n"`,
				"real/keep": `file 0644 0:0 "k"`}},
		{name: "dir replaces a dangling symlink",
			existing: map[string]ent{"d": link("/nowhere")},
			src:      map[string]ent{"d": dir(0o755), "d/new": file("n", 0o644)},
			want:     map[string]string{"d": "dir 0755 9:9", "d/new": `file 0644 9:9 "n"`, "nowhere": "missing"}},
		{name: "dir replaces file",
			existing: map[string]ent{"d": file("f", 0o644)},
			src:      map[string]ent{"d": dir(0o755), "d/new": file("n", 0o644)},
			want:     map[string]string{"d": "dir 0755 9:9", "d/new": `file 0644 9:9 "n"`}},
		{name: "file onto dir is an error naming both",
			existing: map[string]ent{"x/d": dir(0o755), "x/d/keep": file("k", 0o644)},
			src:      map[string]ent{"x/d": file("f", 0o644)},
			wantErr:  []string{"/src/x/d", "/x/d", "is a directory"},
			want:     map[string]string{"x/d": "dir 0755 0:0", "x/d/keep": `file 0644 0:0 "k"`}},
		{name: "symlink onto dir is an error naming both",
			existing: map[string]ent{"d": dir(0o755)},
			src:      map[string]ent{"d": link("x")},
			wantErr:  []string{"/src/d", "to /d:", "is a directory"},
			want:     map[string]string{"d": "dir 0755 0:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tt.existing)
			src := srcTree(t, tt.src)
			err := r.CopyTree(src, "/", 9, 9)
			if tt.wantErr == nil {
				must(t, err)
			} else if err == nil {
				t.Fatal("no error")
			} else {
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
			}
			expect(t, dir, tt.want)
		})
	}
}

// TestCopyTreeRefusesSpecialFiles: FIFOs, devices and sockets in the source
// are errors naming them, found before anything is written.
func TestCopyTreeRefusesSpecialFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, p string)
	}{
		{"fifo", func(t *testing.T, p string) { must(t, unix.Mkfifo(p, 0o644)) }},
		{"char device", func(t *testing.T, p string) { must(t, unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))) }},
		{"block device", func(t *testing.T, p string) { must(t, unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0)))) }},
		{"socket", func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, root := newRoot(t, map[string]ent{"existing/f": file("old", 0o644)})
			// "a" sorts before the special file, so a copier that checks
			// as it goes would already have written it.
			src := srcTree(t, map[string]ent{"a": file("a", 0o644), "existing/f": file("new", 0o644), "z": dir(0o755)})
			special := filepath.Join(src, "z", "special")
			tt.make(t, special)
			before := snapshot(t, root, "")
			for _, dest := range []string{"/", "/new/dest"} {
				err := r.CopyTree(src, dest, 0, 0)
				if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), special) {
					t.Errorf("CopyTree to %s = %v, want ErrUnsupportedType naming %s", dest, err, special)
				}
			}
			for _, d := range diffSnapshots(before, snapshot(t, root, "")) {
				t.Errorf("written anyway: %s", d)
			}
		})
	}
}

func TestCopyTreeErrors(t *testing.T) {
	r, dir := newRoot(t, map[string]ent{"f": file("x", 0o644), "loop": link("/loop")})
	src := srcTree(t, map[string]ent{"a": file("a", 0o644)})
	tests := []struct {
		name, src, dest string
		wantErr         error
	}{
		{"dest is a file", src, "/f", unix.ENOTDIR},
		{"dest loops", src, "/loop", unix.ELOOP},
		{"dest below a file", src, "/f/x", unix.ENOTDIR},
		{"src missing", filepath.Join(dir, "nope"), "/x", errAny},
		{"src is a file", filepath.Join(src, "a"), "/x", errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, r.CopyTree(tt.src, tt.dest, 0, 0), tt.wantErr)
		})
	}
	check(t, r.CopyTree(src, "/x", -1, 0), ErrInvalidOwner)
	expect(t, dir, map[string]string{"x": "missing"})
}

package fsroot

import (
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSymlink(t *testing.T) {
	tests := []struct {
		name, target, path string
		tree               map[string]ent
		wantErr            error
		want               map[string]string
	}{
		{name: "new", target: "/usr/bin/x", path: "/l", want: map[string]string{"l": "link 0:0 -> /usr/bin/x"}},
		{name: "verbatim relative", target: "../../../a b/./c", path: "/l", want: map[string]string{"l": "link 0:0 -> ../../../a b/./c"}},
		{name: "replaces file", tree: map[string]ent{"l": file("x", 0o644)}, target: "t", path: "/l",
			want: map[string]string{"l": "link 0:0 -> t"}},
		{name: "replaces symlink, not its target", tree: map[string]ent{"f": file("x", 0o644), "l": link("f")}, target: "t", path: "/l",
			want: map[string]string{"l": "link 0:0 -> t", "f": `file 0644 0:0 "x"`}},
		{name: "directory", tree: map[string]ent{"d": dir(0o755)}, target: "t", path: "/d", wantErr: unix.EISDIR,
			want: map[string]string{"d": "dir 0755 0:0"}},
		{name: "empty target", target: "", path: "/l", wantErr: errAny, want: map[string]string{"l": "missing"}},
		{name: "missing parent", target: "t", path: "/a/l", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tt.tree)
			check(t, r.Symlink(tt.target, tt.path), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

func TestRemoveAll(t *testing.T) {
	tree := map[string]ent{
		"f":           file("x", 0o644),
		"d/a/b/c":     file("c", 0o000),
		"d/ro":        dir(0o500),
		"d/ro/x":      file("x", 0o400),
		"d/none":      dir(0o000),
		"d/l":         link("/keep"),
		"keep/k":      file("k", 0o644),
		"ldir":        link("keep"),
		"s":           link("/d2"),
		"d2/victim":   file("v", 0o644),
		"d2/survivor": file("s", 0o644),
	}
	tests := []struct {
		name, path string
		wantErr    error
		want       map[string]string
	}{
		{name: "file", path: "/f", want: map[string]string{"f": "missing"}},
		{name: "tree with unwritable dirs", path: "/d", want: map[string]string{"d": "missing", "keep/k": `file 0644 0:0 "k"`}},
		{name: "symlink to dir removes only the link", path: "/ldir", want: map[string]string{"ldir": "missing", "keep/k": `file 0644 0:0 "k"`}},
		{name: "through symlinked parent", path: "/s/victim", want: map[string]string{"d2/victim": "missing", "d2/survivor": `file 0644 0:0 "s"`, "s": "link 0:0 -> /d2"}},
		{name: "missing", path: "/nope"},
		{name: "missing parent", path: "/nope/nope"},
		{name: "root", path: "/", wantErr: ErrRoot, want: map[string]string{"f": `file 0644 0:0 "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tree)
			check(t, r.RemoveAll(tt.path), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

func TestRename(t *testing.T) {
	tree := map[string]ent{"f": file("f", 0o644), "g": file("g", 0o600), "d/x": file("x", 0o644), "l": link("/d")}
	tests := []struct {
		name, old, new string
		wantErr        error
		want           map[string]string
	}{
		{name: "file", old: "/f", new: "/d/f2", want: map[string]string{"f": "missing", "d/f2": `file 0644 0:0 "f"`}},
		{name: "over file", old: "/f", new: "/g", want: map[string]string{"f": "missing", "g": `file 0644 0:0 "f"`}},
		{name: "dir", old: "/d", new: "/e", want: map[string]string{"d": "missing", "e/x": `file 0644 0:0 "x"`}},
		{name: "symlink itself", old: "/l", new: "/m", want: map[string]string{"m": "link 0:0 -> /d", "d/x": `file 0644 0:0 "x"`}},
		{name: "via symlinked parent", old: "/l/x", new: "/x", want: map[string]string{"x": `file 0644 0:0 "x"`, "d/x": "missing"}},
		{name: "missing", old: "/nope", new: "/x", wantErr: fs.ErrNotExist},
		{name: "onto root", old: "/f", new: "/", wantErr: ErrRoot},
		{name: "not clean", old: "/f", new: "/d/../x", wantErr: ErrInvalidPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tree)
			check(t, r.Rename(tt.old, tt.new), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

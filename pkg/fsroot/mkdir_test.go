package fsroot

import (
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMkdirAll(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name    string
		tree    map[string]ent
		path    string
		perm    fs.FileMode
		wantErr error
		want    map[string]string
	}{
		{name: "nested 0700", path: "/a/b", perm: 0o700,
			want: map[string]string{"a": "dir 0700 0:0", "a/b": "dir 0700 0:0"}},
		{name: "1777", path: "/tmp", perm: 0o777 | fs.ModeSticky, want: map[string]string{"tmp": "dir 1777 0:0"}},
		{name: "2755", path: "/srv", perm: 0o755 | fs.ModeSetgid, want: map[string]string{"srv": "dir 2755 0:0"}},
		{name: "existing untouched", tree: map[string]ent{"a": dir(0o711).owner(5, 5)}, path: "/a/b", perm: 0o700,
			want: map[string]string{"a": "dir 0711 5:5", "a/b": "dir 0700 0:0"}},
		{name: "existing leaf untouched", tree: map[string]ent{"a": dir(0o711).owner(5, 5)}, path: "/a", perm: 0o700,
			want: map[string]string{"a": "dir 0711 5:5"}},
		// A setgid parent would hand its group and setgid bit down.
		{name: "setgid parent does not leak", tree: map[string]ent{"a": dir(0o2775).owner(0, 50)}, path: "/a/b", perm: 0o755,
			want: map[string]string{"a/b": "dir 0755 0:0"}},
		{name: "through symlink", tree: map[string]ent{"a": dir(0o755), "s": link("/a")}, path: "/s/b", perm: 0o750,
			want: map[string]string{"a/b": "dir 0750 0:0", "s": "link 0:0 -> /a"}},
		{name: "over file", tree: map[string]ent{"a": file("x", 0o644)}, path: "/a/b", perm: 0o755, wantErr: unix.ENOTDIR},
		{name: "dangling symlink", tree: map[string]ent{"s": link("/nowhere")}, path: "/s/x", perm: 0o755, wantErr: fs.ErrExist,
			want: map[string]string{"nowhere": "missing"}},
		{name: "root", path: "/", perm: 0o755},
		{name: "bad mode", path: "/a", perm: fs.ModeSymlink | 0o755, wantErr: ErrInvalidMode, want: map[string]string{"a": "missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tt.tree)
			check(t, r.MkdirAll(tt.path, tt.perm), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

func TestMkdir(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name     string
		tree     map[string]ent
		path     string
		perm     fs.FileMode
		uid, gid int
		wantErr  error
		want     map[string]string
	}{
		{name: "create", path: "/d", perm: 0o700, uid: 7, gid: 8, want: map[string]string{"d": "dir 0700 7:8"}},
		{name: "create 1777", path: "/d", perm: 0o777 | fs.ModeSticky, want: map[string]string{"d": "dir 1777 0:0"}},
		{name: "existing set exactly", tree: map[string]ent{"d": dir(0o2755).owner(1, 1), "d/x": file("x", 0o600)},
			path: "/d", perm: 0o777 | fs.ModeSticky, uid: 5, gid: 6,
			want: map[string]string{"d": "dir 1777 5:6", "d/x": `file 0600 0:0 "x"`}},
		{name: "setgid parent does not leak", tree: map[string]ent{"a": dir(0o2775).owner(0, 50)}, path: "/a/b", perm: 0o755,
			want: map[string]string{"a/b": "dir 0755 0:0"}},
		{name: "existing file", tree: map[string]ent{"f": file("x", 0o600)}, path: "/f", perm: 0o755, wantErr: fs.ErrExist,
			want: map[string]string{"f": `file 0600 0:0 "x"`}},
		{name: "existing symlink to dir", tree: map[string]ent{"d": dir(0o700), "l": link("d")}, path: "/l", perm: 0o777, wantErr: fs.ErrExist,
			want: map[string]string{"d": "dir 0700 0:0"}},
		{name: "missing parent", path: "/a/b", perm: 0o755, wantErr: fs.ErrNotExist},
		{name: "root", path: "/", perm: 0o750, want: map[string]string{".": "dir 0750 0:0"}},
		{name: "bad owner", path: "/d", perm: 0o755, uid: -5, wantErr: ErrInvalidOwner, want: map[string]string{"d": "missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tt.tree)
			check(t, r.Mkdir(tt.path, tt.perm, tt.uid, tt.gid), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

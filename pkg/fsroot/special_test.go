package fsroot

import (
	"io/fs"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMknod(t *testing.T) {
	tests := []struct {
		name, path   string
		mode         fs.FileMode
		major, minor uint32
		wantErr      error
		want         string
		wantDev      uint64
	}{
		{name: "fifo", path: "/p", mode: fs.ModeNamedPipe | 0o640, want: "FIFO 0640 0:0"},
		{name: "char device", path: "/null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, major: 1, minor: 3,
			want: "character device 0666 0:0", wantDev: unix.Mkdev(1, 3)},
		{name: "block device", path: "/loop0", mode: fs.ModeDevice | 0o660 | fs.ModeSetgid, major: 7, minor: 0,
			want: "block device 2660 0:0", wantDev: unix.Mkdev(7, 0)},
		{name: "socket", path: "/s", mode: fs.ModeSocket | 0o777, want: "socket 0777 0:0"},
		{name: "through symlinked parent", path: "/l/p", mode: fs.ModeNamedPipe | 0o600, want: "FIFO 0600 0:0"},
		{name: "regular file", path: "/f2", mode: 0o644, wantErr: ErrInvalidMode, want: "missing"},
		{name: "directory", path: "/f2", mode: fs.ModeDir | 0o755, wantErr: ErrInvalidMode, want: "missing"},
		{name: "existing", path: "/f", mode: fs.ModeNamedPipe | 0o600, wantErr: fs.ErrExist, want: `file 0644 0:0 "x"`},
		{name: "missing parent", path: "/no/p", mode: fs.ModeNamedPipe | 0o600, wantErr: fs.ErrNotExist},
		{name: "root", path: "/", mode: fs.ModeNamedPipe | 0o600, wantErr: ErrRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, map[string]ent{"f": file("x", 0o644), "d": dir(0o755), "l": link("d")})
			check(t, r.Mknod(tt.path, tt.mode, tt.major, tt.minor), tt.wantErr)
			host := map[string]string{"/l/p": "d/p", "/no/p": "no/p", "/": "."}[tt.path]
			if host == "" {
				host = tt.path[1:]
			}
			if tt.want != "" {
				expect(t, dir, map[string]string{host: tt.want})
			}
			if tt.wantDev != 0 {
				var st unix.Stat_t
				must(t, unix.Lstat(dir+"/"+host, &st))
				if st.Rdev != tt.wantDev {
					t.Errorf("rdev %#x, want %#x", st.Rdev, tt.wantDev)
				}
			}
		})
	}
}

func TestLink(t *testing.T) {
	tree := map[string]ent{"f": file("x", 0o644), "d/g": file("g", 0o600), "l": link("f"), "s": link("/d"), "e": file("e", 0o644)}
	tests := []struct {
		name, old, new string
		wantErr        error
		want           map[string]string
		sameInode      [2]string
	}{
		{name: "file", old: "/f", new: "/f2", want: map[string]string{"f2": `file 0644 0:0 "x"`}, sameInode: [2]string{"f", "f2"}},
		{name: "through symlinked parents", old: "/s/g", new: "/s/g2", want: map[string]string{"d/g2": `file 0600 0:0 "g"`}, sameInode: [2]string{"d/g", "d/g2"}},
		{name: "symlink is linked itself", old: "/l", new: "/l2", want: map[string]string{"l2": "link 0:0 -> f"}, sameInode: [2]string{"l", "l2"}},
		{name: "existing new", old: "/f", new: "/e", wantErr: fs.ErrExist, want: map[string]string{"e": `file 0644 0:0 "e"`}},
		{name: "missing old", old: "/nope", new: "/x", wantErr: fs.ErrNotExist},
		{name: "directory", old: "/d", new: "/d2", wantErr: unix.EPERM},
		{name: "root", old: "/", new: "/x", wantErr: ErrRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tree)
			check(t, r.Link(tt.old, tt.new), tt.wantErr)
			expect(t, dir, tt.want)
			if tt.sameInode[0] != "" {
				var a, b unix.Stat_t
				must(t, unix.Lstat(dir+"/"+tt.sameInode[0], &a))
				must(t, unix.Lstat(dir+"/"+tt.sameInode[1], &b))
				if a.Ino != b.Ino {
					t.Errorf("%s and %s are not the same inode", tt.sameInode[0], tt.sameInode[1])
				}
			}
		})
	}
}

func TestLsetxattr(t *testing.T) {
	tests := []struct {
		name, path, attr string
		wantErr          error
		set, unset       []string // host paths that must have / lack the attribute
	}{
		{name: "file", path: "/f", attr: "user.test", set: []string{"f"}},
		{name: "dir", path: "/d", attr: "user.test", set: []string{"d"}},
		{name: "root", path: "/", attr: "user.test", set: []string{"."}},
		{name: "symlink itself", path: "/l", attr: "trusted.test", set: []string{"l"}, unset: []string{"f"}},
		{name: "through symlinked parent", path: "/s/g", attr: "user.test", set: []string{"d/g"}},
		{name: "missing", path: "/nope", attr: "user.test", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, map[string]ent{"f": file("x", 0o644), "d/g": file("g", 0o600), "l": link("f"), "s": link("/d")})
			err := r.Lsetxattr(tt.path, tt.attr, []byte("value"))
			if err == unix.ENOTSUP {
				t.Skipf("the test filesystem has no %s xattrs", tt.attr)
			}
			check(t, err, tt.wantErr)
			buf := make([]byte, 16)
			for _, p := range tt.set {
				n, err := unix.Lgetxattr(dir+"/"+p, tt.attr, buf)
				if err != nil || string(buf[:n]) != "value" {
					t.Errorf("%s: %s = %q, %v; want \"value\"", p, tt.attr, buf[:max(n, 0)], err)
				}
			}
			for _, p := range tt.unset {
				if _, err := unix.Lgetxattr(dir+"/"+p, tt.attr, buf); err != unix.ENODATA {
					t.Errorf("%s: %s set (%v); the symlink was followed", p, tt.attr, err)
				}
			}
		})
	}
}

package fsroot

import (
	"io/fs"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLchown(t *testing.T) {
	needRoot(t)
	tree := map[string]ent{"f": file("x", 0o644).owner(1, 1), "d": dir(0o755).owner(1, 1), "l": link("f").owner(1, 1)}
	tests := []struct {
		name, path string
		uid, gid   int
		wantErr    error
		want       map[string]string
	}{
		{name: "file", path: "/f", uid: 7, gid: 8, want: map[string]string{"f": `file 0644 7:8 "x"`}},
		{name: "dir", path: "/d", uid: 7, gid: 8, want: map[string]string{"d": "dir 0755 7:8"}},
		{name: "symlink itself", path: "/l", uid: 7, gid: 8, want: map[string]string{"l": "link 7:8 -> f", "f": `file 0644 1:1 "x"`}},
		{name: "keep uid", path: "/f", uid: -1, gid: 8, want: map[string]string{"f": `file 0644 1:8 "x"`}},
		{name: "root", path: "/", uid: 7, gid: 8, want: map[string]string{".": "dir 0755 7:8"}},
		{name: "missing", path: "/nope", uid: 7, gid: 8, wantErr: fs.ErrNotExist},
		{name: "invalid", path: "/f", uid: -2, gid: 8, wantErr: ErrInvalidOwner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tree)
			check(t, r.Lchown(tt.path, tt.uid, tt.gid), tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

func TestChmod(t *testing.T) {
	needRoot(t)
	tree := map[string]ent{"f": file("x", 0o644).owner(3, 3), "d": dir(0o755), "l": link("f")}
	tests := []struct {
		name, path string
		perm       fs.FileMode
		wantErr    error
		want       map[string]string
	}{
		{name: "setuid", path: "/f", perm: 0o755 | fs.ModeSetuid, want: map[string]string{"f": `file 4755 3:3 "x"`}},
		{name: "setuid setgid", path: "/f", perm: 0o750 | fs.ModeSetuid | fs.ModeSetgid, want: map[string]string{"f": `file 6750 3:3 "x"`}},
		{name: "nothing", path: "/f", perm: 0, want: map[string]string{"f": `file 0000 3:3 "x"`}},
		{name: "sticky dir", path: "/d", perm: 0o777 | fs.ModeSticky, want: map[string]string{"d": "dir 1777 0:0"}},
		{name: "root", path: "/", perm: 0o700, want: map[string]string{".": "dir 0700 0:0"}},
		{name: "symlink", path: "/l", perm: 0o777, wantErr: ErrSymlink, want: map[string]string{"f": `file 0644 3:3 "x"`}},
		{name: "missing", path: "/nope", perm: 0o777, wantErr: fs.ErrNotExist},
		{name: "type bits", path: "/f", perm: fs.ModeNamedPipe | 0o644, wantErr: ErrInvalidMode},
	}
	for _, fallback := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if fallback {
				name += " via /proc"
			}
			t.Run(name, func(t *testing.T) {
				if fallback {
					useFchmodat2 = false
					t.Cleanup(func() { useFchmodat2 = true })
				}
				r, dir := newRoot(t, tree)
				check(t, r.Chmod(tt.path, tt.perm), tt.wantErr)
				expect(t, dir, tt.want)
			})
		}
	}
}

func TestLutimes(t *testing.T) {
	tree := map[string]ent{"f": file("x", 0o644), "l": link("f"), "d": dir(0o755)}
	a, m := time.Unix(1_500_000_000, 123456789), time.Unix(1_600_000_000, 987654321)
	tests := []struct {
		name, path string
		atime      time.Time
		want       map[string][2]time.Time // atime, mtime per host path; zero: unchanged
	}{
		{name: "file", path: "/f", atime: a, want: map[string][2]time.Time{"f": {a, m}}},
		{name: "dir", path: "/d", atime: a, want: map[string][2]time.Time{"d": {a, m}}},
		{name: "symlink itself", path: "/l", atime: a, want: map[string][2]time.Time{"l": {a, m}, "f": {}}},
		{name: "zero atime omitted", path: "/f", want: map[string][2]time.Time{"f": {{}, m}}},
		{name: "root", path: "/", atime: a, want: map[string][2]time.Time{".": {a, m}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tree)
			before := map[string]unix.Stat_t{}
			for p := range tt.want {
				var st unix.Stat_t
				must(t, unix.Lstat(dir+"/"+p, &st))
				before[p] = st
			}
			must(t, r.Lutimes(tt.path, tt.atime, m))
			for p, w := range tt.want {
				var st unix.Stat_t
				must(t, unix.Lstat(dir+"/"+p, &st))
				gotA, gotM := tsTime(st.Atim), tsTime(st.Mtim)
				wantA, wantM := w[0], w[1]
				if wantA.IsZero() {
					wantA = tsTime(before[p].Atim)
				}
				if wantM.IsZero() {
					wantM = tsTime(before[p].Mtim)
				}
				if !gotA.Equal(wantA) || !gotM.Equal(wantM) {
					t.Errorf("%s: atime %v mtime %v, want %v %v", p, gotA, gotM, wantA, wantM)
				}
			}
		})
	}
}

func tsTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

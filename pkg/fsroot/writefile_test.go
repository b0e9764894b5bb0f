package fsroot

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteFile(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name    string
		tree    map[string]ent
		path    string
		opts    WriteOptions
		wantErr error
		want    map[string]string
	}{
		{name: "0600", path: "/f", opts: WriteOptions{Perm: 0o600, UID: 1000, GID: 1001},
			want: map[string]string{"f": `file 0600 1000:1001 "data"`}},
		{name: "0755", path: "/f", opts: WriteOptions{Perm: 0o755},
			want: map[string]string{"f": `file 0755 0:0 "data"`}},
		// Non-root owner: chmod before chown would lose the setuid bit.
		{name: "4755 owned by a user", path: "/f", opts: WriteOptions{Perm: 0o755 | fs.ModeSetuid, UID: 1000, GID: 1000},
			want: map[string]string{"f": `file 4755 1000:1000 "data"`}},
		{name: "2755", path: "/f", opts: WriteOptions{Perm: 0o755 | fs.ModeSetgid, UID: 0, GID: 50},
			want: map[string]string{"f": `file 2755 0:50 "data"`}},
		{name: "1777", path: "/f", opts: WriteOptions{Perm: 0o777 | fs.ModeSticky},
			want: map[string]string{"f": `file 1777 0:0 "data"`}},
		{name: "0000", path: "/f", opts: WriteOptions{Perm: 0},
			want: map[string]string{"f": `file 0000 0:0 "data"`}},
		{name: "replaces file entirely", tree: map[string]ent{"f": file("old", 0o4777).owner(5, 5)},
			path: "/f", opts: WriteOptions{Perm: 0o644},
			want: map[string]string{"f": `file 0644 0:0 "data"`}},
		{name: "follow relative symlink", tree: map[string]ent{"d/f": file("old", 0o600), "l": link("d/f")},
			path: "/l", opts: WriteOptions{Perm: 0o640, FollowSymlink: true},
			want: map[string]string{"d/f": `file 0640 0:0 "data"`, "l": "link 0:0 -> d/f"}},
		{name: "follow chain of absolute symlinks", tree: map[string]ent{"d/f": file("old", 0o600), "l1": link("/l2"), "l2": link("/d/f")},
			path: "/l1", opts: WriteOptions{Perm: 0o640, FollowSymlink: true},
			want: map[string]string{"d/f": `file 0640 0:0 "data"`, "l1": "link 0:0 -> /l2", "l2": "link 0:0 -> /d/f"}},
		{name: "follow dangling symlink creates target", tree: map[string]ent{"d": dir(0o755), "l": link("/d/new")},
			path: "/l", opts: WriteOptions{Perm: 0o640, FollowSymlink: true},
			want: map[string]string{"d/new": `file 0640 0:0 "data"`, "l": "link 0:0 -> /d/new"}},
		// The link sits in /d/e, reached through /x/y: "../f" is /d/f, not
		// the lexical /x/f.
		{name: "follow relative symlink below symlinked dir",
			tree: map[string]ent{"d/e/l": link("../f"), "d/f": file("old", 0o600), "x/y": link("/d/e"), "x/f": file("decoy", 0o600)},
			path: "/x/y/l", opts: WriteOptions{Perm: 0o644, FollowSymlink: true},
			want: map[string]string{"d/f": `file 0644 0:0 "data"`, "x/f": `file 0600 0:0 "decoy"`}},
		// Same, with the chain dangling, so it is walked by hand: "../new"
		// is /d/new, although /x/new's directory exists too.
		{name: "follow dangling relative symlink below symlinked dir",
			tree: map[string]ent{"d/e/l": link("../new"), "x/y": link("/d/e"), "x/f": file("decoy", 0o600)},
			path: "/x/y/l", opts: WriteOptions{Perm: 0o644, FollowSymlink: true},
			want: map[string]string{"d/new": `file 0644 0:0 "data"`, "x/new": "missing"}},
		{name: "no follow replaces symlink", tree: map[string]ent{"f": file("old", 0o600), "l": link("f")},
			path: "/l", opts: WriteOptions{Perm: 0o644},
			want: map[string]string{"l": `file 0644 0:0 "data"`, "f": `file 0600 0:0 "old"`}},
		{name: "onto directory", tree: map[string]ent{"d": dir(0o755), "d/x": file("x", 0o600)},
			path: "/d", opts: WriteOptions{Perm: 0o644}, wantErr: unix.EISDIR,
			want: map[string]string{"d": "dir 0755 0:0", "d/x": `file 0600 0:0 "x"`}},
		{name: "following onto directory", tree: map[string]ent{"d": dir(0o755), "l": link("d")},
			path: "/l", opts: WriteOptions{Perm: 0o644, FollowSymlink: true}, wantErr: unix.EISDIR},
		{name: "missing parent", path: "/no/f", opts: WriteOptions{Perm: 0o644}, wantErr: fs.ErrNotExist,
			want: map[string]string{"no": "missing"}},
		{name: "parent is a file", tree: map[string]ent{"f": file("x", 0o600)}, path: "/f/g", opts: WriteOptions{Perm: 0o644}, wantErr: unix.ENOTDIR},
		{name: "mkdir parents", path: "/p/q/f", opts: WriteOptions{Perm: 0o600, MkdirParents: true, UID: 3, GID: 4},
			want: map[string]string{"p": "dir 0755 0:0", "p/q": "dir 0755 0:0", "p/q/f": `file 0600 3:4 "data"`}},
		{name: "mkdir parents through symlink", tree: map[string]ent{"d": dir(0o700), "s": link("/d")},
			path: "/s/new/f", opts: WriteOptions{Perm: 0o600, MkdirParents: true},
			want: map[string]string{"d": "dir 0700 0:0", "d/new": "dir 0755 0:0", "d/new/f": `file 0600 0:0 "data"`}},
		{name: "type bits in perm", path: "/f", opts: WriteOptions{Perm: fs.ModeDir | 0o755}, wantErr: ErrInvalidMode,
			want: map[string]string{"f": "missing"}},
		{name: "negative uid", path: "/f", opts: WriteOptions{Perm: 0o644, UID: -1}, wantErr: ErrInvalidOwner},
		{name: "root", path: "/", opts: WriteOptions{Perm: 0o644}, wantErr: ErrRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newRoot(t, tt.tree)
			err := r.WriteFile(tt.path, strings.NewReader("data"), tt.opts)
			check(t, err, tt.wantErr)
			expect(t, dir, tt.want)
		})
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		n := copy(p, strings.Repeat("x", min(f.n, len(p))))
		f.n -= n
		return n, nil
	}
	return 0, errors.New("source broke")
}

// TestWriteFileAtomic: a failed write leaves neither a partial file nor a
// temporary, and the old content stays.
func TestWriteFileAtomic(t *testing.T) {
	r, dir := newRoot(t, map[string]ent{"old": file("old content", 0o644)})
	for _, p := range []string{"/old", "/new"} {
		err := r.WriteFile(p, &failingReader{n: 100_000}, WriteOptions{Perm: 0o644})
		if err == nil || !strings.Contains(err.Error(), "source broke") {
			t.Errorf("WriteFile(%s) = %v, want the reader's error", p, err)
		}
	}
	expect(t, dir, map[string]string{"old": `file 0644 0:0 "old content"`, "new": "missing"})
	// newRoot's cleanup checks for temporaries.
}

var _ io.Reader = (*failingReader)(nil)

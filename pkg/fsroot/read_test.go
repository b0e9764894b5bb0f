package fsroot

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func readTree() map[string]ent {
	return map[string]ent{
		"etc/motd":  file("hello\n", 0o640).owner(1, 2),
		"etc/l":     link("motd"),
		"abs":       link("/etc/l"),
		"up":        link("../../../../etc/motd"),
		"d/x":       file("x", 0o600),
		"loop":      link("loop"),
		"dangle":    link("/etc/new"),
		"dangle2":   link("/nodir/new"),
		"etcl":      link("etc"),
		"etcl2":     link("/etcl/"),
		"etc/motdl": link("../etc/l"),
		"x/y":       link("/etc"),
		"etc/rel":   link("../var/new"),
		"var":       dir(0o755),
	}
}

func TestStat(t *testing.T) {
	r, _ := newRoot(t, readTree())
	tests := []struct {
		path     string
		lstat    bool
		wantMode fs.FileMode
		wantSize int64
		wantErr  error
	}{
		{path: "/etc/motd", wantMode: 0o640, wantSize: 6},
		{path: "/abs", wantMode: 0o640, wantSize: 6},
		{path: "/up", wantMode: 0o640, wantSize: 6},
		{path: "/abs", lstat: true, wantMode: fs.ModeSymlink | 0o777, wantSize: int64(len("/etc/l"))},
		{path: "/etcl2/motdl", wantMode: 0o640, wantSize: 6},
		{path: "/d", wantMode: fs.ModeDir | 0o755},
		{path: "/", wantMode: fs.ModeDir | 0o755},
		{path: "/loop", wantErr: unix.ELOOP},
		{path: "/loop", lstat: true, wantMode: fs.ModeSymlink | 0o777, wantSize: 4},
		{path: "/dangle", wantErr: fs.ErrNotExist},
		{path: "/nope", lstat: true, wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		name := "stat " + tt.path
		if tt.lstat {
			name = "l" + name
		}
		t.Run(name, func(t *testing.T) {
			stat := r.Stat
			if tt.lstat {
				stat = r.Lstat
			}
			fi, err := stat(tt.path)
			check(t, err, tt.wantErr)
			if err != nil {
				return
			}
			if fi.Mode() != tt.wantMode || !fi.IsDir() && fi.Size() != tt.wantSize {
				t.Errorf("mode %v size %d, want %v %d", fi.Mode(), fi.Size(), tt.wantMode, tt.wantSize)
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); !ok {
				t.Errorf("Sys() is %T, want *syscall.Stat_t", fi.Sys())
			} else if tt.path == "/etc/motd" && (st.Uid != 1 || st.Gid != 2) {
				t.Errorf("owner %d:%d, want 1:2", st.Uid, st.Gid)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	r, dir := newRoot(t, readTree())
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(t, os.Symlink("/fifo", filepath.Join(dir, "fifol")))
	tests := []struct {
		path    string
		want    string
		wantErr error
	}{
		{path: "/etc/motd", want: "hello\n"},
		{path: "/abs", want: "hello\n"},
		{path: "/up", want: "hello\n"},
		{path: "/etcl2/motdl", want: "hello\n"},
		{path: "/d", wantErr: unix.EISDIR},
		{path: "/loop", wantErr: unix.ELOOP},
		{path: "/nope", wantErr: fs.ErrNotExist},
		// A FIFO would block forever; it must be refused, not opened.
		{path: "/fifo", wantErr: ErrUnsupportedType},
		{path: "/fifol", wantErr: ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			done := make(chan struct{})
			var got []byte
			var err error
			go func() { got, err = r.ReadFile(tt.path); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			check(t, err, tt.wantErr)
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenDir(t *testing.T) {
	r, _ := newRoot(t, readTree())
	f, err := r.Open("/etcl")
	must(t, err)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	must(t, err)
	slices.Sort(names)
	if strings.Join(names, ",") != "l,motd,motdl,rel" {
		t.Errorf("entries %v", names)
	}
	if f.Name() != "/etcl" {
		t.Errorf("Name() = %q, want the image path", f.Name())
	}
	// Read-only.
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("write to a read-only file succeeded")
	}
	g, err := r.Open("/etc/motd")
	must(t, err)
	defer g.Close()
	if _, err := g.Write([]byte("x")); err == nil {
		t.Error("write to a read-only file succeeded")
	}
	b, err := io.ReadAll(g)
	must(t, err)
	if string(b) != "hello\n" {
		t.Errorf("content %q", b)
	}
}

func TestReadlink(t *testing.T) {
	r, _ := newRoot(t, readTree())
	tests := []struct {
		path, want string
		wantErr    error
	}{
		{path: "/abs", want: "/etc/l"},
		{path: "/up", want: "../../../../etc/motd"},
		{path: "/etcl/l", want: "motd"}, // parent followed, final not
		{path: "/loop", want: "loop"},
		{path: "/etc/motd", wantErr: unix.EINVAL},
		{path: "/nope", wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := r.Readlink(tt.path)
			check(t, err, tt.wantErr)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	r, dir := newRoot(t, readTree())
	if r.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", r.Dir(), dir)
	}
	tests := []struct {
		path, want string
		wantErr    error
	}{
		{path: "/", want: dir},
		{path: "/etc/motd", want: dir + "/etc/motd"},
		{path: "/abs", want: dir + "/etc/motd"},
		{path: "/up", want: dir + "/etc/motd"},
		{path: "/etcl2/motdl", want: dir + "/etc/motd"},
		{path: "/etcl", want: dir + "/etc"},
		{path: "/etcl/new", want: dir + "/etc/new"},    // missing final: parent + name
		{path: "/dangle", want: dir + "/etc/new"},      // dangling: where a write lands
		{path: "/dangle2", wantErr: fs.ErrNotExist},    // its parent is missing too
		{path: "/nodir/new", wantErr: fs.ErrNotExist},  // missing parent
		{path: "/loop", wantErr: unix.ELOOP},           //
		{path: "/loop/x", wantErr: unix.ELOOP},         //
		{path: "/etc/motd/x", wantErr: unix.ENOTDIR},   //
		{path: "/etcl/motdl/x", wantErr: unix.ENOTDIR}, //
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := r.Resolve(tt.path)
			check(t, err, tt.wantErr)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if err == nil && got != r.Dir() && !strings.HasPrefix(got, r.Dir()+"/") {
				t.Errorf("%q is not under %q", got, r.Dir())
			}
		})
	}
}

func TestOpenRoot(t *testing.T) {
	if _, err := Open("/"); err == nil {
		t.Error("Open(/) succeeded")
	}
	f := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(f, nil, 0o644))
	if _, err := Open(f); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("Open(file) = %v, want ENOTDIR", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want not exist", err)
	}
	// A symlinked root is followed, and Dir reports where it really is.
	real := t.TempDir()
	l := filepath.Join(t.TempDir(), "l")
	must(t, os.Symlink(real, l))
	r, err := Open(l)
	must(t, err)
	defer r.Close()
	if want, _ := filepath.EvalSymlinks(real); r.Dir() != want {
		t.Errorf("Dir() = %q, want %q", r.Dir(), want)
	}
}

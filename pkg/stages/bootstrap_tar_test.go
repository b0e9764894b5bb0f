package stages

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

func testTar(t *testing.T, extra ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1600000000, 0)
	entries := []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "./etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42, Size: 5, ModTime: mt},
		{Name: "./usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 5, ModTime: mt,
			PAXRecords: map[string]string{"SCHILY.xattr.user.test": "v"}},
		{Name: "./usr/bin/su2", Typeflag: tar.TypeLink, Linkname: "./usr/bin/su", ModTime: mt},
		{Name: "./etc/localtime", Typeflag: tar.TypeSymlink, Linkname: "/usr/share/zoneinfo/UTC", ModTime: mt},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mt},
		{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mt},
	}
	for _, h := range append(entries, extra...) {
		if h.Format == 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(strings.Repeat("x", int(h.Size))))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func compressed(t *testing.T, data []byte, how string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch how {
	case "none":
		return data
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func TestUntar(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (device nodes, owners)")
	}
	for _, how := range []string{"none", "gzip", "xz", "zstd"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			root, err := fsroot.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			r, err := decompress(bytes.NewReader(compressed(t, testTar(t), how)), how)
			if err != nil {
				t.Fatal(err)
			}
			if err := Untar(r, root); err != nil {
				t.Fatal(err)
			}
			check := func(p string, mode os.FileMode, gid uint32) {
				fi, err := os.Lstat(filepath.Join(dir, p))
				if err != nil {
					t.Errorf("%s: %v", p, err)
					return
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.Mode() != mode || st.Gid != gid || fi.ModTime().Unix() != 1600000000 {
					t.Errorf("%s: %v gid %d %v; want %v gid %d", p, fi.Mode(), st.Gid, fi.ModTime(), mode, gid)
				}
			}
			check("etc/shadow", 0o640, 42)
			check("usr/bin/su", 0o755|os.ModeSetuid, 0)
			check("dev/null", 0o666|os.ModeDevice|os.ModeCharDevice, 0)
			check("run/fifo", 0o600|os.ModeNamedPipe, 0)
			check("etc", 0o755|os.ModeDir, 0)
			a, _ := os.Stat(filepath.Join(dir, "usr/bin/su"))
			b, _ := os.Stat(filepath.Join(dir, "usr/bin/su2"))
			if !os.SameFile(a, b) {
				t.Error("hardlink not kept")
			}
			if l, _ := os.Readlink(filepath.Join(dir, "etc/localtime")); l != "/usr/share/zoneinfo/UTC" {
				t.Errorf("symlink: %q", l)
			}
			if x, err := exec.Command("getfattr", "--only-values", "-n", "user.test", filepath.Join(dir, "usr/bin/su")).Output(); err == nil && string(x) != "v" {
				t.Errorf("xattr: %q", x)
			}
		})
	}
}

// TestUntarHostile: entries climbing out with .. are refused; absolute
// symlinks followed by writes through them stay inside the root.
func TestUntarHostile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "keep"), []byte("host"), 0o644)
	for name, extra := range map[string][]*tar.Header{
		"dotdot": {{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5}},
		"through absolute symlink": {
			{Name: "./evil", Typeflag: tar.TypeSymlink, Linkname: host},
			{Name: "./evil/keep", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
		},
		"hardlink out": {{Name: "./link", Typeflag: tar.TypeLink, Linkname: "../../../" + host + "/keep"}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			root, _ := fsroot.Open(dir)
			defer root.Close()
			err := Untar(bytes.NewReader(testTar(t, extra...)), root)
			if b, _ := os.ReadFile(filepath.Join(host, "keep")); string(b) != "host" {
				t.Fatalf("the host file changed (err %v)", err)
			}
			if entries, _ := os.ReadDir(host); len(entries) != 1 {
				t.Fatalf("files appeared on the host: %v", entries)
			}
			if name != "through absolute symlink" && err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestUntarSparseRefused: GNU sparse entries (made by GNU tar --sparse, old
// GNU and PAX 1.0 formats; each file here is 10 KiB claiming a 1 GiB file)
// are refused with a clear error.
func TestUntarSparseRefused(t *testing.T) {
	for _, name := range []string{"testdata/sparse-gnu.tar", "testdata/sparse-pax.tar"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		root, err := fsroot.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		err = Untar(bytes.NewReader(b), root)
		root.Close()
		if err == nil || !strings.Contains(err.Error(), "sparse entries are not supported") {
			t.Errorf("%s: %v, want the sparse entry refused", name, err)
		}
	}
}

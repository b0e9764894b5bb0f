package stages

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

// FuzzUntar feeds arbitrary archives to Untar, the base-tarball reader:
// whatever the archive holds, nothing appears or changes outside the root
// (a sentinel directory beside it, with a symlink in the root pointing at
// it), and Untar returns (an error or not) rather than crash or hang. The
// seeds are well-formed and hostile archives; go test runs them, and
// `go test -fuzz FuzzUntar ./pkg/stages` explores from them.
func FuzzUntar(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root (Untar sets owners and creates device nodes)")
	}
	seed := func(entries ...*tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			if h.Format == 0 {
				h.Format = tar.FormatPAX
			}
			if err := tw.WriteHeader(h); err != nil {
				f.Fatal(err)
			}
			if h.Size > 512 {
				// A header claiming more than the archive holds: truncated.
				tw.Write([]byte(strings.Repeat("x", 512)))
				return buf.Bytes()
			}
			if h.Size > 0 {
				tw.Write([]byte(strings.Repeat("x", int(h.Size))))
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	f.Add(seed(
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4},
		&tar.Header{Name: "./bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 2, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}},
		&tar.Header{Name: "./bin/su2", Typeflag: tar.TypeLink, Linkname: "./bin/su"},
		&tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		&tar.Header{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o600},
	))
	f.Add(seed(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}))
	f.Add(seed(
		&tar.Header{Name: "host", Typeflag: tar.TypeSymlink, Linkname: "/SENTINEL"},
		&tar.Header{Name: "host/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
	))
	f.Add(seed(
		&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../.."},
		&tar.Header{Name: "up/sentinel/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
		&tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "up/sentinel/keep"},
	))
	f.Add(seed(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}))
	f.Add(seed(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Mode: 0o644, Size: 0,
		PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s", "GNU.sparse.realsize": "1099511627776"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if last := os.Getenv("IMGPLAN_FUZZ_LAST"); last != "" {
			os.WriteFile(last, data, 0o644) // the input being tried, for a hang
		}
		base := t.TempDir()
		sentinel := filepath.Join(base, "sentinel")
		if err := os.Mkdir(sentinel, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sentinel, "keep"), []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(base, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// A link to the sentinel from inside the root, as an absolute path
		// on the host: archives that reach for it must stay inside.
		data = bytes.ReplaceAll(data, []byte("/SENTINEL"), []byte(sentinel))
		if err := os.Symlink(sentinel, filepath.Join(dir, "hostlink")); err != nil {
			t.Fatal(err)
		}
		root, err := fsroot.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		_ = Untar(bytes.NewReader(data), root)

		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 {
			t.Fatalf("entries appeared beside the root: %v", entries)
		}
		var seen []string
		filepath.WalkDir(sentinel, func(p string, d fs.DirEntry, err error) error {
			seen = append(seen, p)
			return nil
		})
		if len(seen) != 2 {
			t.Fatalf("the sentinel directory changed: %v", seen)
		}
		if b, err := os.ReadFile(filepath.Join(sentinel, "keep")); err != nil || string(b) != "host" {
			t.Fatalf("the sentinel file changed: %q %v", b, err)
		}
		if fi, err := os.Stat(filepath.Join(sentinel, "keep")); err != nil || fi.Mode() != 0o644 {
			t.Fatalf("the sentinel file's mode changed: %v %v", fi, err)
		}
	})
}

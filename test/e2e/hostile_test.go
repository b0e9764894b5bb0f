package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileCase is one hostile input: a manifest (and the files it names)
// written into a copy of the tiny example, applied with the real binary.
// Every case must leave the host sentinel directory untouched, stay within
// memory, and end either with the stated exit status and message, or with
// a build whose result check passes.
type hostileCase struct {
	name     string
	setup    func(t *testing.T, dir, sentinel string) string // returns the manifest's YAML
	code     int                                             // expected exit status
	message  string                                          // expected in stderr (code != 0)
	checkOut func(t *testing.T, out, sentinel string)        // code == 0: the result is safe
}

const hostileHead = "apiVersion: imgplan/v1\nname: e2e-hostile\nbootstrap: {distro: directory, source: tiny-rootfs}\n"

const hostileOutputs = "outputs:\n  - {type: dir, path: rootfs}\n"

// TestHostileInputs applies hostile manifests, trees and base archives;
// none may write outside the image root or exhaust memory, and each gives
// a clear error or a safe result. It reports how many were tried.
func TestHostileInputs(t *testing.T) {
	cases := []hostileCase{
		{name: "dest climbing with ..", code: 2, message: "..",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "files:\n  - {dest: /etc/../../../" + s + "/pwned, content: x}\n" + hostileOutputs
			}},
		{name: "relative dest", code: 2, message: "absolute",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "files:\n  - {dest: etc/pwned, content: x}\n" + hostileOutputs
			}},
		{name: "NUL in dest", code: 2, message: "dest",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "files:\n  - {dest: \"/etc/a\\0b\", content: x}\n" + hostileOutputs
			}},
		{name: "dest is the root", code: 2, message: "dest",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "files:\n  - {dest: /, remove: true}\n" + hostileOutputs
			}},
		{name: "overlaid tree with an absolute symlink, then a file through it",
			setup: func(t *testing.T, dir, s string) string {
				mkdirs(t, filepath.Join(dir, "evil/etc"))
				symlink(t, s, filepath.Join(dir, "evil/etc/evil"))
				return hostileHead + "files:\n  - {tree: evil, dest: /}\n  - {dest: " + s + ", directory: true}\n  - {dest: /etc/evil/pwned, content: x}\n" + hostileOutputs
			},
			checkOut: func(t *testing.T, out, s string) {
				if got := readFile(t, filepath.Join(out, "rootfs", s), "pwned"); got != "x" {
					t.Errorf("the file through the symlink is not in the image's %s: %q", s, got)
				}
				if target, _ := os.Readlink(filepath.Join(out, "rootfs/etc/evil")); target != s {
					t.Errorf("the symlink was not kept verbatim: %q", target)
				}
			}},
		{name: "overlaid tree with a ../ symlink chain, then a file through it",
			setup: func(t *testing.T, dir, s string) string {
				mkdirs(t, filepath.Join(dir, "evil/etc"))
				symlink(t, strings.Repeat("../", 15)+strings.TrimPrefix(s, "/"), filepath.Join(dir, "evil/etc/up"))
				return hostileHead + "files:\n  - {tree: evil, dest: /}\n  - {dest: " + s + ", directory: true}\n  - {dest: /etc/up/pwned, content: x}\n" + hostileOutputs
			},
			checkOut: func(t *testing.T, out, s string) {
				if got := readFile(t, filepath.Join(out, "rootfs", s), "pwned"); got != "x" {
					t.Errorf("the file through the chain is not in the image's %s: %q", s, got)
				}
			}},
		{name: "file through an absolute symlink that dangles in the image", code: 1, message: "does not resolve",
			setup: func(t *testing.T, dir, s string) string {
				mkdirs(t, filepath.Join(dir, "evil/etc"))
				symlink(t, s, filepath.Join(dir, "evil/etc/evil"))
				return hostileHead + "files:\n  - {tree: evil, dest: /}\n  - {dest: /etc/evil/pwned, content: x}\n" + hostileOutputs
			}},
		{name: "device nodes in an overlaid tree", code: 2, message: "only regular files, directories and symlinks are copied from the host",
			setup: func(t *testing.T, dir, s string) string {
				mkdirs(t, filepath.Join(dir, "devs/dev"))
				mknod(t, filepath.Join(dir, "devs/dev/null2"), unix.S_IFCHR|0o666, 1, 3)
				mknod(t, filepath.Join(dir, "devs/dev/disk0"), unix.S_IFBLK|0o600, 8, 0)
				return hostileHead + "files:\n  - {tree: devs, dest: /}\n" + hostileOutputs
			},
		},
		{name: "image whose /etc is an absolute symlink to the host directory",
			setup: func(t *testing.T, dir, s string) string {
				rootfs := filepath.Join(dir, "tiny-rootfs")
				mkdirs(t, filepath.Dir(filepath.Join(rootfs, s)))
				if err := os.Rename(filepath.Join(rootfs, "etc"), filepath.Join(rootfs, s)); err != nil {
					t.Fatal(err)
				}
				symlink(t, s, filepath.Join(rootfs, "etc"))
				return hostileHead + "hostname: escaped\nfiles:\n  - {dest: /etc/pwned, content: x}\n" + hostileOutputs
			},
			checkOut: func(t *testing.T, out, s string) {
				if got := readFile(t, filepath.Join(out, "rootfs", s), "pwned"); got != "x" {
					t.Errorf("the file is not in the image's %s: %q", s, got)
				}
			}},
		{name: "base tarball with ../ entries", code: 1, message: "leaves the root",
			setup: func(t *testing.T, dir, s string) string {
				writeTar(t, filepath.Join(dir, "base.tar"),
					&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
					&tar.Header{Name: "../../../../../../" + strings.TrimPrefix(s, "/") + "/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
				return strings.Replace(hostileHead, "{distro: directory, source: tiny-rootfs}", "{distro: tarball, source: base.tar}", 1) + hostileOutputs
			}},
		{name: "base tarball with an absolute symlink and an entry through it",
			setup: func(t *testing.T, dir, s string) string {
				writeTar(t, filepath.Join(dir, "base.tar"),
					&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
					&tar.Header{Name: "./" + strings.TrimPrefix(s, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755},
					&tar.Header{Name: "./evil", Typeflag: tar.TypeSymlink, Linkname: s},
					&tar.Header{Name: "./evil/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
				return strings.Replace(hostileHead, "{distro: directory, source: tiny-rootfs}", "{distro: tarball, source: base.tar}", 1) + hostileOutputs
			},
			checkOut: func(t *testing.T, out, s string) {
				if got := readFile(t, filepath.Join(out, "rootfs", s), "pwned"); got != "x" {
					t.Errorf("the entry is not in the image's %s: %q", s, got)
				}
			}},
		{name: "base tarball with a hardlink to a host file", code: 1, message: "",
			setup: func(t *testing.T, dir, s string) string {
				writeTar(t, filepath.Join(dir, "base.tar"),
					&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
					&tar.Header{Name: "./keep", Typeflag: tar.TypeLink, Linkname: s + "/keep"})
				return strings.Replace(hostileHead, "{distro: directory, source: tiny-rootfs}", "{distro: tarball, source: base.tar}", 1) + hostileOutputs
			}},
		{name: "huge ext4 size", code: 2, message: "size",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "outputs:\n  - {type: ext4, path: root.img, size: 99999999999TiB}\n"
			}},
		{name: "negative ext4 size", code: 2, message: "size",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "outputs:\n  - {type: ext4, path: root.img, size: -1MiB}\n"
			}},
		{name: "huge partition", code: 2, message: "",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "layout:\n  table: gpt\n  size: 1GiB\n  partitions:\n    - {name: root, size: 18446744073709551615B, fs: ext4, mount: /}\n" +
					"outputs:\n  - {type: raw, path: disk.raw}\n"
			}},
		{name: "YAML bomb (nested list aliases)", code: 2, message: "",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + yamlBomb("[", "]", "x") + "files: *a9\n" + hostileOutputs
			}},
		{name: "YAML bomb (nested mapping aliases)", code: 2, message: "",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + yamlBomb("{", "}", "k") + "packages: *a9\n" + hostileOutputs
			}},
		{name: "deeply nested flow YAML", code: 2, message: "",
			setup: func(t *testing.T, dir, s string) string {
				return hostileHead + "files: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n" + hostileOutputs
			}},
		{name: "extends cycle", code: 2, message: "cycle",
			setup: func(t *testing.T, dir, s string) string {
				write(t, filepath.Join(dir, "other.yaml"), "apiVersion: imgplan/v1\nname: other\nextends: hostile.yaml\n")
				return hostileHead + "extends: other.yaml\n" + hostileOutputs
			}},
		{name: "src outside the manifest tree through ..", code: 0,
			setup: func(t *testing.T, dir, s string) string {
				// Reading a file the manifest names, like COPY in a build
				// context, is allowed; it is copied into the image only.
				return hostileHead + "files:\n  - {dest: /copied, src: ../" + filepath.Base(dir) + "/tiny-rootfs/etc/hosts}\n" + hostileOutputs
			},
			checkOut: func(t *testing.T, out, s string) {
				if readFile(t, filepath.Join(out, "rootfs"), "copied") == "" {
					t.Error("the file was not copied")
				}
			}},
	}

	// The host directory hostile inputs aim at: not under /tmp, which
	// builds see as their own tmpfs.
	sentinel, err := os.MkdirTemp("/opt", "imgplan-e2e-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sentinel) })
	write(t, filepath.Join(sentinel, "keep"), "host's own\n")
	before := snapshotDir(t, sentinel)

	passed := 0
	for _, c := range cases {
		ok := t.Run(c.name, func(t *testing.T) {
			dir := copyExample(t, "examples/tiny-rootfs")
			m := filepath.Join(dir, "hostile.yaml")
			write(t, m, c.setup(t, dir, sentinel))
			out := t.TempDir()
			cmd := exec.Command(bin, "apply", m, "--cache-dir", store, "--out", out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
			if rss > 256<<10 {
				t.Errorf("imgplan used %d MiB", rss>>10)
			}
			if after := snapshotDir(t, sentinel); after != before {
				t.Fatalf("the host directory changed:\nbefore %s\nafter  %s", before, after)
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr.String())
			}
			if code != 0 {
				if !strings.Contains(stderr.String(), c.message) {
					t.Errorf("stderr does not say %q:\n%s", c.message, stderr.String())
				}
				if code == 2 {
					if entries, _ := os.ReadDir(out); len(entries) != 0 {
						t.Errorf("bad input, yet the output directory has %d entries", len(entries))
					}
				}
				return
			}
			if c.checkOut != nil {
				c.checkOut(t, out, sentinel)
			}
		})
		if ok {
			passed++
		}
	}
	t.Logf("hostile inputs: %d tried, %d passed", len(cases), passed)
	fmt.Printf("hostile inputs: %d/%d passed\n", passed, len(cases))
}

// yamlBomb defines x-a0 … x-a9, each ten references to the one before: a9
// expands to ten billion leaves.
func yamlBomb(open, close, leaf string) string {
	var b strings.Builder
	item := func(i, j int, ref string) string {
		if open == "{" {
			return fmt.Sprintf("k%d: %s", j, ref)
		}
		return ref
	}
	var first []string
	for j := range 10 {
		first = append(first, item(0, j, leaf))
	}
	fmt.Fprintf(&b, "x-a0: &a0 %s%s%s\n", open, strings.Join(first, ", "), close)
	for i := 1; i < 10; i++ {
		var refs []string
		for j := range 10 {
			refs = append(refs, item(i, j, fmt.Sprintf("*a%d", i-1)))
		}
		fmt.Fprintf(&b, "x-a%d: &a%d %s%s%s\n", i, i, open, strings.Join(refs, ", "), close)
	}
	return b.String()
}

func mkdirs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mknod(t *testing.T, path string, mode uint32, major, minor uint32) {
	t.Helper()
	if err := unix.Mknod(path, mode, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
}

// writeTar writes the entries (regular files hold "x" repeated).
func writeTar(t *testing.T, path string, entries ...*tar.Header) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

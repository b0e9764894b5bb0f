package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const tinyOutputs = "outputs=[{type: tar, path: rootfs.tar}, {type: dir, path: rootfs}]"

// TestEscapeThroughImageSymlink: an image whose /etc is a symlink to a
// host directory (absolute) and whose /var is a ../../.. chain to it.
// Writes (files, fstab, hostname) resolve inside the image as a chroot
// would, landing in the image's own copy of that path; where the image
// has no such path the build fails with a clear error. Either way the
// host directory is untouched.
func TestEscapeThroughImageSymlink(t *testing.T) {
	// The host directory the image points at: not under /tmp, which
	// builds see as their own tmpfs.
	host, err := os.MkdirTemp("/opt", "imgplan-e2e-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(host) })
	write(t, filepath.Join(host, "motd"), "host's own\n")
	before := snapshotDir(t, host)

	dir := copyExample(t, "examples/tiny-rootfs", "examples/files")
	rootfs := filepath.Join(dir, "hostile-rootfs")
	if b, err := exec.Command("cp", "-a", filepath.Join(dir, "tiny-rootfs"), rootfs).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	// /etc -> <host> and /var -> ../../<host>; the image has its own <host>.
	if err := os.Rename(filepath.Join(rootfs, "etc"), filepath.Join(rootfs, host)); err != nil {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(rootfs, host)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(rootfs, "etc"), filepath.Join(rootfs, host)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(host, filepath.Join(rootfs, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 12)+strings.TrimPrefix(host, "/"), filepath.Join(rootfs, "var")); err != nil {
		t.Fatal(err)
	}
	manifest := `apiVersion: imgplan/v1
name: e2e-escape
bootstrap: {distro: directory, source: hostile-rootfs}
hostname: escaped
files:
  - {dest: /etc/motd, content: "image\n"}
  - {dest: /var/new/file, content: "image\n"}
  - {dest: /etc/passwd, remove: true}
  - {tree: files/tiny/overlay}
fstab:
  add: [{spec: tmpfs, file: /tmp, type: tmpfs}]
outputs:
  - {type: dir, path: rootfs}
`
	write(t, filepath.Join(dir, "escape.yaml"), manifest)
	out := t.TempDir()
	apply(t, filepath.Join(dir, "escape.yaml"), out)
	if after := snapshotDir(t, host); after != before {
		t.Fatalf("the host directory changed:\nbefore %s\nafter  %s", before, after)
	}
	inImage := filepath.Join(out, "rootfs", host)
	for name, want := range map[string]string{"motd": "image\n", "hostname": "escaped\n", "new/file": "image\n"} {
		if got := readFile(t, inImage, name); got != want {
			t.Errorf("image %s/%s: %q, want %q", host, name, got, want)
		}
	}
	if !strings.Contains(readFile(t, inImage, "fstab"), "tmpfs\t/tmp") {
		t.Error("fstab edit not in the image")
	}
	if _, err := os.Lstat(filepath.Join(inImage, "passwd")); !os.IsNotExist(err) {
		t.Error("/etc/passwd not removed in the image")
	}

	// Without the image's own copy, /etc dangles: a clear error.
	if err := os.RemoveAll(filepath.Join(rootfs, strings.Split(strings.TrimPrefix(host, "/"), "/")[0])); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "escape.yaml"), strings.Replace(manifest, "hostname: escaped\n", "", 1))
	r := imgplan(t, t.TempDir(), "apply", filepath.Join(dir, "escape.yaml"))
	if r.code == 0 || !strings.Contains(r.err, `/etc is a symlink to "`+host+`", which does not resolve to a directory in the image`) {
		t.Errorf("dangling /etc: exit %d, stderr:\n%s", r.code, r.err)
	}
	if after := snapshotDir(t, host); after != before {
		t.Fatalf("the host directory changed:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshotDir summarises a directory: names, modes and content hashes.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		h := ""
		if fi.Mode().IsRegular() {
			f, _ := os.Open(p)
			s := sha256.New()
			io.Copy(s, f)
			f.Close()
			h = hex.EncodeToString(s.Sum(nil))[:12]
		}
		lines = append(lines, p+" "+fi.Mode().String()+" "+h)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

// TestCopySnapshotter: the copying fallback gives the same tree and the
// same bytes as overlayfs (and the report says which was used).
func TestCopySnapshotter(t *testing.T) {
	m := filepath.Join(repo, "examples/tiny.yaml")
	dir := copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	m = filepath.Join(dir, "tiny.yaml")
	stores := []string{t.TempDir(), t.TempDir()}
	outs := []string{t.TempDir(), t.TempDir()}
	for i, snap := range []string{"overlay", "copy"} {
		r := imgplanStore(t, stores[i], "apply", m, "--set", tinyOutputs, "--snapshotter", snap, "--out", outs[i])
		if r.code != 0 {
			t.Fatalf("%s: %s", snap, r.err)
		}
		if r.report.Snapshotter != snap {
			t.Errorf("report says %s, want %s", r.report.Snapshotter, snap)
		}
	}
	a, b := sha(t, filepath.Join(outs[0], "rootfs.tar")), sha(t, filepath.Join(outs[1], "rootfs.tar"))
	if a != b {
		t.Errorf("tar from overlay %s, from copy %s", a, b)
	}
	diff, _ := exec.Command("diff", "-r", "--no-dereference", filepath.Join(outs[0], "rootfs"), filepath.Join(outs[1], "rootfs")).CombinedOutput()
	if len(diff) > 0 {
		t.Errorf("dir outputs differ:\n%s", diff)
	}
}

// TestTarballBootstrap builds tiny from a tarball of its tree, with the
// same result as from the directory.
func TestTarballBootstrap(t *testing.T) {
	dir := copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	tarball := filepath.Join(dir, "tiny-rootfs.tar.gz")
	tar := exec.Command("tar", "--numeric-owner", "--owner=0", "--group=0", "-czf", tarball, "-C", filepath.Join(dir, "tiny-rootfs"), ".")
	if b, err := tar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	outs := []string{t.TempDir(), t.TempDir()}
	apply(t, filepath.Join(dir, "tiny.yaml"), outs[0], "--set", tinyOutputs)
	apply(t, filepath.Join(dir, "tiny.yaml"), outs[1], "--set", tinyOutputs,
		"--set", "bootstrap={distro: tarball, source: tiny-rootfs.tar.gz}")
	diff, _ := exec.Command("diff", "-r", "--no-dereference", filepath.Join(outs[0], "rootfs"), filepath.Join(outs[1], "rootfs")).CombinedOutput()
	if len(diff) > 0 {
		t.Errorf("tarball and directory bootstraps differ:\n%s", diff)
	}
}

func sha(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// TestJSONProgress: --log-format json writes one JSON object per event,
// with the node, its key and its status.
func TestJSONProgress(t *testing.T) {
	dir := copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	r := imgplan(t, t.TempDir(), "apply", filepath.Join(dir, "tiny.yaml"), "--set", tinyOutputs, "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	seen := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.err), "\n") {
		var ev struct{ Node, Key, Status string }
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		if ev.Node == "" || !strings.HasPrefix(ev.Key, "sha256:") {
			t.Errorf("event without node or key: %q", line)
		}
		seen[ev.Node] = ev.Status
	}
	for _, n := range r.report.Nodes {
		if seen[n.ID] != n.Status {
			t.Errorf("node %s: last event %q, report %q", n.ID, seen[n.ID], n.Status)
		}
	}
}

package ext4fs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	// fakeTime is mkfs's "now" (E2FSPROGS_FAKE_TIME): the superblock
	// times, every crtime, and all times of the root and lost+found.
	fakeTime = 1700000000
	// testEpoch is before fakeTime, so those are clamped.
	testEpoch = 1600000000
	testUUID  = "6c5d6f2a-1b0e-4c1f-9d61-3a7b2e8f4c10"
)

func needE2fsprogs(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs e2fsprogs (%s): %v", tool, err)
		}
	}
}

// node is one entry of a test tree. Kinds: d directory, f file, l
// symlink to target, h hard link to target, c character device (root
// only), p fifo. mtime 0 leaves the creation time, which is after every
// epoch used here.
type node struct {
	path   string
	kind   byte
	target string
	mtime  int64
}

func testTree() []node {
	nodes := []node{
		{path: "etc", kind: 'd', mtime: 900},
		{path: "etc/old", kind: 'f', mtime: 1000},
		{path: "etc/new", kind: 'f', mtime: 1650000000},
		{path: "etc/edge", kind: 'f', mtime: testEpoch},
		{path: "etc/eq", kind: 'f', mtime: testEpoch},
		{path: "etc/now", kind: 'f'},
		{path: "bin", kind: 'd'},
		{path: "bin/sh", kind: 'f', mtime: 1200},
		{path: "bin/short", kind: 'l', target: "sh"},
		{path: "bin/long", kind: 'l', target: strings.Repeat("long/", 60) + "sh", mtime: 1500},
		{path: "a", kind: 'd'},
		{path: "a/hl1", kind: 'f', mtime: 2000},
		{path: "b", kind: 'd', mtime: 2500},
		{path: "b/hl2", kind: 'h', target: "a/hl1"},
		{path: "dev", kind: 'd'},
		{path: "dev/null", kind: 'c', mtime: 3000},
		{path: "dev/fifo", kind: 'p'},
		{path: "empty", kind: 'd', mtime: 4000},
		{path: "many", kind: 'd'},
	}
	for i := range 120 {
		nodes = append(nodes, node{path: fmt.Sprintf("many/file%03d", i), kind: 'f', mtime: int64(100000 + i)})
	}
	return nodes
}

// makeTree creates nodes under dir, then sets mtimes, directories last so
// creating their entries does not move them.
func makeTree(t testing.TB, dir string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(dir, n.path)
		var err error
		switch n.kind {
		case 'd':
			err = os.Mkdir(p, 0o755)
		case 'f':
			err = os.WriteFile(p, []byte("content of "+n.path+"\n"), 0o644)
		case 'l':
			err = os.Symlink(n.target, p)
		case 'h':
			err = os.Link(filepath.Join(dir, n.target), p)
		case 'c':
			if os.Geteuid() != 0 {
				continue
			}
			err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		case 'p':
			err = unix.Mkfifo(p, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, dirs := range []bool{false, true} {
		for i := len(nodes) - 1; i >= 0; i-- {
			n := nodes[i]
			if n.mtime == 0 || (n.kind == 'd') != dirs {
				continue
			}
			p := filepath.Join(dir, n.path)
			if _, err := os.Lstat(p); err != nil {
				continue // a device node when not root
			}
			ts := []unix.Timespec{{Sec: n.mtime}, {Sec: n.mtime}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// mkfs builds an image the way imgplan does: fixed time, UUID and hash
// seed. Blocks are 4 KiB unless opts say otherwise: mke2fs.conf would
// make these small test images 1 KiB ones.
func mkfs(t testing.TB, tree, img, size string, opts ...string) {
	t.Helper()
	args := []string{"-q", "-F", "-d", tree, "-U", testUUID,
		"-E", "hash_seed=" + testUUID + ",root_owner=0:0"}
	if !slices.Contains(opts, "-b") {
		args = append(args, "-b", "4096")
	}
	args = append(append(args, opts...), img, size)
	cmd := exec.Command("mkfs.ext4", args...)
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.Itoa(fakeTime), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fsck fails the test unless e2fsck -fn finds nothing to fix.
func fsck(t testing.TB, img string) {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
}

// debugfs runs commands in one debugfs and returns each one's output.
func debugfs(t testing.TB, img string, write bool, cmds ...string) []string {
	t.Helper()
	args := []string{"-f", "-"}
	if write {
		args = append(args, "-w")
	}
	cmd := exec.Command("debugfs", append(args, img)...)
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs: %v\n%s", err, stderr.Bytes())
	}
	// debugfs echoes each command as "debugfs: CMD".
	parts := strings.Split(string(out), "debugfs: ")[1:]
	if len(parts) != len(cmds) {
		t.Fatalf("debugfs: %d outputs for %d commands:\n%s", len(parts), len(cmds), out)
	}
	for i, p := range parts {
		if !strings.HasPrefix(p, cmds[i]) {
			t.Fatalf("debugfs: output %d is for %q, not %q", i, p, cmds[i])
		}
	}
	// Failed commands say so on stderr, after the version banner.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			t.Fatalf("debugfs: %s", stderr.Bytes())
		}
	}
	return parts
}

// rawTime is a time field as debugfs shows it: the seconds field and,
// for large inodes, the extra field.
type rawTime struct {
	lo, extra uint32
	hasExtra  bool
}

func (r rawTime) String() string {
	if !r.hasExtra {
		return fmt.Sprintf("%#08x", r.lo)
	}
	return fmt.Sprintf("%#08x:%08x", r.lo, r.extra)
}

// inodeStat is what the tests check of debugfs's "stat".
type inodeStat struct {
	ino   uint32
	flags uint32
	times map[string]rawTime // atime, ctime, mtime, crtime
}

var (
	statInodeRE = regexp.MustCompile(`Inode: (\d+)\s.*Flags: 0x([0-9a-f]+)`)
	statTimeRE  = regexp.MustCompile(`(?m)^\s*(a|c|m|cr)time: 0x([0-9a-f]{8})(?::([0-9a-f]{8}))?`)
)

// stat returns debugfs's view of each inode spec ("/path" or "<ino>").
func stat(t testing.TB, img string, specs ...string) []inodeStat {
	t.Helper()
	cmds := make([]string, len(specs))
	for i, s := range specs {
		cmds[i] = "stat " + s
	}
	var stats []inodeStat
	for i, out := range debugfs(t, img, false, cmds...) {
		m := statInodeRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("debugfs stat %s: no inode in\n%s", specs[i], out)
		}
		ino, _ := strconv.ParseUint(m[1], 10, 32)
		flags, _ := strconv.ParseUint(m[2], 16, 32)
		s := inodeStat{ino: uint32(ino), flags: uint32(flags), times: map[string]rawTime{}}
		for _, tm := range statTimeRE.FindAllStringSubmatch(out, -1) {
			lo, _ := strconv.ParseUint(tm[2], 16, 32)
			r := rawTime{lo: uint32(lo)}
			if tm[3] != "" {
				x, _ := strconv.ParseUint(tm[3], 16, 32)
				r.extra, r.hasExtra = uint32(x), true
			}
			s.times[tm[1]+"time"] = r
		}
		if len(s.times) < 3 {
			t.Fatalf("debugfs stat %s: times missing in\n%s", specs[i], out)
		}
		stats = append(stats, s)
	}
	return stats
}

// want is an expected time in the tests' own encoding (the kernel's, from
// Documentation/filesystems/ext4), not the package's.
func want(sec int64, nsec uint32) rawTime {
	var epochBits uint32
	if sec >= 1<<31 {
		epochBits = uint32((sec + 1<<31) >> 32)
	}
	return rawTime{lo: uint32(sec), extra: epochBits | nsec<<2, hasExtra: true}
}

func sha(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

package ext4fs

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestClampTimesEAInode checks that inodes holding extended attribute
// values are left alone: their atime is the value's hash, their ctime
// part of a reference count, their mtime maybe a parent inode number.
func TestClampTimesEAInode(t *testing.T) {
	needE2fsprogs(t)
	tree := t.TempDir()
	makeTree(t, tree, []node{{path: "f", kind: 'f', mtime: 1000}})
	value := bytes.Repeat([]byte("xattr value "), 250) // 3000 bytes: more than a 1 KiB block
	if err := unix.Setxattr(filepath.Join(tree, "f"), "user.big", value, 0); err != nil {
		t.Skipf("needs user xattrs of 3000 bytes in %s: %v", tree, err)
	}
	img := filepath.Join(t.TempDir(), "img")
	mkfs(t, tree, img, "8M", "-b", "1024", "-O", "ea_inode")
	// mkfs.ext4 1.47.0 gets the file's i_blocks wrong with an EA inode;
	// have e2fsck fix that first (exit status 1: fixed).
	if out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("e2fsck -fy: %v\n%s", err, out)
		}
	}
	fsck(t, img)

	specs := []string{"<12>", "<13>", "<14>", "<15>"}
	before := map[uint32]inodeStat{}
	for _, s := range stat(t, img, specs...) {
		if s.flags&eaInodeFlag != 0 {
			before[s.ino] = s
		}
	}
	if len(before) != 1 {
		t.Fatalf("%d EA inodes among %v, want 1", len(before), specs)
	}

	if err := ClampTimes(img, testEpoch); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	for _, s := range stat(t, img, specs...) {
		if b, ok := before[s.ino]; ok {
			for name, r := range b.times {
				if s.times[name] != r {
					t.Errorf("EA inode %d: %s %v, was %v", s.ino, name, s.times[name], r)
				}
			}
		}
	}
	checkTimes(t, "/f", stat(t, img, "/f")[0], want(1000, 0), true)
	out := debugfs(t, img, false, "ea_get /f user.big")[0]
	if !strings.Contains(out, string(value[:100])) {
		t.Errorf("ea_get /f user.big:\n%s", out)
	}
}

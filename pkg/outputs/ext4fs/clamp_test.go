package ext4fs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Nanoseconds set with debugfs before clamping: mkfs.ext4 1.47.0 -d
// copies only whole seconds.
const (
	oldNsec  = 123456789
	newNsec  = 987654321
	edgeNsec = 5
)

func TestClampTimes(t *testing.T) {
	needE2fsprogs(t)
	tests := []struct {
		name string
		size string
		opts []string
		tune []string // tune2fs arguments applied after mkfs
		grow string   // a size for resize2fs after mkfs
	}{
		{name: "default", size: "16M"},
		{name: "no metadata_csum, 32-bit", size: "16M", opts: []string{"-O", "^metadata_csum,^64bit"}},
		{name: "128-byte inodes", size: "16M", opts: []string{"-I", "128"}},
		{name: "1 KiB inodes", size: "16M", opts: []string{"-I", "1024"}},
		{name: "uninit_bg", size: "16M", opts: []string{"-O", "^metadata_csum,uninit_bg"}},
		{name: "uninit_bg, 32-bit", size: "16M", opts: []string{"-O", "^metadata_csum,^64bit,uninit_bg"}},
		// 16 MiB groups, flex groups of 4, 32 inodes a group: the tree
		// spans several groups and two flex groups.
		{name: "many groups", size: "128M", opts: []string{"-g", "4096", "-G", "4", "-N", "256"}},
		{name: "1 KiB blocks", size: "16M", opts: []string{"-b", "1024"}},
		// 1 MiB groups, 16 descriptors a block: four meta groups.
		{name: "meta_bg", size: "64M", opts: []string{"-b", "1024", "-g", "1024", "-N", "1024", "-O", "meta_bg,^resize_inode"}},
		{name: "bigalloc, meta_bg, 1 KiB blocks", size: "64M", opts: []string{"-b", "1024", "-C", "16384", "-O", "bigalloc,meta_bg,^resize_inode"}},
		{name: "sparse_super2", size: "64M", opts: []string{"-g", "1024", "-N", "2048", "-O", "sparse_super2"}},
		{name: "inline_data", size: "16M", opts: []string{"-O", "inline_data"}},
		{name: "orphan_file", size: "16M", opts: []string{"-O", "orphan_file"}},
		{name: "metadata_csum_seed, new UUID", size: "16M", opts: []string{"-O", "metadata_csum_seed"},
			tune: []string{"-U", "0b5e1f7c-9a3d-4e2b-8c6f-1d2e3f4a5b6c"}},
		// Growing moves inode tables to make room for descriptors.
		{name: "grown by resize2fs", size: "4M", opts: []string{"-b", "1024", "-g", "256", "-N", "512", "-E", "resize=5000"}, grow: "64M"},
		{name: "ext2", size: "16M", opts: []string{"-t", "ext2"}},
		{name: "ext3", size: "16M", opts: []string{"-t", "ext3"}},
	}
	nodes := testTree()
	tree := t.TempDir()
	makeTree(t, tree, nodes)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "img")
			mkfs(t, tree, img, tt.size, tt.opts...)
			if tt.tune != nil {
				if out, err := exec.Command("tune2fs", append(tt.tune, img)...).CombinedOutput(); err != nil {
					t.Fatalf("tune2fs: %v\n%s", err, out)
				}
			}
			if tt.grow != "" {
				if out, err := exec.Command("resize2fs", "-f", img, tt.grow).CombinedOutput(); err != nil {
					t.Fatalf("resize2fs: %v\n%s", err, out)
				}
			}
			sb, err := ReadSuperblock(img)
			if err != nil {
				t.Fatal(err)
			}
			large := sb.InodeSize > 128
			if large {
				debugfs(t, img, true,
					fmt.Sprintf("sif /etc/old mtime_extra %#x", oldNsec<<2),
					fmt.Sprintf("sif /etc/new mtime_extra %#x", newNsec<<2),
					fmt.Sprintf("sif /etc/edge mtime_extra %#x", edgeNsec<<2))
			}
			fsck(t, img)

			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := ClampTimes(img, testEpoch); err != nil {
				t.Fatal(err)
			}
			fsck(t, img)
			checkOnlyTimesChanged(t, img, sb, before)

			expect := []timeWant{
				{"<1>", testEpoch, 0}, // bad blocks inode, reserved
				{"/", testEpoch, 0},
				{"/lost+found", testEpoch, 0},
				{"/etc", 900, 0},
				{"/etc/old", 1000, oldNsec},
				{"/etc/new", testEpoch, 0},
				{"/etc/edge", testEpoch, 0},
				{"/etc/eq", testEpoch, 0},
				{"/etc/now", testEpoch, 0},
				{"/bin/short", testEpoch, 0},
				{"/bin/long", 1500, 0},
				{"/a/hl1", 2000, 0},
				{"/b/hl2", 2000, 0},
				{"/b", 2500, 0},
				{"/dev/fifo", testEpoch, 0},
				{"/empty", 4000, 0},
				{"/many", testEpoch, 0},
				{"/many/file119", 100119, 0},
			}
			if os.Geteuid() == 0 {
				expect = append(expect, timeWant{"/dev/null", 3000, 0})
			}
			if sb.FeatureCompat&0x4 != 0 { // has_journal
				expect = append(expect, timeWant{"<8>", testEpoch, 0})
			}
			specs := make([]string, len(expect))
			for i, e := range expect {
				specs[i] = e.spec
			}
			for i, s := range stat(t, img, specs...) {
				e := expect[i]
				nsec := e.nsec
				if !large {
					nsec = 0
				}
				checkTimes(t, e.spec, s, want(e.sec, nsec), large && s.ino != 1)
			}
			checkAllInodes(t, img, sb, len(nodes), testEpoch)
		})
	}
}

// timeWant is the expected time of all of an inode's time fields.
type timeWant struct {
	spec string // for debugfs: a path or <inode>
	sec  int64
	nsec uint32
}

// checkTimes checks that all of an inode's times are w. Small inodes, and
// the reserved ones mkfs writes as small, have no extra fields and no
// crtime.
func checkTimes(t *testing.T, spec string, s inodeStat, w rawTime, extra bool) {
	t.Helper()
	if !extra {
		w = rawTime{lo: w.lo}
	}
	names := []string{"atime", "ctime", "mtime"}
	if extra {
		names = append(names, "crtime")
	}
	if _, ok := s.times["crtime"]; ok != extra {
		t.Errorf("%s: crtime shown: %v, want %v", spec, ok, extra)
	}
	for _, name := range names {
		if got := s.times[name]; got != w {
			t.Errorf("%s (inode %d): %s = %v, want %v", spec, s.ino, name, got, w)
		}
	}
}

// checkOnlyTimesChanged checks that the bytes that differ from before
// are all in inode tables, in time or checksum fields.
func checkOnlyTimesChanged(t *testing.T, img string, sb *Superblock, before []byte) {
	t.Helper()
	after, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("size %d, was %d", len(after), len(before))
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	descs, err := readGroupDescs(f, sb)
	if err != nil {
		t.Fatal(err)
	}
	tableSize := int64(sb.InodesPerGroup) * int64(sb.InodeSize)
	// Superblock copies: their time fields and checksum may change too.
	var supers []int64
	for g := range uint64(len(descs)) {
		if sb.hasSuper(g) {
			off := int64(superblockOffset)
			if g > 0 {
				off = int64(g*uint64(sb.BlocksPerGroup)+uint64(sb.FirstDataBlock)) * sb.BlockSize
			}
			supers = append(supers, off)
		}
	}
	allowed := func(off int64) bool {
		for _, s := range supers {
			if off < s || off >= s+superblockSize {
				continue
			}
			in := int(off - s)
			if in >= 0x3FC {
				return true // s_checksum
			}
			for _, f := range superblockTimes {
				if in >= f.lo && in < f.lo+4 || in == f.hi {
					return true
				}
			}
		}
		for _, d := range descs {
			start := int64(d.inodeTable) * sb.BlockSize
			if off < start || off >= start+tableSize {
				continue
			}
			switch in := (off - start) % int64(sb.InodeSize); {
			case in >= iAtime && in < iMtime+4, // atime, ctime, mtime
				in >= iChecksumLo && in < iChecksumLo+2,
				in >= iChecksumHi && in < iCrtimeExtra+4: // checksum_hi to crtime_extra
				return true
			}
		}
		return false
	}
	var changed, bad int
	const chunk = 4096
	for start := 0; start < len(before); start += chunk {
		end := min(start+chunk, len(before))
		if bytes.Equal(before[start:end], after[start:end]) {
			continue
		}
		for off := start; off < end; off++ {
			if before[off] == after[off] {
				continue
			}
			changed++
			if !allowed(int64(off)) && bad < 10 {
				bad++
				t.Errorf("byte %#x changed outside the time and checksum fields", off)
			}
		}
	}
	if changed == 0 {
		t.Error("nothing changed")
	}
}

// checkAllInodes checks every inode that the tree can have used: all its
// times equal, and not after the epoch.
func checkAllInodes(t *testing.T, img string, sb *Superblock, nodes int, epoch int64) {
	t.Helper()
	last := min(sb.FirstIno+uint32(nodes)+16, sb.InodesCount)
	var specs []string
	for ino := uint32(1); ino <= last; ino++ {
		specs = append(specs, fmt.Sprintf("<%d>", ino))
	}
	for _, s := range stat(t, img, specs...) {
		if s.flags&eaInodeFlag != 0 {
			continue
		}
		m := s.times["mtime"]
		for name, r := range s.times {
			if r != m {
				t.Errorf("inode %d: %s %v, mtime %v", s.ino, name, r, m)
			}
		}
		sec := int64(int32(m.lo)) + int64(m.extra&3)<<32
		if sec > epoch {
			t.Errorf("inode %d: mtime %v after the epoch", s.ino, m)
		}
	}
}

// TestClampTimesPast2038 checks times that need the extra epoch bits,
// set raw with debugfs because mkfs.ext4 1.47.0 -d drops them.
func TestClampTimesPast2038(t *testing.T) {
	needE2fsprogs(t)
	tree := t.TempDir()
	makeTree(t, tree, testTree())
	img := filepath.Join(t.TempDir(), "img")
	mkfs(t, tree, img, "16M")
	debugfs(t, img, true,
		"sif /etc/old mtime 0x9502f900", "sif /etc/old mtime_extra 0x135", // 2049, 77 ns
		"sif /etc/new mtime 0x5", "sif /etc/new mtime_extra 0x1", // 2106
		"sif /etc/edge mtime 0xffffffff", "sif /etc/edge mtime_extra 0x0", // 1969
	)
	fsck(t, img)
	const epoch = 3000000000 // 2065
	if err := ClampTimes(img, epoch); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
	expect := map[string]rawTime{
		"/etc/old":  {lo: 0x9502f900, extra: 0x135, hasExtra: true},
		"/etc/new":  {lo: 0xb2d05e00, extra: 0x1, hasExtra: true},
		"/etc/edge": {lo: 0xffffffff, extra: 0, hasExtra: true},
		"/etc/eq":   want(testEpoch, 0),
		"/":         want(fakeTime, 0),
	}
	for spec, w := range expect {
		checkTimes(t, spec, stat(t, img, spec)[0], w, true)
	}
}

// TestClampTimesReproducible builds the same tree at different times and
// from a copy: the source ctimes and atimes differ, and inode numbers in
// the copy, yet the clamped images are identical.
func TestClampTimesReproducible(t *testing.T) {
	needE2fsprogs(t)
	for _, opts := range [][]string{nil, {"-O", "^metadata_csum,^64bit"}, {"-I", "128"}} {
		t.Run(fmt.Sprint(opts), func(t *testing.T) {
			nodes := testTree()
			tree := t.TempDir()
			makeTree(t, tree, nodes)
			dir := t.TempDir()
			imgs := []string{filepath.Join(dir, "1"), filepath.Join(dir, "2"), filepath.Join(dir, "3")}
			mkfs(t, tree, imgs[0], "16M", opts...)

			// A second later, change every ctime.
			sleepPastSecond(t)
			for _, n := range nodes {
				p := filepath.Join(tree, n.path)
				if fi, err := os.Lstat(p); err == nil && fi.Mode().Type() != os.ModeSymlink {
					if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
						t.Fatal(err)
					}
				}
			}
			mkfs(t, tree, imgs[1], "16M", opts...)

			copyTree := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", tree, copyTree).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v\n%s", err, out)
			}
			mkfs(t, copyTree, imgs[2], "16M", opts...)

			if sha(t, imgs[0]) == sha(t, imgs[1]) {
				t.Fatal("images equal before clamping: the test tests nothing")
			}
			for _, img := range imgs {
				if err := ClampTimes(img, testEpoch); err != nil {
					t.Fatal(err)
				}
			}
			want := sha(t, imgs[0])
			for _, img := range imgs[1:] {
				if got := sha(t, img); got != want {
					t.Errorf("%s: sha256 %s, first image %s", filepath.Base(img), got, want)
				}
			}
			// Clamping is idempotent.
			if err := ClampTimes(imgs[0], testEpoch); err != nil {
				t.Fatal(err)
			}
			if got := sha(t, imgs[0]); got != want {
				t.Errorf("second clamp changed the image")
			}
		})
	}
}

// sleepPastSecond waits until the wall clock's second changes: mkfs
// copies times in whole seconds.
func sleepPastSecond(t *testing.T) {
	t.Helper()
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}

// TestClampTimesSuperblocks: without E2FSPROGS_FAKE_TIME (as mke2fs
// behaves when it is 0, a valid epoch), the superblock and every backup
// carry the build time; ClampTimes clamps them all, keeps e2fsck clean,
// and two builds a second apart give the same bytes.
func TestClampTimesSuperblocks(t *testing.T) {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sums []string
	for i := range 2 {
		img := filepath.Join(t.TempDir(), "img")
		cmd := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, "-U", testUUID,
			"-E", "hash_seed="+testUUID+",root_owner=0:0", img, "300M") // several backups
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkfs: %v\n%s", err, out)
		}
		if err := ClampTimes(img, 1000); err != nil {
			t.Fatal(err)
		}
		fsck(t, img)
		out, err := exec.Command("dumpe2fs", "-h", img).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"Filesystem created:", "Last write time:", "Last checked:"} {
			if !regexpMatch(`(?m)^`+field+` +Thu Jan  1 00:16:40 1970$`, string(out)) {
				t.Errorf("%s not clamped:\n%s", field, out)
			}
		}
		// The backup superblocks too: open the filesystem through one.
		if out, err := exec.Command("dumpe2fs", "-o", "superblock=32768", "-o", "blocksize=4096", "-h", img).Output(); err != nil || !regexpMatch(`(?m)^Filesystem created: +Thu Jan  1 00:16:40 1970$`, string(out)) {
			t.Errorf("the backup superblock at 32768 was not clamped (%v)", err)
		}
		sums = append(sums, fileSum(t, img))
		if i == 0 {
			time.Sleep(1100 * time.Millisecond)
		}
	}
	if sums[0] != sums[1] {
		t.Error("two builds a second apart differ")
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

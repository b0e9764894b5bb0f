package ext4fs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestTimeEncoding(t *testing.T) {
	tests := []struct {
		sec       int64
		nsec      uint32
		lo, extra uint32
	}{
		{0, 0, 0, 0},
		{1000, 5, 1000, 5 << 2},
		{-1, 0, 0xffffffff, 0},
		{-1 << 31, 0, 0x80000000, 0},
		{1<<31 - 1, 999999999, 0x7fffffff, 999999999 << 2},
		{1 << 31, 0, 0x80000000, 1},
		{3000000000, 0, 0xb2d05e00, 1},
		{1<<32 + 5, 0, 5, 1},
		{3<<32 + 1<<31 - 1, 0, 0x7fffffff, 3}, // the last representable second, in 2446
	}
	for _, tt := range tests {
		lo, extra := encodeTime(tt.sec, tt.nsec)
		if lo != tt.lo || extra != tt.extra {
			t.Errorf("encodeTime(%d, %d) = %#x, %#x; want %#x, %#x", tt.sec, tt.nsec, lo, extra, tt.lo, tt.extra)
		}
		sec, nsec := decodeTime(tt.lo, tt.extra)
		if sec != tt.sec || nsec != tt.nsec {
			t.Errorf("decodeTime(%#x, %#x) = %d, %d; want %d, %d", tt.lo, tt.extra, sec, nsec, tt.sec, tt.nsec)
		}
	}
}

func TestChecksums(t *testing.T) {
	// The standard check values, adjusted for no final inversion
	// (CRC-32C) and for CRC-16/MODBUS (init 0xFFFF, no inversion).
	if got, want := crc32c(^uint32(0), []byte("123456789")), ^uint32(0xE3069283); got != want {
		t.Errorf("crc32c = %#08x, want %#08x", got, want)
	}
	if got, want := crc16(0xFFFF, []byte("123456789")), uint16(0x4B37); got != want {
		t.Errorf("crc16 = %#04x, want %#04x", got, want)
	}
}

func TestHasSuper(t *testing.T) {
	sb := &Superblock{FeatureROCompat: roCompatSparseSuper}
	var got []uint64
	for g := range uint64(400) {
		if sb.hasSuper(g) {
			got = append(got, g)
		}
	}
	if want := "[0 1 3 5 7 9 25 27 49 81 125 243 343]"; fmt.Sprint(got) != want {
		t.Errorf("sparse_super backups %v, want %s", got, want)
	}
	sb = &Superblock{FeatureCompat: compatSparseSuper2, backupBGs: [2]uint32{1, 17}}
	if !sb.hasSuper(0) || !sb.hasSuper(1) || !sb.hasSuper(17) || sb.hasSuper(3) {
		t.Error("sparse_super2 backups wrong")
	}
}

func TestBitSpan(t *testing.T) {
	tests := []struct {
		bm          []byte
		first, last int
		ok          bool
	}{
		{[]byte{0, 0}, -1, -1, false},
		{[]byte{0x01, 0}, 0, 0, true},
		{[]byte{0xff, 0x07, 0, 0}, 0, 10, true},
		{[]byte{0, 0x10, 0, 0x80}, 12, 31, true},
	}
	for _, tt := range tests {
		first, last, ok := bitSpan(tt.bm)
		if first != tt.first || last != tt.last || ok != tt.ok {
			t.Errorf("bitSpan(%x) = %d, %d, %v; want %d, %d, %v", tt.bm, first, last, ok, tt.first, tt.last, tt.ok)
		}
	}
}

// TestDescBlock checks where descriptors are with meta_bg from a
// group other than 0, which mkfs does not make: resize2fs once did.
func TestDescBlock(t *testing.T) {
	sb := &Superblock{
		BlockSize: 1024, FirstDataBlock: 1, BlocksPerGroup: 256, DescSize: 64,
		FeatureIncompat: incompatMetaBG, FeatureROCompat: roCompatSparseSuper, firstMetaBG: 2,
	}
	// 16 descriptors a block: blocks 0 and 1 follow the superblock; from
	// block 2 on, block i is at the start of group 16*i, which never has
	// a sparse superblock backup.
	for i, want := range map[uint64]uint64{0: 2, 1: 3, 2: 1 + 32*256, 3: 1 + 48*256, 4: 1 + 64*256} {
		if got := sb.descBlock(i); got != want {
			t.Errorf("descBlock(%d) = %d, want %d", i, got, want)
		}
	}
	// Without sparse_super every group has a backup to skip.
	sb.FeatureROCompat = 0
	if got, want := sb.descBlock(2), uint64(1+32*256+1); got != want {
		t.Errorf("no sparse_super: descBlock(2) = %d, want %d", got, want)
	}
	// 4 KiB blocks: 64 descriptors a block, first data block 0; group 0's
	// meta group has the superblock in block 0.
	sb = &Superblock{
		BlockSize: 4096, BlocksPerGroup: 32768, DescSize: 64,
		FeatureIncompat: incompatMetaBG, FeatureROCompat: roCompatSparseSuper,
	}
	for i, want := range map[uint64]uint64{0: 1, 1: 64 * 32768, 2: 128 * 32768} {
		if got := sb.descBlock(i); got != want {
			t.Errorf("4 KiB: descBlock(%d) = %d, want %d", i, got, want)
		}
	}
}

var (
	dumpGroupRE  = regexp.MustCompile(`(?m)^Group (\d+): .*?(\[.*\])?$`)
	dumpBitmapRE = regexp.MustCompile(`Inode bitmap at (\d+)`)
	dumpTableRE  = regexp.MustCompile(`Inode table at (\d+)-`)
)

// TestLayout checks the superblock and the inode bitmap and table of
// every group against dumpe2fs, for the layouts that move descriptors.
func TestLayout(t *testing.T) {
	needE2fsprogs(t)
	tree := t.TempDir()
	makeTree(t, tree, testTree())
	tests := []struct {
		name string
		size string
		opts []string
	}{
		{"default", "300M", []string{"-g", "4096"}},
		{"32-bit, uninit_bg", "300M", []string{"-g", "4096", "-O", "^metadata_csum,^64bit,uninit_bg"}},
		{"1 KiB blocks", "64M", []string{"-b", "1024"}},
		{"meta_bg", "64M", []string{"-b", "1024", "-g", "1024", "-O", "meta_bg,^resize_inode"}},
		{"bigalloc, meta_bg", "64M", []string{"-b", "1024", "-C", "2048", "-O", "bigalloc,meta_bg,^resize_inode"}},
		{"sparse_super2", "300M", []string{"-g", "4096", "-O", "sparse_super2"}},
		{"no sparse_super", "300M", []string{"-g", "4096", "-O", "^sparse_super,^resize_inode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			mkfs(t, tree, img, tt.size, tt.opts...)
			out, err := exec.Command("dumpe2fs", img).Output()
			if err != nil {
				t.Fatalf("dumpe2fs: %v", err)
			}
			dump := string(out)

			sb, err := ReadSuperblock(img)
			if err != nil {
				t.Fatal(err)
			}
			for field, got := range map[string]uint64{
				"Inode count":      uint64(sb.InodesCount),
				"Block count":      sb.BlocksCount,
				"Block size":       uint64(sb.BlockSize),
				"First block":      uint64(sb.FirstDataBlock),
				"Blocks per group": uint64(sb.BlocksPerGroup),
				"Inodes per group": uint64(sb.InodesPerGroup),
				"Inode size":       uint64(sb.InodeSize),
				"First inode":      uint64(sb.FirstIno),
			} {
				m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+)$`).FindStringSubmatch(dump)
				if m == nil {
					t.Fatalf("dumpe2fs: no %q", field)
				}
				if want, _ := strconv.ParseUint(m[1], 10, 64); got != want {
					t.Errorf("%s: %d, dumpe2fs %d", field, got, want)
				}
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
			groups := dumpGroupRE.FindAllStringSubmatchIndex(dump, -1)
			if len(groups) != len(descs) || len(descs) < 4 {
				t.Fatalf("%d groups, dumpe2fs %d", len(descs), len(groups))
			}
			for g, loc := range groups {
				end := len(dump)
				if g+1 < len(groups) {
					end = groups[g+1][0]
				}
				text := dump[loc[0]:end]
				bitmap, _ := strconv.ParseUint(dumpBitmapRE.FindStringSubmatch(text)[1], 10, 64)
				table, _ := strconv.ParseUint(dumpTableRE.FindStringSubmatch(text)[1], 10, 64)
				uninit := strings.Contains(dump[loc[0]:loc[1]], "INODE_UNINIT")
				d := descs[g]
				if d.inodeBitmap != bitmap || d.inodeTable != table || (d.flags&bgInodeUninit != 0) != uninit {
					t.Errorf("group %d: bitmap %d, table %d, flags %#x; dumpe2fs: %s", g, d.inodeBitmap, d.inodeTable, d.flags, text)
				}
			}
		})
	}
}

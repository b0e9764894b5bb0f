package ext4fs

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestClampTimesRefuses checks that what ClampTimes cannot handle is an
// error, and that the image is then left as it was.
func TestClampTimesRefuses(t *testing.T) {
	needE2fsprogs(t)
	tree := t.TempDir()
	makeTree(t, tree, testTree())
	good := filepath.Join(t.TempDir(), "good")
	mkfs(t, tree, good, "16M")

	tests := []struct {
		name  string
		setup func(t *testing.T, img string) // makes img from a copy of good
		err   error
	}{
		{"missing", func(t *testing.T, img string) {
			if err := os.Remove(img); err != nil {
				t.Fatal(err)
			}
		}, fs.ErrNotExist},
		{"empty", func(t *testing.T, img string) { truncate(t, img, 0) }, ErrNotExt4},
		{"zeros", func(t *testing.T, img string) {
			if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrNotExt4},
		{"half a superblock", func(t *testing.T, img string) { truncate(t, img, 1500) }, ErrNotExt4},
		{"truncated in the metadata", func(t *testing.T, img string) { truncate(t, img, 64<<10) }, ErrCorrupt},
		{"truncated in the data", func(t *testing.T, img string) { truncate(t, img, 8<<20) }, ErrCorrupt},
		{"needs_recovery", func(t *testing.T, img string) {
			debugfs(t, img, true, "feature needs_recovery")
		}, ErrUnsupported},
		{"unknown incompat feature", func(t *testing.T, img string) {
			patchSuperblock(t, img, func(b []byte) { b[0x61] |= 0x08 }) // 0x800
		}, ErrUnsupported},
		{"unknown ro_compat feature", func(t *testing.T, img string) {
			patchSuperblock(t, img, func(b []byte) { b[0x66] |= 0x80 }) // 0x800000
		}, ErrUnsupported},
		{"inode size 192", func(t *testing.T, img string) {
			patchSuperblock(t, img, func(b []byte) { binary.LittleEndian.PutUint16(b[0x58:], 192) })
		}, ErrUnsupported},
		{"inode count", func(t *testing.T, img string) {
			patchSuperblock(t, img, func(b []byte) { b[0]++ })
		}, ErrCorrupt},
		{"superblock checksum", func(t *testing.T, img string) {
			flip(t, img, 1024+0x78) // s_volume_name
		}, ErrCorrupt},
		{"group descriptor checksum", func(t *testing.T, img string) {
			flip(t, img, 4096+0x0C) // group 0: bg_free_blocks_count_lo
		}, ErrCorrupt},
		{"inode checksum", func(t *testing.T, img string) {
			block, off := imap(t, img, 2)
			flip(t, img, block*4096+off+0x04) // the root's i_size
		}, ErrCorrupt},
		{"i_extra_isize", func(t *testing.T, img string) {
			block, off := imap(t, img, 2)
			flip(t, img, block*4096+off+0x80) // 32 becomes 33
		}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			copyFile(t, good, img)
			tt.setup(t, img)
			var before string
			if _, err := os.Stat(img); err == nil {
				before = sha(t, img)
			}
			err := ClampTimes(img, testEpoch)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ClampTimes: %v, want %v", err, tt.err)
			}
			t.Log(err)
			if before != "" && sha(t, img) != before {
				t.Error("the image changed")
			}
		})
	}
}

func TestClampTimesNegativeEpoch(t *testing.T) {
	if err := ClampTimes(filepath.Join(t.TempDir(), "img"), -1); err == nil {
		t.Fatal("no error")
	}
}

// TestClampTimesDamaged flips random bytes in an image's metadata: errors
// are expected, panics are not.
func TestClampTimesDamaged(t *testing.T) {
	needE2fsprogs(t)
	tree := t.TempDir()
	makeTree(t, tree, testTree())
	for _, opts := range [][]string{{"-O", "^metadata_csum"}, {"-O", "^metadata_csum,meta_bg,^resize_inode", "-g", "1024"}, nil} {
		good := filepath.Join(t.TempDir(), "good")
		mkfs(t, tree, good, "4M", append([]string{"-b", "1024"}, opts...)...)
		orig, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(t.TempDir(), "img")
		r := rand.New(rand.NewPCG(1, 2))
		var failed int
		for range 300 {
			b := append([]byte(nil), orig...)
			for range 1 + r.IntN(8) {
				// The superblock, descriptors, bitmaps and the start of
				// the inode table.
				at := 1024 + r.IntN(300<<10)
				if r.IntN(2) == 0 {
					at = 1024 + r.IntN(2048) // superblock, descriptors
				}
				b[at] ^= byte(1 + r.IntN(255))
			}
			if err := os.WriteFile(img, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if ClampTimes(img, testEpoch) != nil {
				failed++
			}
		}
		t.Logf("%v: %d of 300 damaged images refused", opts, failed)
	}
}

func truncate(t *testing.T, img string, size int64) {
	t.Helper()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, img string, off int64) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// patchSuperblock edits the primary superblock and fixes its checksum.
func patchSuperblock(t *testing.T, img string, edit func([]byte)) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, superblockSize)
	if _, err := f.ReadAt(b, superblockOffset); err != nil {
		t.Fatal(err)
	}
	edit(b)
	binary.LittleEndian.PutUint32(b[0x3FC:], crc32c(^uint32(0), b[:0x3FC]))
	if _, err := f.WriteAt(b, superblockOffset); err != nil {
		t.Fatal(err)
	}
}

var imapRE = regexp.MustCompile(`located at block (\d+), offset 0x([0-9a-f]+)`)

// imap returns where debugfs says an inode is.
func imap(t *testing.T, img string, ino int) (block, off int64) {
	t.Helper()
	out := debugfs(t, img, false, "imap <"+strconv.Itoa(ino)+">")[0]
	m := imapRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs imap: %s", out)
	}
	block, _ = strconv.ParseInt(m[1], 10, 64)
	off, _ = strconv.ParseInt(m[2], 16, 64)
	return block, off
}

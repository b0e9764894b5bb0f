package ext4fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkClampTimes clamps a 256 MiB image of 10,100 inodes (100
// directories of 100 files) in the page cache.
func BenchmarkClampTimes(b *testing.B) {
	needE2fsprogs(b)
	tree := b.TempDir()
	for d := range 100 {
		dir := filepath.Join(tree, fmt.Sprintf("d%02d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", f)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	img := filepath.Join(b.TempDir(), "img")
	mkfs(b, tree, img, "256M")

	// Each run clamps to an earlier epoch, so every inode is rewritten.
	b.Run("all changed", func(b *testing.B) {
		epoch := int64(testEpoch)
		for b.Loop() {
			epoch--
			if err := ClampTimes(img, epoch); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Runs after the first find nothing to change: the cost of reading.
	b.Run("none changed", func(b *testing.B) {
		for b.Loop() {
			if err := ClampTimes(img, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	fsck(b, img)
}

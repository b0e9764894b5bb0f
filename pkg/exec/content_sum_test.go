package exec

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"lukechampine.com/blake3"

	"github.com/imgplan/imgplan/pkg/digest"
)

// sum256 must be BLAKE3 itself: the content digest of every stored object
// depends on it.
func TestSum256IsBLAKE3(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, chunkSize+1)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sizes := []int{0, 1, 64, 1023, 1024, 1025, 2048, 3000, subtree - 1, subtree, subtree + 1, 17 * 1024, 40*1024 + 7,
		3 * subtree, 5*subtree + 100, 7 * subtree, chunkSize/2 + 1, chunkSize - 1, chunkSize, chunkSize + 1}
	for range 30 {
		sizes = append(sizes, r.IntN(chunkSize+1))
	}
	for _, n := range sizes {
		if got, want := sum256(b[:n]), blake3.Sum256(b[:n]); got != want {
			t.Errorf("%d bytes: sum256 %x, blake3.Sum256 %x", n, got, want)
		}
	}
}

// fileDigest must keep its definition: the SHA-256 of the chunks' marks,
// "z" for a zero chunk or hole, BLAKE3 otherwise.
func TestFileDigestDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	for _, size := range []int64{0, 100, 5000, chunkSize, 3*chunkSize + 12345} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if size > 2*chunkSize {
			clear(b[chunkSize : 2*chunkSize]) // a zero chunk, written
		}
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for off := int64(0); off < size; off += chunkSize {
			c := b[off:min(off+chunkSize, size)]
			if bytes.Equal(c, make([]byte, len(c))) {
				h.Write([]byte("z"))
			} else {
				s := blake3.Sum256(c)
				h.Write(s[:])
			}
		}
		want := digest.FromHash(h)
		got, err := fileDigest(p, size, make([]byte, chunkSize))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%d bytes: fileDigest %s, by definition %s", size, got, want)
		}
	}
}

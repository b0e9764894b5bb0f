package manifest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// FuzzDecode feeds arbitrary bytes to the decoder and the validator. They
// must never panic or hang, and every problem they report must carry a
// position. The seed corpus (every manifest in the repository and the
// invalid corpus) runs with the normal tests.
func FuzzDecode(f *testing.F) {
	for _, g := range []string{"testdata/invalid/*.yaml", "../../examples/*.yaml", "../../manifests/*.yaml", "../../manifests/base/*.yaml"} {
		files, _ := filepath.Glob(g)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("apiVersion: imgplan/v1\nname: x\nbootstrap: {distro: debian, release: bookworm}\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("outputs: [{type: ext4, <<: {size: 1G}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode("fuzz.yaml", data)
		for _, p := range manifest.Problems(err) {
			if p.Pos.File != "fuzz.yaml" || p.Pos.Line < 1 || p.Pos.Col < 1 {
				t.Fatalf("problem without a position: %v", p)
			}
		}
		if err != nil || m == nil {
			return
		}
		// Validation of whatever decoded must not panic either.
		for _, p := range manifest.Problems(manifest.Validate(m)) {
			if p.Pos.Line < 1 && p.Pos.File == "fuzz.yaml" {
				t.Fatalf("problem without a line: %v", p)
			}
		}
	})
}

package manifest_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// TestRepositoryManifests loads every manifest the repository ships: they
// must all be valid, and every base they extend with them.
func TestRepositoryManifests(t *testing.T) {
	var files []string
	for _, g := range []string{"../../manifests/*.yaml", "../../examples/*.yaml", "../../bench/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if !strings.HasSuffix(f, ".lock.yaml") { // lock files, not manifests
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		t.Skip("no manifests yet")
	}
	for _, f := range files {
		if _, err := manifest.Load(f); err != nil {
			t.Errorf("%s:\n%v", f, err)
		}
	}
}

package manifest_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// positionRe is the start of every problem line: file:line:column, where
// the file of an override is "--set path".
var positionRe = regexp.MustCompile(`^(--set [^:\s]+|[^:\s]+):[0-9]+:[0-9]+: \S`)

// TestInvalidCorpus loads every testdata/invalid/*.yaml (with the --set
// overrides of a sibling .set file, one per line) and compares the
// problems reported with the sibling .golden file. Every case must fail
// with ErrInvalid, and every problem must carry a file:line:column.
func TestInvalidCorpus(t *testing.T) {
	cases, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Errorf("the corpus has %d cases; it should cover every rule with at least 40", len(cases))
	}
	for _, file := range cases {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			var sets []string
			if b, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".set"); err == nil {
				for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					if l != "" {
						sets = append(sets, l)
					}
				}
			}
			_, err := manifest.Load(file, manifest.WithOverrides(sets...))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			got := err.Error() + "\n"
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !positionRe.MatchString(line) {
					t.Errorf("problem without a position: %q", line)
				}
			}
			if n := len(manifest.Problems(err)); n != strings.Count(got, "\n") {
				t.Errorf("Problems() returned %d problems for %d lines", n, strings.Count(got, "\n"))
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

package plan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/plan"
)

func TestExplain(t *testing.T) {
	dir := workspace(t, map[string]string{"m.yaml": baseManifest})
	path := filepath.Join(dir, "m.yaml")
	before := compile(t, path)
	record := func(p *plan.Plan, id string) *plan.Record {
		r := plan.RecordOf(p, p.Node(id))
		return &r
	}
	if got := plan.Explain(before, before.Node("files"), nil); got != "not built yet" {
		t.Errorf("no record: %q", got)
	}

	// One overlaid file changed: the files node names it, nodes below name their parent.
	sshd := filepath.Join(dir, "conf/sshd_config")
	os.WriteFile(sshd, []byte("PermitRootLogin yes\n"), 0o644)
	after := compile(t, path)
	for id, want := range map[string]string{
		"files":          "changed input " + sshd,
		"run:post-files": "files changed",
		"finalize":       "services changed",
		"bootstrap":      "built before; the store no longer holds it",
	} {
		if got := plan.Explain(after, after.Node(id), record(before, id)); got != want {
			t.Errorf("%s: %q, want %q", id, got, want)
		}
	}

	// A parameter changed: named, with the index of the first changed item.
	os.WriteFile(sshd, []byte("PermitRootLogin no\n"), 0o644)
	after = compile(t, path, "files[1].content=bye")
	if got := plan.Explain(after, after.Node("files"), record(before, "files")); got != "changed ops[1]" {
		t.Errorf("files: %q", got)
	}
	after = compile(t, path, "packages.install+=htop")
	if got := plan.Explain(after, after.Node("packages"), record(before, "packages")); got != "changed install[1]" {
		t.Errorf("packages: %q", got)
	}

	// New code version.
	r := record(before, "system")
	r.Code = "system/0"
	r.Key = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	if got := plan.Explain(before, before.Node("system"), r); !strings.Contains(got, "builder updated (system/0 → system/1)") {
		t.Errorf("code: %q", got)
	}
}

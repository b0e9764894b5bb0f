package plan_test

import (
	"testing"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/outputs"
	"github.com/imgplan/imgplan/pkg/stages"
)

// TestEveryNameHasAKind: the tables in pkg/manifest are the one source of
// stage and output names; every name must have a kind, and every kind a
// name (or be one of the kinds the planner adds itself).
func TestEveryNameHasAKind(t *testing.T) {
	known := map[string]bool{stages.KindRun: true, stages.KindInitramfs: true, stages.KindFinalize: true, stages.KindTree: true}
	for _, name := range manifest.Stages {
		if _, ok := stages.Lookup(name); !ok {
			t.Errorf("stage %q has no kind in pkg/stages", name)
		}
		known[name] = true
	}
	for _, name := range stages.Names() {
		if !known[name] {
			t.Errorf("pkg/stages registers %q, which no manifest stage names", name)
		}
	}
	known = map[string]bool{outputs.KindDisk: true}
	for typ := range manifest.OutputTypes {
		if _, ok := outputs.Lookup(string(typ)); !ok {
			t.Errorf("output type %q has no kind in pkg/outputs", typ)
		}
		known[string(typ)] = true
	}
	for _, name := range outputs.Names() {
		if !known[name] {
			t.Errorf("pkg/outputs registers %q, which is no output type", name)
		}
	}
}

package stages

import (
	"fmt"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Fstab edits /etc/fstab.
var Fstab = register(&Kind{Name: "fstab", Version: 1, Describe: describeFstab})

// FstabParams are the edits, in order.
type FstabParams struct {
	Remove []string     `json:"remove,omitempty"`
	Add    []FstabEntry `json:"add,omitempty"`
}

// FstabEntry is one line, defaults applied.
type FstabEntry struct {
	Spec    string `json:"spec"`
	File    string `json:"file"`
	Type    string `json:"type"`
	Options string `json:"options"`
	Dump    int    `json:"dump"`
	Pass    int    `json:"pass"`
}

func describeFstab(m *manifest.Manifest, _ *Context) (*Description, error) {
	f := m.Fstab
	if len(f.Remove)+len(f.Add) == 0 {
		return nil, nil
	}
	p := &FstabParams{Remove: sortedCopy(f.Remove)}
	for _, e := range f.Add {
		opts := e.Options
		if opts == "" {
			opts = "defaults"
		}
		p.Add = append(p.Add, FstabEntry{Spec: e.Spec, File: e.File, Type: e.Type, Options: opts, Dump: e.Dump, Pass: e.Pass})
	}
	var parts []string
	if len(p.Remove) > 0 {
		parts = append(parts, "remove "+strings.Join(p.Remove, ","))
	}
	for _, e := range p.Add {
		parts = append(parts, fmt.Sprintf("add %s", e.File))
	}
	return &Description{Params: p, Summary: strings.Join(parts, "; ")}, nil
}

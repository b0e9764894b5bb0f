package stages

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Run runs the hooks of one phase, in manifest order. Its Describe is
// unused: a plan has one run node per phase, described by DescribeRun.
var Run = register(&Kind{Name: KindRun, Version: 1})

// RunParams are the hooks of one phase.
type RunParams struct {
	Phase string       `json:"phase"`
	Hooks []HookParams `json:"hooks"`
}

// HookParams is one hook. A script file, the directory of the manifest
// that declares the hook, and further inputs are named by input role;
// inline text is a parameter.
type HookParams struct {
	Script string `json:"script,omitempty"`
	Inline string `json:"inline,omitempty"`
	Chroot bool   `json:"chroot"`
	// Dir is the role of the declaring manifest's directory, which the
	// hook sees read-only: its whole tree is part of the key.
	Dir    string   `json:"dir"`
	Inputs []string `json:"inputs,omitempty"`
}

// DescribeRun returns the run node of phase, or nil when it has no hooks.
func DescribeRun(m *manifest.Manifest, c *Context, phase string) (*Description, error) {
	p := &RunParams{Phase: phase}
	d := &Description{Params: p}
	var errs []error
	var names []string
	for i, h := range m.Run {
		if h.Phase != phase {
			continue
		}
		hp := HookParams{Inline: h.Inline, Chroot: h.Chroot == nil || *h.Chroot}
		role := fmt.Sprintf("run[%d]", i)
		dir := filepath.Dir(h.Pos().File)
		hp.Dir = role + ".dir"
		_, dd, err := c.Files.TreeExcept(dir, notManifestContent)
		if err != nil {
			errs = append(errs, problem(h.Pos(), "the manifest's directory %s: %v", dir, err))
		}
		d.Inputs = append(d.Inputs, Input{Role: hp.Dir, Path: dir, Digest: dd})
		if !h.Script.IsZero() {
			hp.Script = role + ".script"
			dg, err := c.Files.File(h.Script.Path)
			if err != nil {
				errs = append(errs, problem(h.At("script"), "%s: %v", h.Script.Raw, err))
			}
			d.Inputs = append(d.Inputs, Input{Role: hp.Script, Path: h.Script.Path, Digest: dg})
			names = append(names, h.Script.Raw)
		} else {
			names = append(names, "inline")
		}
		for j, in := range h.Inputs {
			r := fmt.Sprintf("%s.inputs[%d]", role, j)
			dg, err := c.Files.Path(in.Path)
			if err != nil {
				errs = append(errs, problem(h.Item("inputs", in.Raw), "%s: %v", in.Raw, err))
			}
			hp.Inputs = append(hp.Inputs, r)
			d.Inputs = append(d.Inputs, Input{Role: r, Path: in.Path, Digest: dg})
		}
		p.Hooks = append(p.Hooks, hp)
	}
	if len(p.Hooks) == 0 {
		return nil, nil
	}
	d.Summary = fmt.Sprintf("%s: %s", phase, strings.Join(names, ", "))
	return d, errors.Join(errs...)
}

// notManifestContent tells the directories of a manifest's directory that
// are not part of what its hooks read: version control metadata, and
// imgplan's own output directories (marked by their state file), which
// change with every apply.
func notManifestContent(rel, path string) bool {
	if filepath.Base(rel) == ".git" {
		return true
	}
	_, err := os.Stat(filepath.Join(path, OutputDirMarker))
	return err == nil
}

// OutputDirMarker is the file imgplan keeps in every output directory.
const OutputDirMarker = manifest.StateFile

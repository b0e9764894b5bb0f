package stages

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Files overlays files, directories, symlinks and trees on the image and
// removes paths from it, in manifest order.
var Files = register(&Kind{Name: "files", Version: 1, Describe: describeFiles})

// FilesParams is the ordered list of operations.
type FilesParams struct {
	Ops []FileOp `json:"ops"`
}

// FileOp is one files entry with its defaults applied.
type FileOp struct {
	// Kind is one of manifest.FileKinds.
	Kind string `json:"kind"`
	Dest string `json:"dest"`
	// Input is the role of the local input (src file or tree) it copies.
	Input   string  `json:"input,omitempty"`
	Content *string `json:"content,omitempty"`
	Target  string  `json:"target,omitempty"`
	// Mode is the permission bits of the file or directory written; for a
	// tree each entry keeps its own (they are part of the tree's digest).
	Mode  *manifest.Mode `json:"mode,omitempty"`
	Owner string         `json:"owner,omitempty"`
	Group string         `json:"group,omitempty"`
}

func describeFiles(m *manifest.Manifest, c *Context) (*Description, error) {
	if len(m.Files) == 0 {
		return nil, nil
	}
	p := &FilesParams{}
	d := &Description{Params: p}
	var errs []error
	counts := map[string]int{}
	for i, f := range m.Files {
		op := FileOp{Kind: f.Kind(), Dest: f.Dest, Owner: canonicalOwner(f.Owner), Group: canonicalOwner(f.Group)}
		counts[op.Kind]++
		mode := f.Mode
		switch op.Kind {
		case "src":
			op.Input = fmt.Sprintf("files[%d].src", i)
			dg, err := c.Files.File(f.Src.Path)
			if err != nil {
				errs = append(errs, problem(f.At("src"), "%s: %v", f.Src.Raw, err))
			}
			if mode == nil {
				if fi, err := os.Stat(f.Src.Path); err == nil {
					m := unixPerm(fi.Mode())
					mode = &m
				}
			}
			d.Inputs = append(d.Inputs, Input{Role: op.Input, Path: f.Src.Path, Digest: dg})
		case "tree":
			if op.Dest == "" {
				op.Dest = "/"
			}
			op.Input = fmt.Sprintf("files[%d].tree", i)
			_, dg, err := c.Files.Tree(f.Tree.Path)
			if err != nil {
				errs = append(errs, problem(f.At("tree"), "%s: %v", f.Tree.Raw, err))
			}
			d.Inputs = append(d.Inputs, Input{Role: op.Input, Path: f.Tree.Path, Digest: dg})
		case "content":
			op.Content = f.Content
			if mode == nil {
				m := manifest.Mode(0o644)
				mode = &m
			}
		case "symlink":
			op.Target = f.Symlink
		case "directory":
			if mode == nil {
				m := manifest.Mode(0o755)
				mode = &m
			}
		}
		op.Mode = mode
		p.Ops = append(p.Ops, op)
	}
	var parts []string
	for _, k := range manifest.FileKinds {
		if n := counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	d.Summary = fmt.Sprintf("%d entries (%s)", len(p.Ops), strings.Join(parts, ", "))
	return d, errors.Join(errs...)
}

// canonicalOwner spells root as 0, so "root" and "0" give one key; other
// names are resolved in the image when the stage runs.
func canonicalOwner(s string) string {
	if s == "root" || s == "0" {
		return ""
	}
	return s
}

// unixPerm is the permission bits of a Go file mode, with setuid, setgid
// and sticky in their Unix places.
func unixPerm(m os.FileMode) manifest.Mode {
	p := manifest.Mode(m.Perm())
	if m&os.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// Files overlays files, directories, symlinks and trees on the image and
// removes paths from it, in manifest order.
var Files = register(&Kind{Name: "files", Version: 1, Describe: describeFiles, Build: buildFiles})

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
					m := manifest.ModeOf(fi.Mode())
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

func buildFiles(_ context.Context, env Env, raw json.RawMessage) error {
	var p FilesParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	for i, op := range p.Ops {
		if err := applyFileOp(env, r, op); err != nil {
			return fmt.Errorf("files[%d] %s %s: %w", i, op.Kind, op.Dest, err)
		}
	}
	return nil
}

func applyFileOp(env Env, r *fsroot.Root, op FileOp) error {
	uid, gid, err := owners(r, op.Owner, op.Group)
	if err != nil {
		return err
	}
	var mode fs.FileMode
	if op.Mode != nil {
		mode = op.Mode.FileMode()
	}
	parent := path.Dir(op.Dest)
	switch op.Kind {
	case "src", "content":
		var src io.Reader
		if op.Kind == "content" {
			src = strings.NewReader(*op.Content)
		} else {
			p, err := env.Input(op.Input)
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			src = f
		}
		// Like cp, a symlink at dest is written through (inside the image).
		return r.WriteFile(op.Dest, src, fsroot.WriteOptions{Perm: mode, UID: uid, GID: gid, FollowSymlink: true, MkdirParents: true})
	case "symlink":
		if err := r.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		if err := r.Symlink(op.Target, op.Dest); err != nil {
			return err
		}
		return r.Lchown(op.Dest, uid, gid)
	case "tree":
		p, err := env.Input(op.Input)
		if err != nil {
			return err
		}
		if err := r.MkdirAll(op.Dest, 0o755); err != nil {
			return err
		}
		return r.CopyTree(p, op.Dest, uid, gid)
	case "directory":
		if err := r.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		return r.Mkdir(op.Dest, mode, uid, gid)
	case "remove":
		return r.RemoveAll(op.Dest)
	}
	return fmt.Errorf("unknown kind %q", op.Kind)
}

// owners resolves owner and group names in the image ("" is root).
func owners(r *fsroot.Root, owner, group string) (uid, gid int, err error) {
	if owner != "" {
		if uid, _, err = r.LookupUser(owner); err != nil {
			return 0, 0, err
		}
	}
	if group != "" {
		if gid, err = r.LookupGroup(group); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Fstab edits /etc/fstab.
var Fstab = register(&Kind{Name: "fstab", Version: 1, Describe: describeFstab, Build: buildFstab})

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

func buildFstab(_ context.Context, env Env, raw json.RawMessage) error {
	var p FstabParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	old, err := r.ReadFile("/etc/fstab")
	perm := fs.FileMode(0o644)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return err
	default:
		if fi, err := r.Stat("/etc/fstab"); err == nil {
			perm = fi.Mode().Perm()
		}
	}
	return r.WriteFile("/etc/fstab", bytes.NewReader(EditFstab(old, p)),
		fsroot.WriteOptions{Perm: perm, FollowSymlink: true, MkdirParents: true})
}

// EditFstab applies the edits to an fstab's text. Comments and blank lines
// stay; an entry is removed when its mount point (second field) equals an
// item of Remove that starts with "/", or its type (third field) equals
// any other item; an added entry replaces the entry with the same mount
// point in place, or is appended.
func EditFstab(old []byte, p FstabParams) []byte {
	var lines []string
	if len(old) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(old), "\n"), "\n")
	}
	removed := func(f []string) bool {
		for _, r := range p.Remove {
			if strings.HasPrefix(r, "/") && len(f) > 1 && f[1] == r {
				return true
			}
			if !strings.HasPrefix(r, "/") && len(f) > 2 && f[2] == r {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && !strings.HasPrefix(f[0], "#") && removed(f) {
			continue
		}
		out = append(out, l)
	}
	for _, e := range p.Add {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%d", e.Spec, e.File, e.Type, e.Options, e.Dump, e.Pass)
		replaced := false
		for i, l := range out {
			f := strings.Fields(l)
			if len(f) > 1 && !strings.HasPrefix(f[0], "#") && f[1] == e.File && e.File != "none" && e.File != "swap" {
				out[i], replaced = line, true
				break
			}
		}
		if !replaced {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

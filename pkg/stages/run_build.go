package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

func init() { Run.Build, Run.API = buildRun, true }

// Where a chrooted hook finds its script, the manifest's directory and its
// inputs: in the sandbox's tmpfs /run, so nothing of them stays in the
// image.
const (
	hookDir      = "/run/imgplan"
	hookManifest = hookDir + "/manifest"
	hookInputs   = hookDir + "/inputs"
)

// buildRun runs the hooks of one phase. A chrooted hook runs as
// /bin/sh -e in the directory of the manifest that declares it, mounted
// read-only at $IMGPLAN_MANIFEST_DIR, with its declared inputs mounted
// read-only under $IMGPLAN_INPUTS (by base name). A host hook runs on the
// build host in the manifest's own directory, with $IMGPLAN_ROOT set to
// the tree and $IMGPLAN_INPUTS to a directory of links to its inputs.
func buildRun(ctx context.Context, env Env, raw json.RawMessage) error {
	var p RunParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	for i, h := range p.Hooks {
		if err := runHook(ctx, env, p.Phase, h); err != nil {
			return fmt.Errorf("%s hook %d: %w", p.Phase, i, err)
		}
	}
	return nil
}

func runHook(ctx context.Context, env Env, phase string, h HookParams) error {
	script := h.Inline
	if h.Script != "" {
		p, err := env.Input(h.Script)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		script = string(b)
	}
	inputs := map[string]string{} // base name → host path
	for _, role := range h.Inputs {
		p, err := env.Input(role)
		if err != nil {
			return err
		}
		base := filepath.Base(p)
		if _, dup := inputs[base]; dup {
			return fmt.Errorf("two inputs are named %q", base)
		}
		inputs[base] = p
	}
	vars := []string{"IMGPLAN_PHASE=" + phase}
	mdir, err := env.Input(h.Dir)
	if err != nil {
		return err
	}
	if !h.Chroot {
		dir, err := os.MkdirTemp("", "imgplan-hook-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		for base, p := range inputs {
			if err := os.Symlink(p, filepath.Join(dir, base)); err != nil {
				return err
			}
		}
		file := filepath.Join(dir, ".hook")
		if err := os.WriteFile(file, []byte(script), 0o700); err != nil {
			return err
		}
		vars = append(vars, "IMGPLAN_ROOT="+env.Root().Dir(), "IMGPLAN_INPUTS="+dir, "IMGPLAN_MANIFEST_DIR="+mdir)
		return env.RunHost(ctx, []string{"/bin/sh", "-e", file}, RunOptions{Env: vars, Dir: mdir})
	}
	r := env.Root()
	if err := r.MkdirAll(hookInputs, 0o755); err != nil {
		return err
	}
	if err := env.Bind(mdir, hookManifest, true); err != nil {
		return err
	}
	for base, p := range inputs {
		if err := env.Bind(p, path.Join(hookInputs, base), true); err != nil {
			return err
		}
	}
	file := path.Join(hookDir, "hook.sh")
	if err := r.WriteFile(file, strings.NewReader(script), fsroot.WriteOptions{Perm: 0o700}); err != nil {
		return err
	}
	vars = append(vars, "IMGPLAN_INPUTS="+hookInputs, "IMGPLAN_MANIFEST_DIR="+hookManifest)
	return env.Run(ctx, []string{"/bin/sh", "-e", file}, RunOptions{Env: vars, Dir: hookManifest})
}

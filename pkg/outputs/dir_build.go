package outputs

import (
	"context"
	"encoding/json"

	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { Dir.Build = buildDir }

// buildDir copies the tree with everything it holds (owners, modes,
// xattrs, hardlinks, device nodes) and clamps its times to the epoch.
func buildDir(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p DirParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	out := ArtifactPath(env)
	if err := env.RunHost(ctx, []string{"cp", "-a", "--reflink=auto", "--", env.Root().Dir() + "/.", out}, stages.RunOptions{}); err != nil {
		return err
	}
	return clampTree(out, env.Epoch())
}

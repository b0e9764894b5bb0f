package stages

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/imgplan/imgplan/pkg/manifest"
)

func init() { Bootstrap.Build = buildBootstrap }

func buildBootstrap(ctx context.Context, env Env, raw json.RawMessage) error {
	var p BootstrapParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	switch p.Family {
	case manifest.FamilyDeb:
		return debBootstrap(ctx, env, &p)
	case manifest.FamilyRPM:
		return rpmBootstrap(ctx, env, &p)
	case manifest.FamilyDirectory:
		src, err := env.Input(RoleSource)
		if err != nil {
			return err
		}
		// Owned by root: a checkout's owners mean nothing in an image (and
		// are not part of the source's digest).
		return env.Root().CopyTree(src, "/", 0, 0)
	case manifest.FamilyTarball:
		return untarBootstrap(ctx, env, &p)
	}
	return fmt.Errorf("bootstrap of the %s family is not supported yet", p.Family)
}

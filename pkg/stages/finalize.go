package stages

import (
	"fmt"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Finalize cleans package caches, empties machine-id, restores resolv.conf
// and clamps every timestamp to the epoch.
var Finalize = register(&Kind{Name: KindFinalize, Version: 1, Describe: describeFinalize})

// FinalizeParams holds the epoch timestamps are clamped to.
type FinalizeParams struct {
	Epoch int64 `json:"epoch"`
}

func describeFinalize(_ *manifest.Manifest, c *Context) (*Description, error) {
	return &Description{Params: &FinalizeParams{Epoch: c.Epoch}, Summary: fmt.Sprintf("clean caches, machine-id, clamp times to %d", c.Epoch)}, nil
}

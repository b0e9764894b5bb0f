package stages

import "github.com/imgplan/imgplan/pkg/manifest"

// Finalize removes package caches, build logs, SSH host keys and ids that
// differ on every build, and empties /etc/machine-id.
var Finalize = register(&Kind{Name: KindFinalize, Version: 2, Describe: describeFinalize})

// FinalizeParams is empty: finalize does the same to every tree.
type FinalizeParams struct{}

func describeFinalize(*manifest.Manifest, *Context) (*Description, error) {
	return &Description{Params: &FinalizeParams{}, Summary: "clean caches, logs, host keys; empty machine-id"}, nil
}

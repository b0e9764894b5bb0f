package main

import (
	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
)

// loadFlags are the flags of every command that reads a manifest.
type loadFlags struct {
	sets []string
	// locked fails when the manifest's lock is missing or stale; noLock
	// ignores any lock (imgplan lock resolves afresh).
	locked, noLock bool
}

func (f *loadFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a manifest value: path=value or path+=value (YAML value; repeatable)")
}

// load reads a manifest with its bases and overrides; SOURCE_DATE_EPOCH,
// when set, overrides the manifest's epoch.
func (f *loadFlags) load(path string) (*manifest.Manifest, error) {
	opts := []manifest.Option{manifest.WithOverrides(f.sets...)}
	epoch, ok, err := manifest.EpochFromEnv()
	if err != nil {
		return nil, usageError{err}
	}
	if ok {
		opts = append(opts, manifest.WithEpoch(epoch))
	}
	return manifest.Load(path, opts...)
}

// compile loads a manifest and compiles its plan.
func (f *loadFlags) compile(path string) (*plan.Plan, error) {
	m, err := f.load(path)
	if err != nil {
		return nil, err
	}
	return plan.Compile(m)
}

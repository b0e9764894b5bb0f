package outputs

import (
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Raw is the disk image itself, written sparse.
var Raw = register(&Kind{Name: string(manifest.OutputRaw), Version: 1, Describe: describeRaw})

// RawParams is empty: a raw output is its disk.
type RawParams struct{}

func describeRaw(manifest.Output, *manifest.Manifest, *stages.Context) (*stages.Description, error) {
	return &stages.Description{Params: &RawParams{}, Summary: "raw disk (sparse)"}, nil
}

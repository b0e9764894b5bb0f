package outputs

import (
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Dir copies the tree to a directory.
var Dir = register(&Kind{Name: string(manifest.OutputDir), Version: 1, Describe: describeDir})

// DirParams is empty: a dir output is its tree.
type DirParams struct{}

func describeDir(manifest.Output, *manifest.Manifest, *stages.Context) (*stages.Description, error) {
	return &stages.Description{Params: &DirParams{}, Summary: "directory"}, nil
}

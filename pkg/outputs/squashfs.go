package outputs

import (
	"fmt"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Squashfs writes a squashfs image of the tree with mksquashfs.
var Squashfs = register(&Kind{Name: string(manifest.OutputSquashfs), Version: 1, Describe: describeSquashfs})

// SquashfsParams are a squashfs output's options with defaults applied.
type SquashfsParams struct {
	Compression string `json:"compression"`
	// Level is the compressor's default when nil.
	Level     *int  `json:"level,omitempty"`
	BlockSize int64 `json:"block_size"`
}

func describeSquashfs(o manifest.Output, _ *manifest.Manifest, c *stages.Context) (*stages.Description, error) {
	opt := o.Options.(*manifest.SquashfsOptions)
	p := &SquashfsParams{Compression: opt.Compression, Level: opt.Level, BlockSize: 128 << 10}
	if p.Compression == "" {
		p.Compression = "zstd"
	}
	if opt.BlockSize != nil {
		p.BlockSize = int64(*opt.BlockSize)
	}
	return &stages.Description{Params: p, Summary: fmt.Sprintf("squashfs %s, %s blocks", p.Compression, manifest.Size(p.BlockSize))}, nil
}

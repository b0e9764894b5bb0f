package outputs

import (
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Tar writes a tar archive of the tree, in Go, in sorted order.
var Tar = register(&Kind{Name: string(manifest.OutputTar), Version: 1, Describe: describeArchive})

// Cpio writes a newc cpio archive of the tree.
var Cpio = register(&Kind{Name: string(manifest.OutputCpio), Version: 1, Describe: describeArchive})

// ArchiveParams are a tar or cpio output's options with defaults applied.
type ArchiveParams struct {
	Compression string `json:"compression"`
	Level       *int   `json:"level,omitempty"`
}

func describeArchive(o manifest.Output, _ *manifest.Manifest, c *stages.Context) (*stages.Description, error) {
	opt := o.Options.(*manifest.ArchiveOptions)
	p := &ArchiveParams{Compression: o.ArchiveCompression(), Level: opt.Level}
	summary := string(o.Type)
	if p.Compression != "none" {
		summary += " " + p.Compression
	}
	return &stages.Description{Params: p, Summary: summary}, nil
}

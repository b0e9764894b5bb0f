package outputs

import (
	"fmt"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Ext4 writes an ext4 filesystem image of the tree with mkfs.ext4 -d.
var Ext4 = register(&Kind{Name: string(manifest.OutputExt4), Version: 1, Describe: describeExt4, SyncOnCommit: true})

// Ext4Params are an ext4 output's options with defaults applied.
type Ext4Params struct {
	// Size is fixed when non-zero; otherwise the tree's size plus Headroom.
	Size     int64           `json:"size,omitempty"`
	Headroom manifest.Extent `json:"headroom"`
	Label    string          `json:"label,omitempty"`
	// UUID is derived from the node key when empty.
	UUID     string   `json:"uuid,omitempty"`
	Features []string `json:"features,omitempty"`
}

// DefaultHeadroom is the free space of an automatically sized image.
var DefaultHeadroom = manifest.Extent{Percent: 20}

func describeExt4(o manifest.Output, _ *manifest.Manifest, c *stages.Context) (*stages.Description, error) {
	opt := o.Options.(*manifest.Ext4Options)
	p := &Ext4Params{Label: opt.Label, UUID: opt.UUID, Features: opt.Features, Headroom: DefaultHeadroom}
	summary := "auto size"
	if opt.Size != nil {
		p.Size, p.Headroom = int64(*opt.Size), manifest.Extent{}
		summary = opt.Size.String()
	} else if opt.Headroom != nil {
		p.Headroom = *opt.Headroom
	}
	if p.Size == 0 {
		summary += " + " + p.Headroom.String()
	}
	return &stages.Description{Params: p, Summary: fmt.Sprintf("ext4 %s", summary)}, nil
}

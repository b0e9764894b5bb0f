package outputs

import (
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// PXE writes a diskless boot bundle: kernel, initrd, root image,
// pxelinux.cfg entries, an iPXE script and a summary.
var PXE = register(&Kind{Name: string(manifest.OutputPXE), Version: 1, Describe: describePXE, SyncOnCommit: true})

// PXEParams are a pxe output's options with defaults applied.
type PXEParams struct {
	Boot        string          `json:"boot"`
	Server      string          `json:"server,omitempty"`
	KernelArgs  string          `json:"kernel_args,omitempty"`
	TmpfsSize   manifest.Extent `json:"tmpfs_size,omitzero"`
	Compression string          `json:"compression,omitempty"`
	// MACs are lower case, dash-separated, as pxelinux names its files.
	MACs []string `json:"macs,omitempty"`
}

func describePXE(o manifest.Output, _ *manifest.Manifest, c *stages.Context) (*stages.Description, error) {
	opt := o.Options.(*manifest.PXEOptions)
	p := &PXEParams{Boot: opt.Boot, Server: opt.Server, KernelArgs: opt.KernelArgs}
	if p.Boot == "overlay-squashfs" {
		p.TmpfsSize = manifest.Extent{Percent: 50}
		if opt.TmpfsSize != nil {
			p.TmpfsSize = *opt.TmpfsSize
		}
		p.Compression = opt.Compression
		if p.Compression == "" {
			p.Compression = "xz"
		}
	}
	for _, mac := range opt.MACs {
		p.MACs = append(p.MACs, strings.ToLower(strings.ReplaceAll(mac, ":", "-")))
	}
	return &stages.Description{Params: p, Summary: "pxe " + p.Boot}, nil
}

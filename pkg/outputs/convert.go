package outputs

import (
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Qcow2, Vmdk and Vhd convert the disk image with qemu-img convert.
var (
	Qcow2 = register(&Kind{Name: string(manifest.OutputQcow2), Version: 1, Describe: describeConvert})
	Vmdk  = register(&Kind{Name: string(manifest.OutputVmdk), Version: 1, Describe: describeConvert})
	Vhd   = register(&Kind{Name: string(manifest.OutputVhd), Version: 1, Describe: describeConvert})
)

// ConvertParams are the qemu-img target format and its options.
type ConvertParams struct {
	// Format is qemu-img's name for it: qcow2, vmdk or vpc.
	Format    string `json:"format"`
	Subformat string `json:"subformat,omitempty"`
	Compress  bool   `json:"compress,omitempty"`
}

func describeConvert(o manifest.Output, _ *manifest.Manifest, _ *stages.Context) (*stages.Description, error) {
	var p ConvertParams
	switch opt := o.Options.(type) {
	case *manifest.Qcow2Options:
		p = ConvertParams{Format: "qcow2", Compress: opt.Compress}
	case *manifest.VmdkOptions:
		p = ConvertParams{Format: "vmdk", Subformat: opt.Subformat}
		if p.Subformat == "" {
			p.Subformat = "monolithicSparse"
		}
	case *manifest.VhdOptions:
		p = ConvertParams{Format: "vpc", Subformat: opt.Subformat}
		if p.Subformat == "" {
			p.Subformat = "dynamic"
		}
	}
	summary := string(o.Type)
	if p.Subformat != "" {
		summary += " " + p.Subformat
	}
	if p.Compress {
		summary += " compressed"
	}
	return &stages.Description{Params: &p, Summary: summary}, nil
}

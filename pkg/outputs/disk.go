package outputs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Disk writes a partitioned disk image from the manifest's layout: the
// partition table with go-diskfs, a filesystem per partition from its
// subtree, the generated fstab and the bootloader. Disk outputs (raw,
// qcow2, vmdk, vhd) are made from it.
var Disk = register(&Kind{Name: KindDisk, Version: 3, Describe: describeDisk})

// DiskParams is the layout with defaults applied.
type DiskParams struct {
	Table string `json:"table"`
	// Size is the disk size; 0 sizes the disk to fit the tree.
	Size       int64             `json:"size,omitempty"`
	Partitions []PartitionParams `json:"partitions"`
	// Cmdline is the layout's kernel command line.
	Cmdline string `json:"cmdline,omitempty"`
}

// PartitionParams is one partition with defaults applied.
type PartitionParams struct {
	Name    string          `json:"name"`
	Size    manifest.Extent `json:"size"`
	Type    string          `json:"type"`
	FS      string          `json:"fs"`
	Mount   string          `json:"mount,omitempty"`
	Label   string          `json:"label,omitempty"`
	UUID    string          `json:"uuid,omitempty"`
	Flags   []string        `json:"flags,omitempty"`
	Options string          `json:"options,omitempty"`
}

// DiskSize is the disk size a disk output asks for: its own size option,
// else the layout's, else 0 (fit the tree).
func DiskSize(o manifest.Output, m *manifest.Manifest) int64 {
	if s := manifest.DiskSizeOption(o); s != nil {
		return int64(*s)
	}
	if m.Layout != nil && m.Layout.Size != nil {
		return int64(*m.Layout.Size)
	}
	return 0
}

func describeDisk(o manifest.Output, m *manifest.Manifest, c *stages.Context) (*stages.Description, error) {
	l := m.Layout
	p := &DiskParams{Table: l.Table, Size: DiskSize(o, m), Cmdline: strings.Join(strings.Fields(l.Cmdline), " ")}
	var parts []string
	for _, part := range l.Partitions {
		flags := append([]string(nil), part.Flags...)
		sort.Strings(flags)
		pp := PartitionParams{
			Name: part.Name, Size: part.Size, Type: part.TypeOf(), FS: part.FSOf(),
			Mount: part.Mount, Label: part.Label, UUID: part.UUID, Flags: flags, Options: part.Options,
		}
		if pp.Mount != "" && pp.Options == "" {
			pp.Options = "defaults"
		}
		p.Partitions = append(p.Partitions, pp)
		desc := part.Name + " " + part.Size.String()
		if part.Mount != "" {
			desc += " " + part.Mount
		}
		parts = append(parts, desc)
	}
	size := "fit"
	if p.Size > 0 {
		size = manifest.Size(p.Size).String()
	}
	return &stages.Description{Params: p, Summary: fmt.Sprintf("%s %s: %s", p.Table, size, strings.Join(parts, ", "))}, nil
}

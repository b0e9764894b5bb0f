package manifest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// OutputType names a kind of output. OutputTypes is the one table of valid
// names; pkg/outputs keys its builders by these constants.
type OutputType string

// The output types.
const (
	OutputExt4     OutputType = "ext4"
	OutputSquashfs OutputType = "squashfs"
	OutputTar      OutputType = "tar"
	OutputCpio     OutputType = "cpio"
	OutputDir      OutputType = "dir"
	OutputRaw      OutputType = "raw"
	OutputQcow2    OutputType = "qcow2"
	OutputVmdk     OutputType = "vmdk"
	OutputVhd      OutputType = "vhd"
	OutputPXE      OutputType = "pxe"
)

// OutputSpec describes one output type.
type OutputSpec struct {
	Doc         string
	DefaultPath string
	// Disk outputs are built from the manifest's layout.
	Disk bool
	// NewOptions returns a pointer to the type's zeroed options struct.
	NewOptions func() any
}

// OutputTypes lists every output type.
var OutputTypes = map[OutputType]OutputSpec{
	OutputExt4:     {Doc: "ext4 filesystem image of the whole tree (root.img for a dracut root=live: boot).", DefaultPath: "root.img", NewOptions: func() any { return &Ext4Options{} }},
	OutputSquashfs: {Doc: "squashfs image of the tree (for overlayfs-on-squashfs diskless boot).", DefaultPath: "root.squashfs", NewOptions: func() any { return &SquashfsOptions{} }},
	OutputTar:      {Doc: "tar archive of the tree (LXC/OpenVZ templates).", DefaultPath: "rootfs.tar", NewOptions: func() any { return &ArchiveOptions{} }},
	OutputCpio:     {Doc: "cpio (newc) archive of the tree, for initramfs use.", DefaultPath: "rootfs.cpio", NewOptions: func() any { return &ArchiveOptions{} }},
	OutputDir:      {Doc: "The tree itself, copied to a directory.", DefaultPath: "rootfs", NewOptions: func() any { return &DirOptions{} }},
	OutputRaw:      {Doc: "Partitioned raw disk image (sparse) built from layout.", DefaultPath: "disk.raw", Disk: true, NewOptions: func() any { return &DiskOptions{} }},
	OutputQcow2:    {Doc: "qcow2 disk image built from layout.", DefaultPath: "disk.qcow2", Disk: true, NewOptions: func() any { return &Qcow2Options{} }},
	OutputVmdk:     {Doc: "VMDK disk image built from layout.", DefaultPath: "disk.vmdk", Disk: true, NewOptions: func() any { return &VmdkOptions{} }},
	OutputVhd:      {Doc: "VHD disk image built from layout.", DefaultPath: "disk.vhd", Disk: true, NewOptions: func() any { return &VhdOptions{} }},
	OutputPXE:      {Doc: "Diskless PXE bundle: kernel, initrd, root image, pxelinux.cfg and iPXE script.", DefaultPath: "pxe", NewOptions: func() any { return &PXEOptions{} }},
}

// OutputTypeNames is the sorted list of output type names.
func OutputTypeNames() []string {
	out := make([]string, 0, len(OutputTypes))
	for t := range OutputTypes {
		out = append(out, string(t))
	}
	sort.Strings(out)
	return out
}

// Output is one artifact the build writes.
type Output struct {
	Meta `yaml:"-" json:"-"`

	Type OutputType `yaml:"type" json:"type" doc:"Output type." required:"true"`
	Path string     `yaml:"path" json:"path,omitempty" doc:"Where to write it, relative to the output directory. Default depends on the type."`
	// Options holds the type's own options: a pointer to one of the
	// *Options structs below, chosen by Type.
	Options any `yaml:"-" json:"options,omitempty"`
}

// commonOutputKeys are the keys every output has; the rest belong to its type.
var commonOutputKeys = map[string]bool{"type": true, "path": true}

func (o *Output) decodeNode(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		d.errorf(n, path, "expected a mapping, got null")
		return
	}
	pairs, ok := d.pairs(n, path)
	if !ok {
		*o = Output{Meta: Meta{pos: d.pos(n), path: path, bad: true}}
		return
	}
	*o = Output{Meta: Meta{pos: d.pos(n), path: path, fields: map[string]Position{}}}
	var spec OutputSpec
	var known bool
	var rest []*yaml.Node
	for _, p := range pairs {
		switch p.key.Value {
		case "type":
			o.fields["type"] = d.pos(p.value)
			var s string
			d.decode(p.value, reflect.ValueOf(&s).Elem(), joinPath(path, "type"))
			o.Type = OutputType(s)
			if spec, known = OutputTypes[o.Type]; !known && s != "" {
				d.errorf(p.value, joinPath(path, "type"), "unknown output type %q (known: %s)", s, strings.Join(OutputTypeNames(), ", "))
			}
		case "path":
			o.fields["path"] = d.pos(p.value)
			d.decode(p.value, reflect.ValueOf(&o.Path).Elem(), joinPath(path, "path"))
		default:
			rest = append(rest, p.key, p.value)
		}
	}
	if !known {
		return
	}
	opts := spec.NewOptions()
	sub := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: rest}
	d.decodeStruct(sub, reflect.ValueOf(opts).Elem(), path, func(p pair) {
		names := append(optionNames(opts), "type", "path")
		d.errorf(p.key, path, "output type %q has no option %q%s", o.Type, p.key.Value, suggest(p.key.Value, names))
	})
	o.Options = opts
}

func optionNames(opts any) []string {
	return infoOf(reflect.TypeOf(opts).Elem()).names
}

// optionsMeta returns the Meta of an output's options, which records where
// each option was written.
func (o *Output) optionsMeta() Meta {
	if hm, ok := o.Options.(hasMeta); ok {
		return *hm.meta()
	}
	return Meta{pos: o.pos}
}

// UnmarshalJSON restores the typed options a plan or lock file carries.
func (o *Output) UnmarshalJSON(b []byte) error {
	var raw struct {
		Type    OutputType      `json:"type"`
		Path    string          `json:"path"`
		Options json.RawMessage `json:"options"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	spec, ok := OutputTypes[raw.Type]
	if !ok {
		return fmt.Errorf("unknown output type %q", raw.Type)
	}
	o.Type, o.Path = raw.Type, raw.Path
	o.Options = spec.NewOptions()
	if len(raw.Options) > 0 {
		return json.Unmarshal(raw.Options, o.Options)
	}
	return nil
}

// Ext4Options are the options of an ext4 output.
type Ext4Options struct {
	Meta `yaml:"-" json:"-"`

	Size     *Size    `yaml:"size" json:"size,omitempty" doc:"Fixed image size (\"2500MiB\"). Default: the tree's size plus headroom."`
	Headroom *Extent  `yaml:"headroom" json:"headroom,omitempty" doc:"Free space added to an automatically sized image: bytes or a percentage of the tree. Default 20%."`
	Label    string   `yaml:"label" json:"label,omitempty" doc:"Filesystem label (up to 16 bytes)."`
	UUID     string   `yaml:"uuid" json:"uuid,omitempty" doc:"Filesystem UUID. Default: derived from the stage key, so rebuilds are identical."`
	Features []string `yaml:"features" json:"features,omitempty" doc:"mke2fs -O features on top of imgplan's defaults (has_journal, extent, huge_file, flex_bg, metadata_csum, 64bit, dir_nlink, extra_isize); \"^name\" turns one off, e.g. [^metadata_csum, ^64bit] for kernels older than 3.18 such as CentOS 6's."`
}

// Compression names valid per output type.
var (
	squashfsCompressions = []string{"gzip", "xz", "zstd", "lz4", "lzo"}
	archiveCompressions  = []string{"none", "gzip", "xz", "zstd"}
)

// SquashfsOptions are the options of a squashfs output.
type SquashfsOptions struct {
	Meta `yaml:"-" json:"-"`

	Compression string `yaml:"compression" json:"compression,omitempty" doc:"gzip, xz, zstd, lz4 or lzo. Default zstd."`
	Level       *int   `yaml:"level" json:"level,omitempty" doc:"Compression level: gzip 1-9, zstd 1-22, lzo 1-9; xz and lz4 take none."`
	BlockSize   *Size  `yaml:"block_size" json:"block_size,omitempty" doc:"Block size, a power of two from 4KiB to 1MiB. Default 128KiB."`
}

// ArchiveOptions are the options of tar and cpio outputs.
type ArchiveOptions struct {
	Meta `yaml:"-" json:"-"`

	Compression string `yaml:"compression" json:"compression,omitempty" doc:"none, gzip, xz or zstd. Default: from the path's extension (.gz, .xz, .zst), else none."`
	Level       *int   `yaml:"level" json:"level,omitempty" doc:"Compression level (gzip 1-9, xz 0-9, zstd 1-22)."`
}

// DirOptions are the options of a dir output (it has none).
type DirOptions struct {
	Meta `yaml:"-" json:"-"`
}

// DiskOptions are the options of a raw disk output.
type DiskOptions struct {
	Meta `yaml:"-" json:"-"`

	Size *Size `yaml:"size" json:"size,omitempty" doc:"Disk size; overrides layout.size."`
}

// Qcow2Options are the options of a qcow2 output.
type Qcow2Options struct {
	Meta `yaml:"-" json:"-"`

	Size     *Size `yaml:"size" json:"size,omitempty" doc:"Virtual disk size; overrides layout.size."`
	Compress bool  `yaml:"compress" json:"compress,omitempty" doc:"Compress clusters (smaller file, slower writes in the guest)."`
}

// VmdkOptions are the options of a vmdk output.
type VmdkOptions struct {
	Meta `yaml:"-" json:"-"`

	Size      *Size  `yaml:"size" json:"size,omitempty" doc:"Virtual disk size; overrides layout.size."`
	Subformat string `yaml:"subformat" json:"subformat,omitempty" doc:"monolithicSparse (default) or streamOptimized."`
}

// VhdOptions are the options of a vhd output.
type VhdOptions struct {
	Meta `yaml:"-" json:"-"`

	Size      *Size  `yaml:"size" json:"size,omitempty" doc:"Virtual disk size; overrides layout.size."`
	Subformat string `yaml:"subformat" json:"subformat,omitempty" doc:"dynamic (default) or fixed."`
}

// PXE boot methods.
var pxeBoots = []string{"overlay-squashfs", "dracut-live"}

// PXEOptions are the options of a pxe output.
type PXEOptions struct {
	Meta `yaml:"-" json:"-"`

	Boot        string   `yaml:"boot" json:"boot" doc:"overlay-squashfs (initramfs-tools: squashfs lower, tmpfs upper) or dracut-live (dracut root=live: with an ext4 root.img)." required:"true"`
	Server      string   `yaml:"server" json:"server,omitempty" doc:"Base URL the root image is fetched from (http://host/path or tftp://host/path). Default: tftp from the PXE server."`
	KernelArgs  string   `yaml:"kernel_args" json:"kernel_args,omitempty" doc:"Extra kernel command line arguments."`
	TmpfsSize   *Extent  `yaml:"tmpfs_size" json:"tmpfs_size,omitempty" doc:"overlay-squashfs: size of the tmpfs upper layer (bytes or % of RAM). Default 50%."`
	Compression string   `yaml:"compression" json:"compression,omitempty" doc:"overlay-squashfs: squashfs compression. Default xz (what the kernel decodes everywhere)."`
	MACs        []string `yaml:"macs" json:"macs,omitempty" doc:"MAC addresses that get their own pxelinux.cfg/01-xx-xx-... entry."`
}

package manifest

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// OutputPath is the output's path with the type's default applied.
func (o Output) OutputPath() string {
	if o.Path != "" {
		return o.Path
	}
	p := OutputTypes[o.Type].DefaultPath
	if opt, ok := o.Options.(*ArchiveOptions); ok {
		p += map[string]string{"gzip": ".gz", "xz": ".xz", "zstd": ".zst"}[opt.Compression]
	}
	return p
}

// ArchiveCompression is the compression of a tar or cpio output: the option
// when written, else the one its path's extension names, else none.
func (o Output) ArchiveCompression() string {
	if opt, ok := o.Options.(*ArchiveOptions); ok && opt.Compression != "" {
		return opt.Compression
	}
	return extCompression(o.Path)
}

func extCompression(p string) string {
	switch path.Ext(p) {
	case ".gz", ".tgz":
		return "gzip"
	case ".xz", ".txz":
		return "xz"
	case ".zst", ".zstd":
		return "zstd"
	}
	return "none"
}

// Level ranges per compressor, for archives (tar, cpio) and for squashfs,
// whose xz and lz4 take no level; a compressor missing takes none.
var (
	archiveLevels  = map[string][2]int{"gzip": {1, 9}, "xz": {0, 9}, "zstd": {1, 22}}
	squashfsLevels = map[string][2]int{"gzip": {1, 9}, "zstd": {1, 22}, "lzo": {1, 9}}
)

var featureRe = regexp.MustCompile(`^\^?[a-z0-9_]+$`)

func (v *validator) level(meta Meta, levels map[string][2]int, comp string, level *int) {
	if level == nil {
		return
	}
	r, ok := levels[comp]
	if !ok {
		v.at(meta, "level", "compression %s takes no level", comp)
		return
	}
	if *level < r[0] || *level > r[1] {
		v.at(meta, "level", "%s levels go from %d to %d", comp, r[0], r[1])
	}
}

func (v *validator) outputs(m *Manifest) {
	paths := map[string]Position{}
	for _, o := range m.Outputs {
		spec, ok := OutputTypes[o.Type]
		if !ok {
			continue // reported while decoding
		}
		op := o.OutputPath()
		if o.Path != "" {
			if msg := relPath(o.Path); msg != "" {
				v.at(o.Meta, "path", "%s", msg)
			} else if slices.Contains(ReservedOutputNames, strings.Split(o.Path, "/")[0]) {
				v.at(o.Meta, "path", "%s is a name imgplan writes itself beside the outputs", o.Path)
			}
		}
		if first, dup := paths[strings.TrimSuffix(op, "/")]; dup {
			v.at(o.Meta, "path", "%s is also written by the output at %s", op, where(first, o.At("path")))
		}
		paths[strings.TrimSuffix(op, "/")] = o.At("path")
		if spec.Disk && m.Layout == nil {
			v.here(o.Meta, "output type %s needs a layout", o.Type)
		}
		om := o.optionsMeta()
		switch opt := o.Options.(type) {
		case *Ext4Options:
			if opt.Size != nil && opt.Headroom != nil {
				v.at(om, "headroom", "applies only to an automatically sized image (no size)")
			}
			if opt.Headroom != nil && opt.Headroom.Rest {
				v.at(om, "headroom", "write bytes or a percentage")
			}
			if len(opt.Label) > 16 {
				v.at(om, "label", "ext4 labels hold at most 16 bytes")
			}
			if opt.UUID != "" && !uuidRe.MatchString(opt.UUID) {
				v.at(om, "uuid", "invalid UUID %q", opt.UUID)
			}
			for _, f := range opt.Features {
				if !featureRe.MatchString(f) {
					v.item(om, "features", f, "invalid feature %q: a mke2fs -O name, or ^name to turn it off", f)
				}
			}
		case *SquashfsOptions:
			comp := opt.Compression
			if comp == "" {
				comp = "zstd"
			} else if !slices.Contains(squashfsCompressions, comp) {
				v.at(om, "compression", "unknown compression %q (%s)", comp, strings.Join(squashfsCompressions, ", "))
				break
			}
			v.level(om, squashfsLevels, comp, opt.Level)
			if bs := opt.BlockSize; bs != nil && (*bs < 4<<10 || *bs > 1<<20 || *bs&(*bs-1) != 0) {
				v.at(om, "block_size", "must be a power of two from 4KiB to 1MiB")
			}
		case *ArchiveOptions:
			comp := o.ArchiveCompression()
			if opt.Compression != "" && !slices.Contains(archiveCompressions, opt.Compression) {
				v.at(om, "compression", "unknown compression %q (%s)", opt.Compression, strings.Join(archiveCompressions, ", "))
				break
			}
			if ext := extCompression(o.Path); o.Path != "" && opt.Compression != "" && ext != "none" && ext != opt.Compression {
				v.at(om, "compression", "%s contradicts the path %s (%s)", opt.Compression, o.Path, ext)
			}
			v.level(om, archiveLevels, comp, opt.Level)
		case *VmdkOptions:
			if s := opt.Subformat; s != "" && s != "monolithicSparse" && s != "streamOptimized" {
				v.at(om, "subformat", "unknown subformat %q (monolithicSparse, streamOptimized)", s)
			}
		case *VhdOptions:
			if s := opt.Subformat; s != "" && s != "dynamic" && s != "fixed" {
				v.at(om, "subformat", "unknown subformat %q (dynamic, fixed)", s)
			}
		case *PXEOptions:
			if opt.Boot != "" && !slices.Contains(pxeBoots, opt.Boot) {
				v.at(om, "boot", "unknown boot method %q (%s)", opt.Boot, strings.Join(pxeBoots, ", "))
			}
			if opt.Server != "" {
				v.url(om, "server", opt.Server, "http", "https", "tftp")
			}
			if opt.Boot == "dracut-live" {
				for _, k := range []string{"tmpfs_size", "compression"} {
					if om.Has(k) {
						v.at(om, k, "applies only to boot: overlay-squashfs")
					}
				}
			}
			if opt.Compression != "" && !slices.Contains(squashfsCompressions, opt.Compression) {
				v.at(om, "compression", "unknown compression %q (%s)", opt.Compression, strings.Join(squashfsCompressions, ", "))
			}
			if opt.TmpfsSize != nil && opt.TmpfsSize.Rest {
				v.at(om, "tmpfs_size", "write bytes or a percentage of RAM")
			}
			for _, mac := range opt.MACs {
				if !macRe.MatchString(mac) {
					v.item(om, "macs", mac, "invalid MAC address %q", mac)
				}
			}
			if strings.ContainsAny(opt.KernelArgs, "\n\r") {
				v.at(om, "kernel_args", "must be one line")
			}
		}
	}
}

// Files imgplan writes in every output directory besides the outputs.
const (
	ReportFile   = "imgplan-report.json"   // what the apply built and reused
	PackagesFile = "imgplan-packages.json" // the image's installed packages
	ContentFile  = "imgplan-content.pb"    // the tree's continuity manifest
	StateFile    = ".imgplan-state.json"   // what was delivered, to skip copies
)

// ReservedOutputNames are the names outputs cannot have.
var ReservedOutputNames = []string{ReportFile, PackagesFile, ContentFile, StateFile}

// relPath checks a path relative to the output directory.
func relPath(p string) string {
	switch {
	case strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q must be relative to the output directory", p)
	case strings.ContainsRune(p, 0):
		return fmt.Sprintf("%q contains a NUL byte", p)
	}
	for _, c := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if c == ".." {
			return fmt.Sprintf("%q must not contain \"..\"", p)
		}
	}
	if c := path.Clean(p); c != strings.TrimSuffix(p, "/") || c == "." {
		return fmt.Sprintf("%q is not a clean relative path", p)
	}
	return ""
}

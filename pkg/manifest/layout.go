package manifest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PartType is a known partition type.
type PartType struct {
	MBR byte   // 0 when the type has no MBR code
	GPT string // type GUID
	FS  string // default filesystem
}

// PartTypes lists the partition type names a layout may use.
var PartTypes = map[string]PartType{
	"linux":     {MBR: 0x83, GPT: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", FS: "ext4"},
	"swap":      {MBR: 0x82, GPT: "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", FS: "swap"},
	"esp":       {MBR: 0xEF, GPT: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", FS: "vfat"},
	"bios_grub": {GPT: "21686148-6449-6E6F-744E-656564454649", FS: "none"},
}

// Filesystems a partition may hold, with the longest label each accepts.
var partFilesystems = map[string]int{"ext4": 16, "xfs": 12, "vfat": 11, "swap": 15, "none": 0}

var partFlags = map[string]string{"boot": "msdos", "legacy_boot": "gpt"}

// Align is the alignment of every partition start and size.
const Align int64 = 1 << 20

// MinESP is the smallest ESP that can hold FAT32.
const MinESP int64 = 33 << 20

// FSOf is the partition's filesystem, with the type's default applied.
func (p Partition) FSOf() string {
	if p.FS != "" {
		return p.FS
	}
	if t, ok := PartTypes[p.TypeOf()]; ok {
		return t.FS
	}
	return "ext4"
}

// TypeOf is the partition's type, with the default (linux) applied.
func (p Partition) TypeOf() string {
	if p.Type == "" {
		return "linux"
	}
	return p.Type
}

// Span is where a partition lies on the disk, in bytes.
type Span struct {
	Start, Size int64
}

// SpanError says which partition does not fit.
type SpanError struct {
	Index int    // the partition
	Name  string // its name
	Rest  bool   // it takes the rest, and nothing is left
	Need  int64  // bytes the partitions need up to its end
	Disk  int64
	Table string
}

func (e *SpanError) Error() string { return e.describe("") }

// describe says what does not fit; label names where the disk size was
// written ("layout.size"), if known.
func (e *SpanError) describe(label string) string {
	disk := "the disk"
	if label != "" {
		disk += " (" + label + ")"
	}
	disk += " has " + formatBytes(e.Disk)
	if e.Table == "gpt" {
		disk += ", less 1MiB kept for the GPT backup table"
	}
	if e.Rest {
		return fmt.Sprintf("partition %q (rest) does not fit: the other partitions take the whole disk; %s", e.Name, disk)
	}
	return fmt.Sprintf("partition %q does not fit: the partitions need %s up to its end; %s", e.Name, formatBytes(e.Need), disk)
}

// percentError: a percentage with no disk size to take it of.
type percentError struct {
	index int
	name  string
}

func errPercentNeedsSize(i int, name string) error { return &percentError{i, name} }

func (e *percentError) Error() string {
	return fmt.Sprintf("partition %q: a percentage needs a disk size (layout.size)", e.name)
}

func alignUp(v int64) int64 { return (v + Align - 1) / Align * Align }

// Spans places the partitions on a disk of diskSize bytes: the first starts
// at 1MiB, every start and size is a multiple of 1MiB, percentages are of
// the disk, and the one "rest" partition takes what is left (GPT keeps the
// last MiB for its backup table). restSize, when diskSize is 0, is the size
// the rest partition needs and the disk grows to fit it.
func Spans(l *Layout, diskSize, restSize int64) ([]Span, int64, error) {
	end := diskSize
	if l.Table == "gpt" && end > 0 {
		end -= Align
	}
	var fixed int64 = Align
	for i, p := range l.Partitions {
		switch {
		case p.Size.Bytes > 0:
			fixed += alignUp(p.Size.Bytes)
		case p.Size.Percent > 0:
			if diskSize == 0 {
				return nil, 0, errPercentNeedsSize(i, p.Name)
			}
			fixed += diskSize * int64(p.Size.Percent) / 100 / Align * Align
		}
		if diskSize > 0 && fixed > end {
			return nil, 0, &SpanError{Index: i, Name: p.Name, Need: fixed, Disk: diskSize, Table: l.Table}
		}
	}
	rest := int64(0)
	if slices.ContainsFunc(l.Partitions, func(p Partition) bool { return p.Size.Rest }) {
		if diskSize > 0 {
			rest = end - fixed
			if rest < Align {
				i := slices.IndexFunc(l.Partitions, func(p Partition) bool { return p.Size.Rest })
				return nil, 0, &SpanError{Index: i, Name: l.Partitions[i].Name, Rest: true, Need: fixed, Disk: diskSize, Table: l.Table}
			}
		} else {
			rest = alignUp(max(restSize, Align))
		}
	}
	if diskSize == 0 {
		diskSize = fixed + rest
		if l.Table == "gpt" {
			diskSize += Align
		}
	}
	spans := make([]Span, len(l.Partitions))
	off := Align
	for i, p := range l.Partitions {
		var size int64
		switch {
		case p.Size.Bytes > 0:
			size = alignUp(p.Size.Bytes)
		case p.Size.Percent > 0:
			size = diskSize * int64(p.Size.Percent) / 100 / Align * Align
		case p.Size.Rest:
			size = rest
		}
		spans[i] = Span{Start: off, Size: size}
		off += size
	}
	return spans, diskSize, nil
}

func (v *validator) layout(l *Layout) {
	if l.Table != "" && l.Table != "msdos" && l.Table != "gpt" {
		v.at(l.Meta, "table", "unknown partition table %q (msdos or gpt)", l.Table)
		return
	}
	if l.Table == "msdos" && len(l.Partitions) > 4 {
		v.at(l.Meta, "partitions", "an msdos table holds at most 4 (primary) partitions; use gpt")
	}
	if strings.ContainsAny(l.Cmdline, "\n\r\x00") {
		v.at(l.Meta, "cmdline", "the kernel command line is one line")
	}
	names := map[string]Position{}
	mounts := map[string]Position{}
	rest := Position{}
	percent := 0
	for _, p := range l.Partitions {
		if p.Name != "" {
			if !repoNameRe.MatchString(p.Name) || len(p.Name) > 36 {
				v.at(p.Meta, "name", "invalid name %q: up to 36 letters, digits, '.', '_' and '-'", p.Name)
			}
			if first, dup := names[p.Name]; dup {
				v.at(p.Meta, "name", "duplicate partition name %q (first at %s)", p.Name, where(first, p.At("name")))
			}
			names[p.Name] = p.At("name")
		}
		if p.Size.Rest {
			if rest.Line > 0 {
				v.at(p.Meta, "size", "only one partition can take the rest (the one at %s already does)", where(rest, p.At("size")))
			}
			rest = p.At("size")
		}
		percent += p.Size.Percent
		typ := p.TypeOf()
		known, isKnown := PartTypes[typ]
		switch {
		case isKnown:
			if l.Table == "msdos" && known.MBR == 0 {
				v.at(p.Meta, "type", "type %s exists only in gpt tables", typ)
			}
		case uuidRe.MatchString(typ):
			if l.Table == "msdos" {
				v.at(p.Meta, "type", "a type GUID needs a gpt table; msdos takes a byte like \"0x83\"")
			}
		case mbrTypeRe.MatchString(typ):
			if l.Table == "gpt" {
				v.at(p.Meta, "type", "an MBR type byte needs an msdos table; gpt takes a type GUID")
			}
		default:
			v.at(p.Meta, "type", "unknown partition type %q (linux, swap, esp, bios_grub, a GUID or an MBR byte like 0x83)", typ)
		}
		fs := p.FSOf()
		maxLabel, fsKnown := partFilesystems[fs]
		if !fsKnown {
			v.at(p.Meta, "fs", "unknown filesystem %q (ext4, xfs, vfat, swap, none)", fs)
		} else if fs == "xfs" {
			// Refused here rather than failing after the tree is built.
			v.at(p.Meta, "fs", "xfs partitions are not built yet (use ext4)")
		}
		switch {
		case typ == "swap" && fs != "swap", typ != "swap" && fs == "swap" && isKnown:
			v.at(p.Meta, "fs", "swap filesystems go in swap partitions and only there")
		case typ == "esp" && fs != "vfat":
			v.at(p.Meta, "fs", "an ESP holds vfat")
		case typ == "esp" && p.Size.Bytes > 0 && alignUp(p.Size.Bytes) < MinESP:
			v.at(p.Meta, "size", "an ESP needs at least 33MiB for FAT32")
		case typ == "bios_grub" && fs != "none":
			v.at(p.Meta, "fs", "a bios_grub partition holds no filesystem")
		}
		if p.Mount != "" {
			if msg := imagePath(p.Mount); msg != "" {
				v.at(p.Meta, "mount", "%s", msg)
			} else if fs == "swap" || fs == "none" {
				v.at(p.Meta, "mount", "a partition with filesystem %s cannot be mounted", fs)
			} else if first, dup := mounts[p.Mount]; dup {
				what := "mount point " + p.Mount + " is taken"
				if p.Mount == "/" {
					what = "two root partitions"
				}
				v.at(p.Meta, "mount", "%s (first at %s)", what, where(first, p.At("mount")))
			} else {
				mounts[p.Mount] = p.At("mount")
			}
		}
		if p.Label != "" && fsKnown && len(p.Label) > maxLabel {
			v.at(p.Meta, "label", "%s labels hold at most %d bytes", fs, maxLabel)
		}
		if p.UUID != "" && !uuidRe.MatchString(p.UUID) && !(fs == "vfat" && vfatIDRe.MatchString(p.UUID)) {
			v.at(p.Meta, "uuid", "invalid UUID %q", p.UUID)
		}
		for _, f := range p.Flags {
			table, ok := partFlags[f]
			switch {
			case !ok:
				v.item(p.Meta, "flags", f, "unknown flag %q (boot, legacy_boot)", f)
			case l.Table != "" && table != l.Table:
				v.item(p.Meta, "flags", f, "flag %s applies to %s tables", f, table)
			}
		}
		if strings.ContainsAny(p.Options, " \t\n") {
			v.at(p.Meta, "options", "must not contain white space")
		}
	}
	if len(l.Partitions) > 0 {
		if _, ok := mounts["/"]; !ok {
			v.at(l.Meta, "partitions", "no partition is mounted at /")
		}
	}
	if percent > 100 {
		v.at(l.Meta, "partitions", "percentages add up to %d%%", percent)
	}
	// Check the layout against every disk size it is used with, naming
	// the size that is too small.
	sizes := map[int64]string{}
	if l.Size != nil {
		sizes[int64(*l.Size)] = joinPath(l.Path(), "size")
	}
	for _, o := range v.m.Outputs {
		if s := DiskSizeOption(o); s != nil {
			sizes[int64(*s)] = joinPath(o.Meta.Path(), "size")
		}
	}
	if len(sizes) == 0 {
		sizes[0] = ""
	}
	for _, size := range slices.Sorted(maps.Keys(sizes)) {
		_, _, err := Spans(l, size, 0)
		switch e := err.(type) {
		case nil:
			v.espSizes(l, size, sizes[size])
		case *SpanError:
			v.at(l.Partitions[e.Index].Meta, "size", "%s", e.describe(sizes[size]))
		case *percentError:
			v.at(l.Partitions[e.index].Meta, "size", "%s", e.Error())
		}
	}
}

// espSizes checks ESPs sized as a share of the disk, once the disk size
// is known.
func (v *validator) espSizes(l *Layout, size int64, label string) {
	spans, _, err := Spans(l, size, 0)
	if err != nil {
		return
	}
	for i, p := range l.Partitions {
		if p.TypeOf() == "esp" && p.Size.Bytes == 0 && spans[i].Size < MinESP {
			what := "an ESP needs at least 33MiB for FAT32; it gets " + formatBytes(spans[i].Size)
			if label != "" {
				what += " of the disk size in " + label
			}
			v.at(p.Meta, "size", "%s", what)
		}
	}
}

// DiskSizeOption is the size option of a disk output, or nil.
func DiskSizeOption(o Output) *Size {
	switch opt := o.Options.(type) {
	case *DiskOptions:
		return opt.Size
	case *Qcow2Options:
		return opt.Size
	case *VmdkOptions:
		return opt.Size
	case *VhdOptions:
		return opt.Size
	}
	return nil
}

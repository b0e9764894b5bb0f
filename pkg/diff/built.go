package diff

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/continuity"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Built is the difference of two built images, read from what apply
// writes beside the outputs: the content manifests, the package lists and
// the report's output sizes.
type Built struct {
	Files    []FileChange    `json:"files"`
	Packages []PackageChange `json:"packages"`
	Outputs  []OutputSize    `json:"outputs"`
}

// FileChange is a path added, removed or modified, with what changed
// ("content", "mode 644 → 600", "owner 0:0 → 33:33", "target").
type FileChange struct {
	Path   string   `json:"path"`
	Op     string   `json:"op"`
	Fields []string `json:"fields,omitempty"`
}

// PackageChange is a package added, removed or at another version.
type PackageChange struct {
	Name string `json:"name"`
	Op   string `json:"op"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// OutputSize is an output's size in bytes on both sides (-1: absent).
type OutputSize struct {
	Path string `json:"path"`
	Old  int64  `json:"old"`
	New  int64  `json:"new"`
}

// CompareBuilt compares the output directories of two applies.
func CompareBuilt(oldDir, newDir string) (*Built, error) {
	b := &Built{Files: []FileChange{}, Packages: []PackageChange{}, Outputs: []OutputSize{}}
	ca, err := readContent(filepath.Join(oldDir, manifest.ContentFile))
	if err != nil {
		return nil, err
	}
	cb, err := readContent(filepath.Join(newDir, manifest.ContentFile))
	if err != nil {
		return nil, err
	}
	b.Files = compareContent(ca, cb)
	pa, err := readPackages(filepath.Join(oldDir, manifest.PackagesFile))
	if err != nil {
		return nil, err
	}
	pb, err := readPackages(filepath.Join(newDir, manifest.PackagesFile))
	if err != nil {
		return nil, err
	}
	b.Packages = comparePackages(pa, pb)
	sa, err := readSizes(filepath.Join(oldDir, manifest.ReportFile))
	if err != nil {
		return nil, err
	}
	sb, err := readSizes(filepath.Join(newDir, manifest.ReportFile))
	if err != nil {
		return nil, err
	}
	for p, n := range sb {
		o, ok := sa[p]
		if !ok {
			o = -1
		}
		b.Outputs = append(b.Outputs, OutputSize{Path: p, Old: o, New: n})
	}
	for p, o := range sa {
		if _, ok := sb[p]; !ok {
			b.Outputs = append(b.Outputs, OutputSize{Path: p, Old: o, New: -1})
		}
	}
	sort.Slice(b.Outputs, func(i, j int) bool { return b.Outputs[i].Path < b.Outputs[j].Path })
	return b, nil
}

// entry is what a content manifest says of one path.
type entry struct {
	kind, mode, owner, content string
}

func readContent(file string) (map[string]entry, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("content manifest: %w", err)
	}
	m, err := continuity.Unmarshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]entry{}
	for _, r := range m.Resources {
		e := entry{mode: fmt.Sprintf("%o", uint32(r.Mode().Perm()|r.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky))), owner: fmt.Sprintf("%d:%d", r.UID(), r.GID())}
		switch v := r.(type) {
		case continuity.RegularFile:
			e.kind, e.content = "file", fmt.Sprint(v.Size(), v.Digests())
		case continuity.SymLink:
			e.kind, e.content = "symlink", v.Target()
		case continuity.Directory:
			e.kind = "dir"
		case continuity.Device:
			e.kind, e.content = "device", fmt.Sprintf("%d:%d", v.Major(), v.Minor())
		default:
			e.kind = "other"
		}
		paths := []string{r.Path()}
		if hl, ok := r.(continuity.Hardlinkable); ok {
			paths = hl.Paths()
		}
		for _, p := range paths {
			out[p] = e
		}
	}
	return out, nil
}

func compareContent(a, b map[string]entry) []FileChange {
	var out []FileChange
	for p, eb := range b {
		ea, ok := a[p]
		if !ok {
			out = append(out, FileChange{Path: p, Op: Added})
			continue
		}
		var f []string
		if ea.kind != eb.kind {
			f = append(f, fmt.Sprintf("type %s → %s", ea.kind, eb.kind))
		} else if ea.content != eb.content {
			if eb.kind == "symlink" {
				f = append(f, fmt.Sprintf("target %s → %s", ea.content, eb.content))
			} else {
				f = append(f, "content")
			}
		}
		if ea.mode != eb.mode {
			f = append(f, fmt.Sprintf("mode %s → %s", ea.mode, eb.mode))
		}
		if ea.owner != eb.owner {
			f = append(f, fmt.Sprintf("owner %s → %s", ea.owner, eb.owner))
		}
		if len(f) > 0 {
			out = append(out, FileChange{Path: p, Op: Changed, Fields: f})
		}
	}
	for p := range a {
		if _, ok := b[p]; !ok {
			out = append(out, FileChange{Path: p, Op: Removed})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func readPackages(file string) (map[string]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("package list: %w", err)
	}
	var pl stages.PackageList
	if err := json.Unmarshal(raw, &pl); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]string{}
	for _, p := range pl.Packages {
		name := p.Name
		if p.Arch != "" {
			name += ":" + p.Arch
		}
		out[name] = p.Version
	}
	return out, nil
}

func comparePackages(a, b map[string]string) []PackageChange {
	var out []PackageChange
	for n, vb := range b {
		va, ok := a[n]
		switch {
		case !ok:
			out = append(out, PackageChange{Name: n, Op: Added, New: vb})
		case va != vb:
			out = append(out, PackageChange{Name: n, Op: Changed, Old: va, New: vb})
		}
	}
	for n, va := range a {
		if _, ok := b[n]; !ok {
			out = append(out, PackageChange{Name: n, Op: Removed, Old: va})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readSizes reads the output sizes from an apply report, leaving out the
// manifests written beside the outputs.
func readSizes(file string) (map[string]int64, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("apply report: %w", err)
	}
	var rep struct {
		Outputs []struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]int64{}
	for _, o := range rep.Outputs {
		if o.Path == manifest.PackagesFile || o.Path == manifest.ContentFile {
			continue
		}
		out[o.Path] = o.Size
	}
	return out, nil
}

func size(n int64) string {
	if n < 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func writeBuiltText(b *strings.Builder, bt *Built) {
	fmt.Fprintf(b, "\nBuilt images: %d files differ, %d packages differ\n", len(bt.Files), len(bt.Packages))
	for _, f := range bt.Files {
		fmt.Fprintf(b, "  %s %s", opSign[f.Op], f.Path)
		if len(f.Fields) > 0 {
			fmt.Fprintf(b, " (%s)", strings.Join(f.Fields, ", "))
		}
		b.WriteString("\n")
	}
	if len(bt.Packages) > 0 {
		b.WriteString("\nPackages\n")
	}
	for _, p := range bt.Packages {
		fmt.Fprintf(b, "  %s %s %s\n", opSign[p.Op], p.Name, versions(p))
	}
	if len(bt.Outputs) > 0 {
		b.WriteString("\nOutputs\n")
	}
	for _, o := range bt.Outputs {
		fmt.Fprintf(b, "  %s  %s → %s\n", o.Path, size(o.Old), size(o.New))
	}
}

func versions(p PackageChange) string {
	switch p.Op {
	case Added:
		return p.New
	case Removed:
		return p.Old
	}
	return p.Old + " → " + p.New
}

func writeBuiltMarkdown(b *strings.Builder, bt *Built) {
	fmt.Fprintf(b, "\n#### Built images\n\n%d files differ, %d packages differ.\n\n", len(bt.Files), len(bt.Packages))
	if len(bt.Packages) > 0 {
		rows := make([]string, 0, len(bt.Packages))
		for _, p := range bt.Packages {
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", p.Name, p.Op, mdEscape(versions(p))))
		}
		writeTable(b, "| Package | Change | Version |\n|---|---|---|", rows, "more packages")
		b.WriteString("\n")
	}
	if len(bt.Files) > 0 {
		rows := make([]string, 0, len(bt.Files))
		for _, f := range bt.Files {
			rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", mdEscape(f.Path), f.Op, mdEscape(strings.Join(f.Fields, ", "))))
		}
		writeTable(b, "| Path | Change | What |\n|---|---|---|", rows, "more files")
		b.WriteString("\n")
	}
	if len(bt.Outputs) > 0 {
		b.WriteString("| Output | Before | After |\n|---|---|---|\n")
		for _, o := range bt.Outputs {
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", o.Path, size(o.Old), size(o.New))
		}
	}
}

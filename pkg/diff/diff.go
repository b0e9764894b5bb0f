// Package diff compares two manifests, or the two images built from them,
// for people reviewing a change: what the change does to the image, and
// which stages it rebuilds. Like a plan, a Diff is a value; every view of
// it (text, Markdown, JSON) is rendered from it.
package diff

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Format versions the JSON form of a Diff.
const Format = "imgplan.diff.v1"

// The operations of a Change.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Diff is what changes from an old manifest to a new one.
type Diff struct {
	Format string `json:"format"`
	// Old and New name the two sides (a file, or file@revision).
	Old string `json:"old"`
	New string `json:"new"`
	// Changes are the semantic changes, section by section in manifest
	// order.
	Changes []Change `json:"changes"`
	// Stages says, for every node of the new plan, whether it rebuilds,
	// and for every node of the old plan only, that it is gone.
	Stages []Stage `json:"stages"`
	// Built is the difference of the built images, with --built.
	Built *Built `json:"built,omitempty"`
}

// Change is one thing added, removed or changed.
type Change struct {
	// Section is the manifest section: bootstrap, packages, system,
	// files, fstab, groups, users, services, run, layout, outputs.
	Section string `json:"section"`
	// Item names the thing within its section: a package, a path, a
	// user, a partition, an output.
	Item string `json:"item"`
	Op   string `json:"op"`
	// Fields lists what changed in a changed item.
	Fields []Field `json:"fields,omitempty"`
	// Text is a short line diff of a text file's content.
	Text string `json:"text,omitempty"`
}

// Field is one value before and after ("" when absent).
type Field struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Stage statuses.
const (
	Rebuild = "rebuild"
	Same    = "cached" // same key: a build of the old side serves the new
	New     = "new"    // no such node in the old plan
	Gone    = "gone"   // no such node in the new plan
)

// Stage is one node of the plans.
type Stage struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	OldKey string `json:"old_key,omitempty"`
	NewKey string `json:"new_key,omitempty"`
	// Reason says why it rebuilds, as plan.Explain says it.
	Reason string `json:"reason,omitempty"`
}

// Side is one manifest and its compiled plan.
type Side struct {
	Name     string
	Manifest *manifest.Manifest
	Plan     *plan.Plan
	// Lock is the manifest's lock file, if it has one.
	Lock *stages.Lock
}

// Compare returns what changes from old to new.
func Compare(old, new Side) *Diff {
	d := &Diff{Format: Format, Old: old.Name, New: new.Name, Changes: []Change{}, Stages: []Stage{}}
	a, b := old.Manifest, new.Manifest
	d.Changes = append(d.Changes, fieldsChange("bootstrap", "bootstrap", a.Bootstrap, b.Bootstrap)...)
	d.Changes = append(d.Changes, setChanges("packages", "", a.Packages.Install, b.Packages.Install)...)
	d.Changes = append(d.Changes, setChanges("packages", "remove ", a.Packages.Remove, b.Packages.Remove)...)
	d.Changes = append(d.Changes, lockChanges(old.Lock, new.Lock)...)
	d.Changes = append(d.Changes, fieldsChange("system", "system", system(a), system(b))...)
	d.Changes = append(d.Changes, fileChanges(a.Files, b.Files)...)
	d.Changes = append(d.Changes, setChanges("fstab", "remove ", a.Fstab.Remove, b.Fstab.Remove)...)
	d.Changes = append(d.Changes, keyedChanges("fstab", a.Fstab.Add, b.Fstab.Add, func(e manifest.FstabEntry) string { return e.File })...)
	d.Changes = append(d.Changes, keyedChanges("groups", a.Groups, b.Groups, func(g manifest.Group) string { return g.Name })...)
	d.Changes = append(d.Changes, keyedChanges("users", a.Users, b.Users, func(u manifest.User) string { return u.Name })...)
	d.Changes = append(d.Changes, setChanges("services", "enable ", a.Services.Enable, b.Services.Enable)...)
	d.Changes = append(d.Changes, setChanges("services", "disable ", a.Services.Disable, b.Services.Disable)...)
	d.Changes = append(d.Changes, hookChanges(a.Run, b.Run)...)
	d.Changes = append(d.Changes, layoutChanges(a.Layout, b.Layout)...)
	d.Changes = append(d.Changes, keyedChanges("outputs", a.Outputs, b.Outputs, func(o manifest.Output) string { return o.Path })...)
	d.Stages = compareStages(old.Plan, new.Plan)
	return d
}

// system gathers the scalar settings outside any section.
func system(m *manifest.Manifest) map[string]string {
	s := map[string]string{"hostname": m.Hostname, "timezone": m.Timezone, "locale": m.Locale, "extends": m.Extends}
	if m.Epoch != nil {
		s["epoch"] = fmt.Sprint(*m.Epoch)
	}
	return s
}

func compareStages(a, b *plan.Plan) []Stage {
	var out []Stage
	for _, n := range b.Nodes {
		s := Stage{ID: n.ID, NewKey: n.Key.Short()}
		on := a.Node(n.ID)
		switch {
		case on == nil:
			s.Status, s.Reason = New, "not in the old plan"
		case on.Key == n.Key:
			s.Status, s.OldKey = Same, on.Key.Short()
		default:
			rec := plan.RecordOf(a, on)
			s.Status, s.OldKey, s.Reason = Rebuild, on.Key.Short(), plan.Explain(b, n, &rec)
		}
		out = append(out, s)
	}
	for _, n := range a.Nodes {
		if b.Node(n.ID) == nil {
			out = append(out, Stage{ID: n.ID, Status: Gone, OldKey: n.Key.Short()})
		}
	}
	return out
}

// setChanges reports names added to and removed from a list.
func setChanges(section, prefix string, a, b []string) []Change {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	var out []Change
	for _, s := range b {
		if !in(a, s) {
			out = append(out, Change{Section: section, Item: prefix + s, Op: Added})
		}
	}
	for _, s := range a {
		if !in(b, s) {
			out = append(out, Change{Section: section, Item: prefix + s, Op: Removed})
		}
	}
	return out
}

// keyedChanges matches items by key and reports them added, removed, or
// changed field by field.
func keyedChanges[T any](section string, a, b []T, key func(T) string) []Change {
	ka, kb := keyed(a, key), keyed(b, key)
	var out []Change
	for _, k := range kb.order {
		if _, ok := ka.items[k]; !ok {
			c := Change{Section: section, Item: k, Op: Added}
			c.Fields = fieldDiff(nil, flatten(kb.items[k]))
			out = append(out, c)
			continue
		}
		out = append(out, fieldsChange(section, k, ka.items[k], kb.items[k])...)
	}
	for _, k := range ka.order {
		if _, ok := kb.items[k]; !ok {
			out = append(out, Change{Section: section, Item: k, Op: Removed})
		}
	}
	return out
}

type keyedList[T any] struct {
	order []string
	items map[string]T
}

// keyed indexes items by key; a repeated key gets a "#2" suffix.
func keyed[T any](list []T, key func(T) string) keyedList[T] {
	l := keyedList[T]{items: map[string]T{}}
	for _, it := range list {
		k := key(it)
		for i := 2; ; i++ {
			if _, dup := l.items[k]; !dup {
				break
			}
			k = fmt.Sprintf("%s #%d", key(it), i)
		}
		l.order = append(l.order, k)
		l.items[k] = it
	}
	return l
}

// fieldsChange reports a changed item with its changed fields, or nothing.
func fieldsChange(section, item string, a, b any) []Change {
	f := fieldDiff(flatten(a), flatten(b))
	if len(f) == 0 {
		return nil
	}
	return []Change{{Section: section, Item: item, Op: Changed, Fields: f}}
}

func fieldDiff(a, b map[string]string) []Field {
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var out []Field
	for k := range names {
		if a[k] != b[k] {
			out = append(out, Field{Name: k, Old: a[k], New: b[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// flatten turns a value into dotted paths of scalars by way of its JSON.
func flatten(v any) map[string]string {
	out := map[string]string{}
	b, err := json.Marshal(v)
	if err != nil {
		return out
	}
	var x any
	if json.Unmarshal(b, &x) != nil {
		return out
	}
	flattenInto(out, "", x)
	return out
}

func flattenInto(out map[string]string, path string, x any) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			flattenInto(out, join(k), e)
		}
	case []any:
		if scalars(v) {
			s := make([]string, len(v))
			for i, e := range v {
				s[i] = fmt.Sprint(e)
			}
			if len(s) > 0 {
				out[path] = strings.Join(s, ", ")
			}
			return
		}
		for i, e := range v {
			flattenInto(out, fmt.Sprintf("%s[%d]", path, i), e)
		}
	case nil:
	case string:
		if v != "" {
			out[path] = v
		}
	case float64:
		if strings.HasSuffix(path, "size") {
			out[path] = manifest.Size(int64(v)).String()
		} else {
			out[path] = fmt.Sprint(v)
		}
	default:
		out[path] = fmt.Sprint(v)
	}
}

func scalars(v []any) bool {
	for _, e := range v {
		switch e.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

// fileChanges matches file entries by destination (trees by source and
// destination) and adds a short diff of text content.
func fileChanges(a, b []manifest.File) []Change {
	key := func(f manifest.File) string {
		if !f.Tree.IsZero() {
			dest := f.Dest
			if dest == "" {
				dest = "/"
			}
			return fmt.Sprintf("%s (tree %s)", dest, f.Tree.Raw)
		}
		return f.Dest
	}
	ka, kb := keyed(a, key), keyed(b, key)
	var out []Change
	for _, k := range kb.order {
		fb := kb.items[k]
		fa, ok := ka.items[k]
		if !ok {
			c := Change{Section: "files", Item: k, Op: Added, Fields: fieldDiff(nil, fileFields(fb))}
			if t, ok := fileText(fb); ok {
				c.Text = lineDiff("", t)
			}
			out = append(out, c)
			continue
		}
		if !fb.Tree.IsZero() && !fa.Tree.IsZero() {
			out = append(out, treeChanges(fa, fb)...)
			if c := fieldsChange("files", k, fileFields(fa), fileFields(fb)); c != nil {
				out = append(out, c...)
			}
			continue
		}
		c := Change{Section: "files", Item: k, Op: Changed, Fields: fieldDiff(fileFields(fa), fileFields(fb))}
		ta, oka := fileText(fa)
		tb, okb := fileText(fb)
		if ta != tb {
			if oka && okb {
				c.Text = lineDiff(ta, tb)
			} else {
				c.Fields = append(c.Fields, Field{Name: "content", Old: "(binary)", New: "(binary)"})
			}
		}
		if len(c.Fields) > 0 || c.Text != "" {
			out = append(out, c)
		}
	}
	for _, k := range ka.order {
		if _, ok := kb.items[k]; !ok {
			out = append(out, Change{Section: "files", Item: k, Op: Removed})
		}
	}
	return out
}

// fileFields are an entry's fields but its content, which is compared
// as text.
func fileFields(f manifest.File) map[string]string {
	m := flatten(f)
	delete(m, "content")
	return m
}

// maxText bounds the content compared as text.
const maxText = 64 << 10

// fileText returns the entry's content when it is text: inline content,
// or a src file's.
func fileText(f manifest.File) (string, bool) {
	switch {
	case f.Content != nil:
		return *f.Content, true
	case !f.Src.IsZero():
		return readText(f.Src.Path)
	}
	return "", false
}

func readText(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > maxText || !isText(b) {
		return "", false
	}
	return string(b), true
}

func isText(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

// treeChanges compares the files of two trees copied to the same place.
func treeChanges(a, b manifest.File) []Change {
	dest := b.Dest
	if dest == "" {
		dest = "/"
	}
	fa, fb := treeFiles(a.Tree.Path), treeFiles(b.Tree.Path)
	var names []string
	for n := range fb {
		names = append(names, n)
	}
	for n := range fa {
		if _, ok := fb[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []Change
	for _, n := range names {
		item := filepath.Join(dest, n)
		pa, oka := fa[n]
		pb, okb := fb[n]
		switch {
		case !oka:
			c := Change{Section: "files", Item: item, Op: Added}
			if t, ok := readText(pb); ok {
				c.Text = lineDiff("", t)
			}
			out = append(out, c)
		case !okb:
			out = append(out, Change{Section: "files", Item: item, Op: Removed})
		default:
			ba, _ := os.ReadFile(pa)
			bb, _ := os.ReadFile(pb)
			ia, _ := os.Lstat(pa)
			ib, _ := os.Lstat(pb)
			c := Change{Section: "files", Item: item, Op: Changed}
			if ia != nil && ib != nil && ia.Mode() != ib.Mode() {
				c.Fields = append(c.Fields, Field{Name: "mode", Old: ia.Mode().String(), New: ib.Mode().String()})
			}
			if string(ba) != string(bb) {
				ta, oka := readText(pa)
				tb, okb := readText(pb)
				if oka && okb {
					c.Text = lineDiff(ta, tb)
				} else {
					c.Fields = append(c.Fields, Field{Name: "content", Old: "(binary)", New: "(binary)"})
				}
			}
			if len(c.Fields) > 0 || c.Text != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// treeFiles maps the relative paths of a tree's entries to their paths.
func treeFiles(root string) map[string]string {
	out := map[string]string{}
	_ = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = p
		return nil
	})
	return out
}

// hookChanges matches hooks by phase and order within it.
func hookChanges(a, b []manifest.Hook) []Change {
	key := func(h manifest.Hook) string { return h.Phase }
	ka, kb := keyed(a, key), keyed(b, key)
	var out []Change
	for _, k := range kb.order {
		hb := kb.items[k]
		ha, ok := ka.items[k]
		if !ok {
			out = append(out, Change{Section: "run", Item: k, Op: Added, Fields: fieldDiff(nil, flatten(hb))})
			continue
		}
		c := Change{Section: "run", Item: k, Op: Changed, Fields: fieldDiff(hookFields(ha), hookFields(hb))}
		ta, tb := hookText(ha), hookText(hb)
		if ta != tb {
			c.Text = lineDiff(ta, tb)
		}
		if len(c.Fields) > 0 || c.Text != "" {
			out = append(out, c)
		}
	}
	for _, k := range ka.order {
		if _, ok := kb.items[k]; !ok {
			out = append(out, Change{Section: "run", Item: k, Op: Removed})
		}
	}
	return out
}

func hookFields(h manifest.Hook) map[string]string {
	m := flatten(h)
	delete(m, "inline")
	return m
}

func hookText(h manifest.Hook) string {
	if !h.Script.IsZero() {
		t, _ := readText(h.Script.Path)
		return t
	}
	return h.Inline
}

// layoutChanges compares the table and size, then partitions by name.
func layoutChanges(a, b *manifest.Layout) []Change {
	top := func(l *manifest.Layout) map[string]string {
		if l == nil {
			return map[string]string{}
		}
		m := map[string]string{"table": l.Table}
		if l.Size != nil {
			m["size"] = l.Size.String()
		}
		return m
	}
	out := fieldsChange("layout", "layout", top(a), top(b))
	parts := func(l *manifest.Layout) []manifest.Partition {
		if l == nil {
			return nil
		}
		return l.Partitions
	}
	pf := func(p manifest.Partition) string { return "partition " + p.Name }
	ka, kb := keyed(parts(a), pf), keyed(parts(b), pf)
	for _, k := range kb.order {
		pb := kb.items[k]
		pa, ok := ka.items[k]
		if !ok {
			out = append(out, Change{Section: "layout", Item: k, Op: Added, Fields: fieldDiff(nil, partFields(pb))})
			continue
		}
		out = append(out, fieldsChange("layout", k, partFields(pa), partFields(pb))...)
	}
	for _, k := range ka.order {
		if _, ok := kb.items[k]; !ok {
			out = append(out, Change{Section: "layout", Item: k, Op: Removed})
		}
	}
	return out
}

func partFields(p manifest.Partition) map[string]string {
	m := flatten(p)
	for k := range m {
		if strings.HasPrefix(k, "size.") {
			delete(m, k)
		}
	}
	m["size"] = p.Size.String()
	return m
}

// lockChanges reports pinned packages added, removed or at another
// version (section "lock").
func lockChanges(a, b *stages.Lock) []Change {
	pins := func(l *stages.Lock) []stages.LockedPackage {
		if l == nil {
			return nil
		}
		return l.Packages
	}
	key := func(p stages.LockedPackage) string { return p.Name + ":" + p.Arch }
	ka, kb := keyed(pins(a), key), keyed(pins(b), key)
	var out []Change
	for _, k := range kb.order {
		pb := kb.items[k]
		pa, ok := ka.items[k]
		switch {
		case !ok:
			out = append(out, Change{Section: "lock", Item: k, Op: Added, Fields: []Field{{Name: "version", New: pb.Version}}})
		case pa.Version != pb.Version || pa.SHA256 != pb.SHA256:
			out = append(out, Change{Section: "lock", Item: k, Op: Changed, Fields: []Field{{Name: "version", Old: pa.Version, New: pb.Version}}})
		}
	}
	for _, k := range ka.order {
		if _, ok := kb.items[k]; !ok {
			out = append(out, Change{Section: "lock", Item: k, Op: Removed, Fields: []Field{{Name: "version", Old: ka.items[k].Version}}})
		}
	}
	return out
}

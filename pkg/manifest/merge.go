package manifest

import (
	"reflect"
	"slices"
)

// merge returns child laid over base, by the rules documented in
// docs/manifest.md ("extends"):
//
//   - name, description, extends, apiVersion: the child's, never inherited.
//   - epoch, hostname, timezone, locale: the child's when it writes them.
//   - bootstrap: each key the child writes replaces the base's; a child that
//     changes distro replaces the whole section.
//   - packages: install and remove append; a package the child removes is
//     dropped from the inherited install list and the other way round.
//   - files, run: the child's entries are appended (applied after the base's).
//   - fstab: remove appends; add appends, an entry with the same mount point
//     replacing the inherited one.
//   - groups, users: merged by name; the keys a child entry writes replace
//     those of the inherited entry of that name, new names are appended.
//   - services: enable and disable append; enabling a service the base
//     disables (or the other way round) moves it.
//   - layout, outputs: replaced as a whole when the child writes them.
//
// Neither argument is modified.
func merge(base, child *Manifest) *Manifest {
	m := *child
	m.Meta = overlayMeta(base.Meta, child.Meta, "name", "description", "extends", "apiVersion")
	if !child.Has("epoch") {
		m.Epoch = base.Epoch
	}
	for _, k := range []struct {
		key string
		dst *string
		src string
	}{
		{"hostname", &m.Hostname, base.Hostname},
		{"timezone", &m.Timezone, base.Timezone},
		{"locale", &m.Locale, base.Locale},
	} {
		if !child.Has(k.key) {
			*k.dst = k.src
		}
	}

	if child.Bootstrap.Has("distro") && child.Bootstrap.Distro != base.Bootstrap.Distro {
		m.Bootstrap = child.Bootstrap
	} else {
		overlay(&m.Bootstrap, base.Bootstrap, child.Bootstrap)
	}

	m.Packages = child.Packages
	m.Packages.Meta = overlayMeta(base.Packages.Meta, child.Packages.Meta)
	m.Packages.Install = union(without(base.Packages.Install, child.Packages.Remove), child.Packages.Install)
	m.Packages.Remove = union(without(base.Packages.Remove, child.Packages.Install), child.Packages.Remove)

	m.Files = concat(base.Files, child.Files)
	m.Run = concat(base.Run, child.Run)

	m.Fstab.Meta = overlayMeta(base.Fstab.Meta, child.Fstab.Meta)
	m.Fstab.Remove = union(base.Fstab.Remove, child.Fstab.Remove)
	m.Fstab.Add = mergeBy(base.Fstab.Add, child.Fstab.Add,
		func(e FstabEntry) string { return e.File }, func(dst *FstabEntry, b, c FstabEntry) { *dst = c })

	m.Groups = mergeBy(base.Groups, child.Groups, func(g Group) string { return g.Name },
		func(dst *Group, b, c Group) { overlay(dst, b, c) })
	m.Users = mergeBy(base.Users, child.Users, func(u User) string { return u.Name },
		func(dst *User, b, c User) { overlay(dst, b, c) })

	m.Services.Meta = overlayMeta(base.Services.Meta, child.Services.Meta)
	m.Services.Enable = union(without(base.Services.Enable, child.Services.Disable), child.Services.Enable)
	m.Services.Disable = union(without(base.Services.Disable, child.Services.Enable), child.Services.Disable)

	if !child.Has("layout") {
		m.Layout = base.Layout
	}
	if !child.Has("outputs") {
		m.Outputs = base.Outputs
	}
	return &m
}

// overlayMeta combines positions: the child's keys win; keys in skip are
// taken from the child only.
func overlayMeta(base, child Meta, skip ...string) Meta {
	// A section only the base writes keeps the base's position and path.
	out := Meta{pos: child.pos, path: child.path, fields: map[string]Position{}}
	if !child.written() {
		out.pos, out.path = base.pos, base.path
	}
	for k, p := range base.fields {
		if !slices.Contains(skip, k) {
			out.fields[k] = p
		}
	}
	for k, p := range child.fields {
		out.fields[k] = p
	}
	return out
}

// overlay sets *dst to base with every field the child wrote replaced by
// the child's value. T is a struct that embeds Meta.
func overlay[T any](dst *T, base, child T) {
	*dst = base
	dv := reflect.ValueOf(dst).Elem()
	cv := reflect.ValueOf(child)
	cm := any(&child).(hasMeta).meta()
	for name, f := range infoOf(dv.Type()).fields {
		if cm.Has(name) {
			dv.FieldByIndex(f.index).Set(cv.FieldByIndex(f.index))
		}
	}
	*any(dst).(hasMeta).meta() = overlayMeta(*any(&base).(hasMeta).meta(), *cm)
}

func concat[T any](a, b []T) []T {
	if len(a)+len(b) == 0 {
		return nil
	}
	return append(append(make([]T, 0, len(a)+len(b)), a...), b...)
}

// union appends the items of b missing from a.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func without(a, drop []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// mergeBy merges lists of named entries: an entry of b whose key is in a is
// combined with it in place, others are appended.
func mergeBy[T any](a, b []T, key func(T) string, combine func(dst *T, base, child T)) []T {
	out := slices.Clone(a)
	for _, c := range b {
		i := slices.IndexFunc(out, func(x T) bool { return key(x) == key(c) })
		if i < 0 {
			out = append(out, c)
			continue
		}
		combine(&out[i], out[i], c)
	}
	return out
}

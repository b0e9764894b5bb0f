package manifest

import (
	"reflect"
	"slices"
	"strings"
)

// SchemaID is the $id of the generated schema.
const SchemaID = "https://imgplan.dev/schema/imgplan-v1.json"

// Schema returns a JSON Schema (draft 2020-12) for manifests, generated
// from the Go types: every field's yaml name, doc tag and required tag,
// and the tables of distros, output types and hook phases.
func Schema() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(reflect.TypeOf(Manifest{}))
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "imgplan manifest"
	root["$defs"] = g.defs
	return root
}

type schemaGen struct {
	defs map[string]any
}

var (
	modeSchema = map[string]any{
		"description": "Octal permission bits, like \"0644\".",
		"oneOf": []any{
			map[string]any{"type": "string", "pattern": "^(0o)?[0-7]{1,5}$"},
			map[string]any{"type": "integer", "minimum": 0},
		},
	}
	sizeSchema = map[string]any{
		"description": "Bytes, with an optional unit: B, K/KiB, M/MiB, G/GiB, T/TiB (1024-based) or kB, MB, GB, TB (1000-based).",
		"oneOf": []any{
			map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?\s*([KkMmGgTt](i?B)?|[kKMGT]B|B)?$`},
			map[string]any{"type": "integer", "minimum": 1},
		},
	}
	extentSchema = map[string]any{
		"description": "A size, a percentage (\"50%\") or \"rest\".",
		"oneOf": []any{
			map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?\s*([KkMmGgTt](i?B)?|[kKMGT]B|B)?|[0-9]{1,3}%|rest)$`},
			map[string]any{"type": "integer", "minimum": 1},
		},
	}
)

// enums lists the fields whose values come from a table.
func enums(t reflect.Type, field string) []string {
	switch t.Name() + "." + field {
	case "Bootstrap.Distro":
		return DistroNames()
	case "Hook.Phase":
		return Phases()
	case "Layout.Table":
		return []string{"msdos", "gpt"}
	case "Bootstrap.Variant":
		return debVariants
	case "SquashfsOptions.Compression":
		return squashfsCompressions
	case "ArchiveOptions.Compression":
		return archiveCompressions
	case "PXEOptions.Boot":
		return pxeBoots
	case "PXEOptions.Compression":
		return squashfsCompressions
	}
	return nil
}

func (g *schemaGen) typeSchema(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeOf(Mode(0)):
		return modeSchema
	case reflect.TypeOf(Size(0)):
		return sizeSchema
	case reflect.TypeOf(Extent{}):
		return extentSchema
	case reflect.TypeOf(LocalPath{}):
		return map[string]any{"type": "string", "description": "A local path, relative to the manifest that names it."}
	case reflect.TypeOf(Arch("")):
		var names []string
		for a, n := range arches {
			names = append(names, string(a), n.deb)
		}
		return map[string]any{"type": "string", "enum": uniqueSorted(names)}
	case reflect.TypeOf(Output{}):
		return g.ref("Output", g.outputSchema)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeSchema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem())}
	case reflect.Struct:
		return g.ref(t.Name(), func() map[string]any { return g.structSchema(t) })
	}
	panic("manifest: no schema for " + t.String())
}

func (g *schemaGen) ref(name string, build func() map[string]any) map[string]any {
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = nil // break recursion
		g.defs[name] = build()
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		s := copyMap(g.typeSchema(f.Type))
		if doc := f.Tag.Get("doc"); doc != "" {
			s["description"] = doc
		}
		if e := enums(t, f.Name); e != nil {
			s["enum"] = e
		}
		props[name] = s
		if f.Tag.Get("required") == "true" {
			required = append(required, name)
		}
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// outputSchema is one alternative per output type: the common keys plus
// that type's options.
func (g *schemaGen) outputSchema() map[string]any {
	var alts []any
	for _, name := range OutputTypeNames() {
		spec := OutputTypes[OutputType(name)]
		s := g.structSchema(reflect.TypeOf(spec.NewOptions()).Elem())
		props := s["properties"].(map[string]any)
		props["type"] = map[string]any{"const": name, "description": spec.Doc}
		props["path"] = map[string]any{"type": "string", "description": "Where to write it, relative to the output directory. Default " + spec.DefaultPath + "."}
		req, _ := s["required"].([]string)
		s["required"] = append([]string{"type"}, req...)
		s["title"] = name
		alts = append(alts, s)
	}
	return map[string]any{"oneOf": alts}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func uniqueSorted(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

package manifest

import (
	"fmt"
	"io"
	"reflect"
	"strings"
)

// WriteReference writes the Markdown reference of every manifest field,
// generated from the same Go types, doc tags and tables as the decoder and
// the JSON Schema (docs/manifest-reference.md is this output).
func WriteReference(w io.Writer) error {
	r := &refWriter{w: w, seen: map[reflect.Type]bool{}}
	fmt.Fprintln(w, "# Manifest reference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the Go types in `pkg/manifest` by `imgplan schema --format markdown`;")
	fmt.Fprintln(w, "do not edit. The guide to the format is [manifest.md](manifest.md).")
	r.section("Top level", reflect.TypeOf(Manifest{}))
	for len(r.queue) > 0 {
		t := r.queue[0]
		r.queue = r.queue[1:]
		r.section(t.Name(), t)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Outputs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every output has `type` and `path`; the other keys depend on the type.")
	for _, name := range OutputTypeNames() {
		spec := OutputTypes[OutputType(name)]
		fmt.Fprintf(w, "\n### %s\n\n%s Default path: `%s`.\n", name, spec.Doc, spec.DefaultPath)
		t := reflect.TypeOf(spec.NewOptions()).Elem()
		if len(infoOf(t).names) == 0 {
			fmt.Fprintln(w, "\nNo options.")
			continue
		}
		r.table(t)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Distros")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| distro | family | keys it accepts | keys it needs |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, name := range DistroNames() {
		d := Distros[name]
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, d.Family, strings.Join(d.Fields, ", "), strings.Join(d.Required, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Partition types")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| type | MBR | GPT type GUID | default fs |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, name := range []string{"linux", "swap", "esp", "bios_grub"} {
		t := PartTypes[name]
		mbr := "-"
		if t.MBR != 0 {
			mbr = fmt.Sprintf("0x%02x", t.MBR)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, mbr, t.GPT, t.FS)
	}
	return nil
}

type refWriter struct {
	w     io.Writer
	seen  map[reflect.Type]bool
	queue []reflect.Type
}

func (r *refWriter) section(title string, t reflect.Type) {
	r.seen[t] = true
	fmt.Fprintf(r.w, "\n## %s\n", title)
	r.table(t)
}

func (r *refWriter) table(t reflect.Type) {
	fmt.Fprintln(r.w)
	fmt.Fprintln(r.w, "| key | type | required | description |")
	fmt.Fprintln(r.w, "|---|---|---|---|")
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		req := ""
		if f.Tag.Get("required") == "true" {
			req = "yes"
		}
		doc := f.Tag.Get("doc")
		if e := enums(t, f.Name); e != nil {
			doc += " One of: " + strings.Join(e, ", ") + "."
		}
		fmt.Fprintf(r.w, "| `%s` | %s | %s | %s |\n", name, r.typeName(f.Type), req, strings.ReplaceAll(doc, "|", `\|`))
	}
}

func (r *refWriter) typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(Mode(0)):
		return "mode"
	case reflect.TypeOf(Size(0)):
		return "size"
	case reflect.TypeOf(Extent{}):
		return "size, % or rest"
	case reflect.TypeOf(LocalPath{}):
		return "local path"
	case reflect.TypeOf(Arch("")):
		return "architecture"
	case reflect.TypeOf(Output{}):
		return "[output](#outputs)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return r.typeName(t.Elem())
	case reflect.Slice:
		return "list of " + r.typeName(t.Elem())
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Struct:
		if !r.seen[t] {
			r.seen[t] = true
			r.queue = append(r.queue, t)
		}
		return fmt.Sprintf("[%s](#%s)", t.Name(), strings.ToLower(t.Name()))
	}
	return "string"
}

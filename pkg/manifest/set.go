package manifest

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var setPathRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])*)*$`)

// applyOverride applies one "path=value" or "path+=value" to m. Problems are
// reported at the position of the text in the flag ("--set path:1:col").
func applyOverride(m *Manifest, s string, ps *problems) {
	path, value, found := strings.Cut(s, "=")
	if !found {
		// Not echoed: the argument may hold a password hash or a secret.
		ps.add(Position{File: "--set", Line: 1, Col: 1}, "expected path=value or path+=value")
		return
	}
	appendTo := strings.HasSuffix(path, "+")
	path = strings.TrimSuffix(path, "+")
	file := "--set " + path
	at := func(col int) Position { return Position{File: file, Line: 1, Col: col} }
	if !setPathRe.MatchString(path) {
		ps.add(at(1), "invalid path %q: write keys separated by dots, with [n] for list items (outputs[0].size)", path)
		return
	}
	valueCol := len(s) - len(value) + 1

	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		ps.add(at(valueCol), "%s: value is not valid YAML: %v", path, err)
		return
	}
	var node *yaml.Node
	if len(doc.Content) == 0 {
		node = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: 1, Column: 1}
	} else {
		node = doc.Content[0]
	}
	shift(node, valueCol-1)

	target, key, meta, err := navigate(reflect.ValueOf(m).Elem(), path, at(1))
	if err != nil {
		ps.add(at(1), "%s: %v", path, err)
		return
	}
	d := &decoder{file: file, dir: filepath.Dir(m.Path), problems: ps}
	if appendTo {
		if target.Kind() != reflect.Slice {
			ps.add(at(1), "%s: += appends to a list, and this is not one", path)
			return
		}
		add := reflect.New(target.Type()).Elem()
		if node.Kind == yaml.SequenceNode {
			d.decode(node, add, path)
		} else {
			elem := reflect.New(target.Type().Elem()).Elem()
			d.decode(node, elem, path)
			add = reflect.Append(add, elem)
		}
		target.Set(reflect.AppendSlice(target, add))
	} else {
		d.decode(node, target, path)
	}
	if meta != nil {
		meta.mark(key, at(valueCol))
		items := []*yaml.Node{node}
		if node.Kind == yaml.SequenceNode {
			items = node.Content
		}
		for _, c := range items {
			if c.Kind == yaml.ScalarNode {
				meta.markItem(key, c.Value, d.pos(c))
			}
		}
	}
}

// shift moves node positions right by cols (all on line 1 of the flag).
func shift(n *yaml.Node, cols int) {
	if n.Line == 1 {
		n.Column += cols
	}
	for _, c := range n.Content {
		shift(c, cols)
	}
}

var stepRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)((?:\[[0-9]+\])*)$`)
var indexRe = regexp.MustCompile(`\[([0-9]+)\]`)

// navigate finds the value a dotted path names. It returns the value, the
// last key and the Meta of the struct holding it, so the override can be
// recorded as written. A section the manifest did not write gets pos.
func navigate(v reflect.Value, path string, pos Position) (reflect.Value, string, *Meta, error) {
	var meta *Meta
	var key string
	steps := strings.Split(path, ".")
	for i, step := range steps {
		m := stepRe.FindStringSubmatch(step)
		name := m[1]
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return v, "", nil, fmt.Errorf("%q is not a mapping", strings.Join(steps[:i], "."))
		}
		if out, ok := v.Addr().Interface().(*Output); ok {
			if name == "type" {
				return v, "", nil, fmt.Errorf("an output's type cannot be changed with --set; set the whole output instead")
			}
			if !commonOutputKeys[name] {
				if out.Options == nil {
					return v, "", nil, fmt.Errorf("output has no type")
				}
				v = reflect.ValueOf(out.Options).Elem()
			}
		}
		si := infoOf(v.Type())
		f, ok := si.fields[name]
		if !ok {
			return v, "", nil, fmt.Errorf("unknown field%s", suggest(name, si.names))
		}
		if hm, ok := v.Addr().Interface().(hasMeta); ok {
			meta = hm.meta()
			if !meta.written() {
				*meta = Meta{pos: pos, path: strings.Join(steps[:i], ".")}
			}
		} else {
			meta = nil
		}
		key = name
		v = v.FieldByIndex(f.index)
		for _, im := range indexRe.FindAllStringSubmatch(m[2], -1) {
			i, _ := strconv.Atoi(im[1])
			if v.Kind() != reflect.Slice {
				return v, "", nil, fmt.Errorf("%q is not a list", name)
			}
			if i >= v.Len() {
				return v, "", nil, fmt.Errorf("%s has %d items; there is no [%d]", name, v.Len(), i)
			}
			v = v.Index(i)
			// An indexed item's own keys are recorded on the item.
			meta = nil
		}
	}
	return v, key, meta, nil
}

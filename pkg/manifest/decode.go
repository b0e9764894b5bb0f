package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Limits that keep hostile input from exhausting memory or time.
const (
	maxManifestBytes = 4 << 20
	// maxNodes bounds the nodes visited while decoding one document,
	// counting every expansion of an alias, so an alias bomb fails fast.
	maxNodes = 100_000
)

// decoder turns a yaml.Node tree into Go values, strictly: unknown keys,
// duplicate keys, wrong types and bad scalars are all recorded as problems
// with their positions, and decoding carries on past them so that one run
// reports every problem in the document.
type decoder struct {
	file     string
	dir      string // relative local paths are joined to it
	problems *problems
	visited  int
	tooBig   bool
}

// nodeDecoder is implemented by types that decode themselves from a node
// (outputs, whose keys depend on their type).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

// scalarDecoder is implemented by leaf types written as one scalar (modes,
// sizes, architectures). The error message needs no position.
type scalarDecoder interface {
	decodeScalar(value string, n *yaml.Node) error
}

var (
	nodeDecoderType   = reflect.TypeOf((*nodeDecoder)(nil)).Elem()
	scalarDecoderType = reflect.TypeOf((*scalarDecoder)(nil)).Elem()
)

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.problems.add(d.pos(n), "%s", msg)
}

// resolve follows aliases and counts visits against the node budget.
func (d *decoder) resolve(n *yaml.Node) (*yaml.Node, bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
		d.visited++
	}
	d.visited++
	if d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, "", "document expands to more than %d nodes (aliases expanding too much?)", maxNodes)
		}
		return n, false
	}
	return n, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return fmt.Sprintf("the string %q", n.Value)
	}
	return "an unsupported node"
}

// decode stores n into v (which must be settable).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n, ok := d.resolve(n)
	if !ok {
		return
	}
	if v.CanAddr() {
		if pv := v.Addr(); pv.Type().Implements(nodeDecoderType) {
			pv.Interface().(nodeDecoder).decodeNode(d, n, path)
			return
		}
		if pv := v.Addr(); pv.Type().Implements(scalarDecoderType) {
			if isNull(n) {
				v.SetZero()
				return
			}
			if n.Kind != yaml.ScalarNode {
				d.errorf(n, path, "expected a single value, got %s", describe(n))
				return
			}
			if err := pv.Interface().(scalarDecoder).decodeScalar(n.Value, n); err != nil {
				d.errorf(n, path, "%v", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.String:
		if isNull(n) {
			v.SetString("")
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := parseInt(n, v.Type().Bits())
		if err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		v.SetInt(i)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path, nil)
	default:
		panic(fmt.Sprintf("manifest: cannot decode into %s", v.Type()))
	}
}

var decimal = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

func parseInt(n *yaml.Node, bits int) (int64, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return 0, fmt.Errorf("expected a whole number, got %s", describe(n))
	}
	s := strings.ReplaceAll(n.Value, "_", "")
	if !decimal.MatchString(s) {
		if len(s) > 1 && s[0] == '0' && decimal.MatchString(s[1:]) {
			return 0, fmt.Errorf("%q: a whole number must not start with 0 (octal or decimal?)", n.Value)
		}
		return 0, fmt.Errorf("expected a whole number, got %s", describe(n))
	}
	i, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", n.Value)
	}
	return i, nil
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	// An item that fails to decode is left out, so that validation does
	// not report it a second time as an empty value.
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, c := range n.Content {
		before := len(d.problems.list)
		item := reflect.New(v.Type().Elem()).Elem()
		d.decode(c, item, fmt.Sprintf("%s[%d]", path, i))
		if d.tooBig {
			return
		}
		if len(d.problems.list) == before {
			out = reflect.Append(out, item)
		}
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetZero()
		return
	}
	pairs, ok := d.pairs(n, path)
	if !ok {
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(pairs))
	for _, p := range pairs {
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.value, ev, joinPath(path, p.key.Value))
		out.SetMapIndex(reflect.ValueOf(p.key.Value), ev)
	}
	v.Set(out)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type pair struct{ key, value *yaml.Node }

// pairs lists a mapping's key/value pairs with merge keys (<<) expanded;
// explicit keys win over merged ones. Duplicate explicit keys and non-string
// keys are problems.
func (d *decoder) pairs(n *yaml.Node, path string) ([]pair, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	var out []pair
	seen := map[string]*yaml.Node{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			d.errorf(k, path, "keys must be strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, d.mergePairs(val, path)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, path, "duplicate key %q (first at line %d, column %d)", k.Value, first.Line, first.Column)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key
		out = append(out, p)
	}
	return out, true
}

func (d *decoder) mergePairs(v *yaml.Node, path string) []pair {
	v, ok := d.resolve(v)
	if !ok {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		ps, _ := d.pairs(v, path)
		return ps
	case yaml.SequenceNode:
		// Earlier mappings in a merge list take precedence.
		var out []pair
		seen := map[string]bool{}
		for _, m := range v.Content {
			for _, p := range d.mergePairs(m, path) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.errorf(v, path, "a merge (<<) needs a mapping or a list of mappings, got %s", describe(v))
	return nil
}

type fieldInfo struct {
	index []int
	name  string
}

type structInfo struct {
	fields map[string]fieldInfo
	names  []string
}

var manifestType = reflect.TypeOf(Manifest{})

var structCache sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string]fieldInfo{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		si.fields[name] = fieldInfo{index: f.Index, name: name}
		si.names = append(si.names, name)
	}
	structCache.Store(t, si)
	return si
}

// decodeStruct decodes a mapping into a struct. unknown, when non-nil,
// receives keys the struct has no field for instead of reporting them.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, unknown func(pair)) {
	if isNull(n) {
		v.SetZero()
		return
	}
	pairs, ok := d.pairs(n, path)
	if !ok {
		if hm, ok := v.Addr().Interface().(hasMeta); ok {
			*hm.meta() = Meta{pos: d.pos(n), path: path, bad: true}
		}
		return
	}
	si := infoOf(v.Type())
	var m *Meta
	if hm, ok := v.Addr().Interface().(hasMeta); ok {
		m = hm.meta()
		*m = Meta{pos: d.pos(n), path: path, fields: map[string]Position{}}
	}
	for _, p := range pairs {
		f, ok := si.fields[p.key.Value]
		if !ok {
			if v.Type() == manifestType && strings.HasPrefix(p.key.Value, "x-") {
				continue // extension field: a place for YAML anchors
			}
			if unknown != nil {
				unknown(p)
				continue
			}
			d.errorf(p.key, path, "unknown field %q%s", p.key.Value, suggest(p.key.Value, si.names))
			continue
		}
		if m != nil {
			m.fields[f.name] = d.pos(p.value)
			// Scalar items of a list are located by value, so that a bad
			// package name points at itself even after extends merged
			// lists from several files.
			if seq, _ := d.resolve(p.value); seq.Kind == yaml.SequenceNode {
				for _, c := range seq.Content {
					if c.Kind == yaml.ScalarNode {
						m.fields[f.name+"\x00"+c.Value] = d.pos(c)
					}
				}
			}
		}
		d.decode(p.value, v.FieldByIndex(f.index), joinPath(path, f.name))
		if d.tooBig {
			return
		}
	}
}

// suggest names the closest known key, if one is close enough to be a typo.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if dist := levenshtein(strings.ToLower(key), n); dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var lineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads one YAML document. Syntax errors become problems with the
// best position the parser gives: yaml.v3 reports lines, not columns (and
// omits the line when it is the first), so the column is where that line's
// content starts.
func parse(file string, data []byte, ps *problems) *yaml.Node {
	if len(data) > maxManifestBytes {
		ps.add(Position{File: file, Line: 1, Col: 1}, "file is larger than %d bytes", maxManifestBytes)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(Position{File: file, Line: 1, Col: 1}, "empty document")
			return nil
		}
		if pos, ok := findTab(file, data); ok && (strings.Contains(err.Error(), "cannot start any token") || strings.Contains(err.Error(), "tab character")) {
			ps.add(pos, "tab character in indentation (YAML indents with spaces)")
			return nil
		}
		ps.add(syntaxPos(file, data, err), "%s", syntaxMsg(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.add(Position{File: file, Line: extra.Line, Col: extra.Column}, "a manifest holds one YAML document; found another")
	} else if !errors.Is(err, io.EOF) {
		ps.add(syntaxPos(file, data, err), "%s", syntaxMsg(err))
	}
	if len(doc.Content) == 0 {
		ps.add(Position{File: file, Line: 1, Col: 1}, "empty document")
		return nil
	}
	return doc.Content[0]
}

func syntaxMsg(err error) string {
	msg := err.Error()
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		return "yaml: " + m[2]
	}
	return msg
}

// parserErrRe matches yaml.v3's parser (not scanner) errors. yaml.v3
// reports a parser error's line 0-based (the start of the construct that
// failed), and a scanner error's 1-based; it omits line 0 altogether.
var parserErrRe = regexp.MustCompile(`^did not find expected (<document start>|key|'-' indicator|',' or '\]'|',' or '\}'|node content)$|^found (incompatible YAML document|duplicate %YAML directive|duplicate %TAG directive|undefined tag handle)$`)

func syntaxPos(file string, data []byte, err error) Position {
	line := 1
	if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		if parserErrRe.MatchString(m[2]) {
			line++
		}
	}
	lines := bytes.Split(data, []byte("\n"))
	col := 1
	if line-1 < len(lines) {
		l := lines[line-1]
		col = len(l) - len(bytes.TrimLeft(l, " ")) + 1
	}
	return Position{File: file, Line: line, Col: col}
}

// findTab finds the first tab in a line's leading whitespace; yaml.v3
// reports that error without a position.
func findTab(file string, data []byte) (Position, bool) {
	for i, l := range bytes.Split(data, []byte("\n")) {
		for j, c := range l {
			if c == '\t' {
				// A tab after only spaces, before content.
				rest := bytes.TrimLeft(l[j:], " \t")
				if len(rest) > 0 && rest[0] != '#' {
					return Position{File: file, Line: i + 1, Col: j + 1}, true
				}
				break
			}
			if c != ' ' {
				break
			}
		}
	}
	return Position{}, false
}

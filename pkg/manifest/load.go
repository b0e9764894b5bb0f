package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// Option configures Load.
type Option func(*options)

type options struct {
	overrides []string
	epoch     *int64
}

// WithOverrides applies "path=value" (replace) and "path+=value" (append to
// a list) overrides after extends are merged, as imgplan's --set flag does.
// Values are YAML: --set packages.install+=[htop,strace].
func WithOverrides(sets ...string) Option {
	return func(o *options) { o.overrides = append(o.overrides, sets...) }
}

// WithEpoch overrides the manifest's epoch, as SOURCE_DATE_EPOCH does.
func WithEpoch(epoch int64) Option {
	return func(o *options) { o.epoch = &epoch }
}

// EpochFromEnv reads SOURCE_DATE_EPOCH; ok is false when it is unset.
func EpochFromEnv() (epoch int64, ok bool, err error) {
	s, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a non-negative whole number of seconds", s)
	}
	return v, true, nil
}

// Load reads the manifest at path with everything it extends, applies the
// overrides and validates the result. On a problem in the manifests it
// returns an error wrapping ErrInvalid that lists every problem found, each
// with its file:line:column; the manifest is returned as far as it could be
// read, for tools that show partial results.
func Load(path string, opts ...Option) (*Manifest, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	ps := &problems{}
	l := &loader{}
	m, err := l.load(filepath.Clean(path), nil, Position{}, ps)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, ps.err()
	}
	for _, s := range o.overrides {
		applyOverride(m, s, ps)
	}
	if o.epoch != nil {
		m.Epoch = o.epoch
	}
	if !l.broken {
		validate(m, ps)
	}
	return m, ps.err()
}

// Decode reads one manifest document from data, without following extends,
// resolving paths or validating. file names the source in positions.
func Decode(file string, data []byte) (*Manifest, error) {
	ps := &problems{}
	m := decodeFile(file, data, ps)
	return m, ps.err()
}

func decodeFile(file string, data []byte, ps *problems) *Manifest {
	root := parse(file, data, ps)
	if root == nil {
		return nil
	}
	m := &Manifest{}
	d := &decoder{file: file, dir: filepath.Dir(file), problems: ps}
	d.decode(root, reflect.ValueOf(m).Elem(), "")
	if root.Kind != 4 /* yaml.MappingNode */ {
		return nil
	}
	return m
}

type loader struct {
	// broken is set when a base could not be read: the merged manifest
	// lacks what the base holds, so only the reading problems are told.
	broken bool
}

const maxExtendsDepth = 32

// load reads path and its bases. chain holds the absolute paths of the
// files that extend this one, for cycle detection; from is where this file
// was named (zero for the top file).
func (l *loader) load(path string, chain []string, from Position, ps *problems) (*Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	for i, c := range chain {
		if c == abs {
			cycle := append(append([]string{}, chain[i:]...), abs)
			for j := range cycle {
				cycle[j] = strconv.Quote(relTo(cycle[j]))
			}
			ps.add(from, "extends: cycle: %s", strings.Join(cycle, " -> "))
			l.broken = true
			return nil, nil
		}
	}
	if len(chain) >= maxExtendsDepth {
		ps.add(from, "extends: chain deeper than %d files", maxExtendsDepth)
		l.broken = true
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if from.File == "" {
			return nil, err
		}
		ps.add(from, "extends: cannot read %q: %v", path, unwrapPathErr(err))
		l.broken = true
		return nil, nil
	}
	m := decodeFile(path, data, ps)
	if m == nil {
		return nil, nil
	}
	if m.APIVersion != APIVersion {
		if m.Has("apiVersion") {
			ps.add(m.At("apiVersion"), "apiVersion: unsupported version %q (this imgplan reads %q)", m.APIVersion, APIVersion)
		} else {
			ps.add(m.Pos(), "missing required field \"apiVersion\" (write apiVersion: %s)", APIVersion)
		}
	}
	m.Path = path
	m.Chain = []string{path}
	if m.Extends == "" {
		return m, nil
	}
	basePath := filepath.Join(filepath.Dir(path), m.Extends)
	base, err := l.load(basePath, append(chain, abs), m.At("extends"), ps)
	if err != nil || base == nil {
		return m, err
	}
	merged := merge(base, m)
	merged.Chain = append([]string{path}, base.Chain...)
	return merged, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func relTo(abs string) string {
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if r, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return abs
}

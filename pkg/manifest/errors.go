package manifest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// ErrInvalid is wrapped by every error that reports a problem in a manifest
// (as opposed to an I/O failure); the CLI maps it to exit status 2.
var ErrInvalid = errors.New("invalid manifest")

// Position is where a value was written: a file, a 1-based line and column.
// A value set with --set has File "--set PATH" (the path it sets), line 1,
// and the column within the flag's argument.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem at one position.
type Error struct {
	Pos Position
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalid) true for every manifest problem.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// problems collects errors; the zero value is ready to use.
type problems struct {
	list []*Error
}

func (p *problems) add(pos Position, format string, args ...any) {
	p.list = append(p.list, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) merge(o *problems) { p.list = append(p.list, o.list...) }

// err returns every problem, sorted by file, line and column, as one error
// whose message lists one problem per line, or nil when there is none.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sorted := dedupe(p.list)
	me := &multierror.Error{ErrorFormat: listFormat}
	for _, e := range sorted {
		me = multierror.Append(me, e)
	}
	return me
}

func dedupe(list []*Error) []*Error {
	out := append([]*Error(nil), list...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	seen := map[Error]bool{}
	uniq := out[:0]
	for _, e := range out {
		if !seen[*e] {
			seen[*e] = true
			uniq = append(uniq, e)
		}
	}
	return uniq
}

func listFormat(errs []error) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the individual problems an error from Load, Decode or
// Validate carries, in order; nil when err carries none.
func Problems(err error) []*Error {
	var me *multierror.Error
	if errors.As(err, &me) {
		var out []*Error
		for _, e := range me.Errors {
			var pe *Error
			if errors.As(e, &pe) {
				out = append(out, pe)
			}
		}
		return out
	}
	var pe *Error
	if errors.As(err, &pe) {
		return []*Error{pe}
	}
	return nil
}

// Join combines errors that carry manifest problems (from Load, or
// *Error values a planner made) into one error that lists every problem
// sorted by position, like Load's. Other errors are kept after them.
func Join(errs ...error) error {
	var list []*Error
	var other []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		ps := Problems(err)
		if ps == nil {
			ps = joinedProblems(err)
		}
		if ps == nil {
			other = append(other, err)
			continue
		}
		list = append(list, ps...)
	}
	p := &problems{list: list}
	if err := p.err(); err != nil {
		return errors.Join(append([]error{err}, other...)...)
	}
	return errors.Join(other...)
}

// joinedProblems unpacks errors.Join trees of *Error.
func joinedProblems(err error) []*Error {
	u, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	var out []*Error
	for _, e := range u.Unwrap() {
		if pe, ok := e.(*Error); ok {
			out = append(out, pe)
		} else if sub := joinedProblems(e); sub != nil {
			out = append(out, sub...)
		} else {
			return nil
		}
	}
	return out
}

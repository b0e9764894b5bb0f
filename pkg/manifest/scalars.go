package manifest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mode is a file permission mode, written in octal: 0644, "0644", 644 and
// 0o644 all mean the same and give the same keys.
type Mode uint32

func (m *Mode) decodeScalar(s string, _ *yaml.Node) error {
	v, err := parseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func parseMode(s string) (Mode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if t == "" || len(t) > 5 {
		return 0, fmt.Errorf("invalid mode %q: write it in octal, like \"0644\"", s)
	}
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid mode %q: write it in octal, like \"0644\"", s)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q: larger than 07777", s)
	}
	return Mode(v), nil
}

func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// ModeOf is the Unix permission bits of a Go file mode: the permission
// bits, with setuid, setgid and sticky moved from Go's places to 04000,
// 02000 and 01000. FileMode is its inverse.
func ModeOf(fm fs.FileMode) Mode {
	m := Mode(fm.Perm())
	if fm&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fm&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fm&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// FileMode is the mode as Go file mode bits (setuid, setgid and sticky in
// Go's places).
func (m Mode) FileMode() fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// MarshalJSON writes the canonical octal string.
func (m Mode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseMode(s)
	*m = v
	return err
}

// Units for sizes. One-letter and "iB" units are powers of 1024, as in
// dd, truncate and qemu-img; "kB", "MB", "GB" and "TB" are powers of 1000.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// MaxSize bounds every size in a manifest.
const MaxSize int64 = 64 << 40

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

func parseBytes(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			return 0, fmt.Errorf("invalid size %q: sizes cannot be negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: write a number and a unit, like \"2500MiB\" or \"2G\"", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, K/KiB, M/MiB, G/GiB, T/TiB, or kB, MB, GB, TB)", s, m[2])
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	v := f * float64(unit)
	if v > float64(MaxSize) {
		return 0, fmt.Errorf("invalid size %q: larger than the limit of 64TiB", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	if v == 0 {
		return 0, fmt.Errorf("invalid size %q: must be larger than zero", s)
	}
	return int64(v), nil
}

// ParseSize reads a size as manifests write it ("2500MiB", "2G", "512"),
// for command-line flags that take one.
func ParseSize(s string) (int64, error) { return parseBytes(s) }

// Size is a number of bytes, written with a unit ("2500MiB", "2G", "512").
type Size int64

func (z *Size) decodeScalar(s string, _ *yaml.Node) error {
	v, err := parseBytes(s)
	*z = Size(v)
	return err
}

// String prints the size in the largest binary unit that divides it.
func (z Size) String() string { return formatBytes(int64(z)) }

func formatBytes(v int64) string {
	for _, u := range []struct {
		n string
		v int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.v && v%u.v == 0 {
			return fmt.Sprintf("%d%s", v/u.v, u.n)
		}
	}
	return fmt.Sprintf("%dB", v)
}

// Extent is a size that may also be relative: bytes ("430MiB"), a
// percentage of what contains it ("50%"), or "rest" (what is left).
type Extent struct {
	Bytes   int64 `json:"bytes,omitempty"`
	Percent int   `json:"percent,omitempty"`
	Rest    bool  `json:"rest,omitempty"`
}

func (e *Extent) decodeScalar(s string, _ *yaml.Node) error {
	t := strings.TrimSpace(s)
	switch {
	case t == "rest":
		*e = Extent{Rest: true}
	case strings.HasSuffix(t, "%"):
		p, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(t, "%")))
		if err != nil || p < 1 || p > 100 {
			return fmt.Errorf("invalid percentage %q: use a whole number from 1%% to 100%%", s)
		}
		*e = Extent{Percent: p}
	default:
		v, err := parseBytes(t)
		if err != nil {
			return err
		}
		*e = Extent{Bytes: v}
	}
	return nil
}

func (e Extent) String() string {
	switch {
	case e.Rest:
		return "rest"
	case e.Percent > 0:
		return fmt.Sprintf("%d%%", e.Percent)
	}
	return formatBytes(e.Bytes)
}

// IsZero reports an extent that was not written.
func (e Extent) IsZero() bool { return e == Extent{} }

// Arch is a CPU architecture. Debian and RPM spellings are both accepted
// (amd64 and x86_64 are one architecture); it is stored in the kernel's
// spelling (uname -m).
type Arch string

type archNames struct{ deb, rpm, goarch string }

var arches = map[Arch]archNames{
	"x86_64":  {"amd64", "x86_64", "amd64"},
	"aarch64": {"arm64", "aarch64", "arm64"},
	"i686":    {"i386", "i686", "386"},
	"armv7l":  {"armhf", "armv7hl", "arm"},
	"ppc64le": {"ppc64el", "ppc64le", "ppc64le"},
	"s390x":   {"s390x", "s390x", "s390x"},
	"riscv64": {"riscv64", "riscv64", "riscv64"},
}

func parseArch(s string) (Arch, error) {
	for a, n := range arches {
		if s == string(a) || s == n.deb || s == n.rpm {
			return a, nil
		}
	}
	known := make([]string, 0, len(arches))
	for a, n := range arches {
		known = append(known, string(a)+"/"+n.deb)
	}
	slices.Sort(known)
	return "", fmt.Errorf("unknown architecture %q (known: %s)", s, strings.Join(known, ", "))
}

func (a *Arch) decodeScalar(s string, _ *yaml.Node) error {
	v, err := parseArch(s)
	*a = v
	return err
}

// HostArch is the architecture imgplan runs on.
func HostArch() Arch {
	for a, n := range arches {
		if n.goarch == runtime.GOARCH {
			return a
		}
	}
	return Arch(runtime.GOARCH)
}

// Deb is the Debian name of the architecture (amd64).
func (a Arch) Deb() string { return arches[a].deb }

// RPM is the RPM name of the architecture (x86_64).
func (a Arch) RPM() string { return arches[a].rpm }

// LocalPath is a file or directory on the build host. It is written relative
// to the manifest that names it (a base's paths are relative to the base),
// and resolved when that manifest is read.
type LocalPath struct {
	// Raw is the path as written.
	Raw string
	// Path is Raw joined to the directory of the manifest that wrote it.
	Path string
}

func (p *LocalPath) decodeNode(d *decoder, n *yaml.Node, path string) {
	var s string
	d.decode(n, reflect.ValueOf(&s).Elem(), path)
	*p = LocalPath{Raw: s}
	if s != "" {
		p.Path = s
		if !filepath.IsAbs(s) {
			p.Path = filepath.Join(d.dir, s)
		}
	}
}

func (p LocalPath) String() string { return p.Raw }

// IsZero reports a path that was not written.
func (p LocalPath) IsZero() bool { return p.Raw == "" }

// MarshalJSON writes the path as written.
func (p LocalPath) MarshalJSON() ([]byte, error) { return json.Marshal(p.Raw) }

// UnmarshalJSON reads a path as written (unresolved).
func (p *LocalPath) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &p.Raw); err != nil {
		return err
	}
	p.Path = p.Raw
	return nil
}

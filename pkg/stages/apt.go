package stages

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// AptSource is one suite of one Debian-style repository.
type AptSource struct {
	URI        string   `json:"uri"`
	Suite      string   `json:"suite"`
	Components []string `json:"components,omitempty"`
}

// Line is the one-line sources.list entry for arch.
func (s AptSource) Line(arch string) string {
	line := fmt.Sprintf("deb [arch=%s] %s %s", arch, s.URI, s.Suite)
	if !strings.HasSuffix(s.Suite, "/") {
		line += " " + strings.Join(s.Components, " ")
	}
	return line
}

// InRelease is the URL of the suite's signed index.
func (s AptSource) InRelease() string {
	base := strings.TrimSuffix(s.URI, "/")
	if strings.HasSuffix(s.Suite, "/") { // flat repository
		return base + "/" + strings.TrimPrefix(s.Suite, "./") + "InRelease"
	}
	return base + "/dists/" + s.Suite + "/InRelease"
}

// HostApt is the Debian-family package configuration of the build host,
// which a manifest without a mirror defaults to.
type HostApt struct {
	ID       string // os-release ID: debian, ubuntu
	Codename string // os-release VERSION_CODENAME
	Sources  []AptSource
}

// ReadHostApt reads os-release and the apt sources under root ("/" for
// the host): sources.list, sources.list.d/*.list and *.sources (deb822).
// Only "deb" entries are kept; missing files are not an error.
func ReadHostApt(root string) (*HostApt, error) {
	h := &HostApt{}
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"'`)
			switch k {
			case "ID":
				h.ID = v
			case "VERSION_CODENAME":
				h.Codename = v
			}
		}
	}
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d", pat))
		sort.Strings(m)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f, ".sources") {
			h.Sources = append(h.Sources, parseDeb822(b)...)
		} else {
			h.Sources = append(h.Sources, parseOneLine(b)...)
		}
	}
	return h, nil
}

func parseOneLine(b []byte) []AptSource {
	var out []AptSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, AptSource{URI: f[0], Suite: f[1], Components: f[2:]})
	}
	return out
}

func parseDeb822(b []byte) []AptSource {
	var out []AptSource
	for _, stanza := range strings.Split(string(b), "\n\n") {
		fields := map[string]string{}
		var last string
		for _, l := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "#") || strings.TrimSpace(l) == "" {
				continue
			}
			if (l[0] == ' ' || l[0] == '\t') && last != "" {
				fields[last] += " " + strings.TrimSpace(l)
				continue
			}
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			for _, suite := range strings.Fields(fields["suites"]) {
				out = append(out, AptSource{URI: uri, Suite: suite, Components: strings.Fields(fields["components"])})
			}
		}
	}
	return out
}

// DefaultSources returns the sources a manifest of distro/release without
// a mirror uses: the host's own sources for its distribution, with its
// codename replaced by release (so "bookworm-updates" becomes
// "trixie-updates" for a trixie image) and the manifest's components.
// It returns nil when the host has no sources of that distribution, and
// the tool's own default applies.
func (h *HostApt) DefaultSources(distro, release string, components []string) []AptSource {
	if h == nil || h.ID != distro || h.Codename == "" {
		return nil
	}
	var out []AptSource
	seen := map[string]bool{}
	for _, s := range h.Sources {
		suffix, ok := strings.CutPrefix(s.Suite, h.Codename)
		if !ok || (suffix != "" && !strings.HasPrefix(suffix, "-")) {
			continue
		}
		r := AptSource{URI: s.URI, Suite: release + suffix, Components: components}
		if k := r.URI + " " + r.Suite; !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

package stages

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Bootstrap creates the base tree.
var Bootstrap = register(&Kind{Name: "bootstrap", Version: 1, Describe: describeBootstrap})

// BootstrapParams is everything a bootstrap builds from, besides the local
// inputs (source archive or tree, keys) it names by role.
type BootstrapParams struct {
	Distro     string          `json:"distro"`
	Family     manifest.Family `json:"family"`
	Release    string          `json:"release,omitempty"`
	Arch       manifest.Arch   `json:"arch"`
	Mirror     string          `json:"mirror,omitempty"`
	Variant    string          `json:"variant,omitempty"`
	Components []string        `json:"components,omitempty"`
	Packages   []string        `json:"packages,omitempty"`
	Groups     []string        `json:"groups,omitempty"`
	Exclude    []string        `json:"exclude,omitempty"`
	GPGCheck   bool            `json:"gpgcheck,omitempty"`
	Repos      []RepoParams    `json:"repos,omitempty"`
	// Compression of a tarball source: none, gzip, xz or zstd.
	Compression string `json:"compression,omitempty"`
	// Tool is mmdebstrap or debootstrap (Debian family): their trees
	// differ in details, so it is part of the key.
	Tool string `json:"tool,omitempty"`
	// Keys are the input roles of the archive key files.
	Keys []string `json:"keys,omitempty"`
	// Sources are the apt sources of a Debian-family image: the mirror,
	// or the host's sources retargeted to the release, then extra repos.
	// Empty means the bootstrap tool's own default.
	Sources []AptSource `json:"sources,omitempty"`
}

// RepoParams is an extra repository.
type RepoParams struct {
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	Suite      string   `json:"suite,omitempty"`
	Components []string `json:"components,omitempty"`
	GPGCheck   bool     `json:"gpgcheck,omitempty"`
	// GPGKey is the role of the key's input, if any.
	GPGKey string `json:"gpgkey,omitempty"`
}

// Input roles of a bootstrap.
const (
	RoleSource = "bootstrap.source"
)

func describeBootstrap(m *manifest.Manifest, c *Context) (*Description, error) {
	b := m.Bootstrap
	p := &BootstrapParams{
		Distro:  b.Distro,
		Family:  b.Family(),
		Release: b.Release,
		Arch:    b.Arch,
		Mirror:  b.Mirror,
	}
	if p.Arch == "" {
		p.Arch = manifest.HostArch()
	}
	d := &Description{Params: p}
	var errs []error
	switch p.Family {
	case manifest.FamilyDeb:
		p.Variant = b.Variant
		if p.Variant == "" {
			p.Variant = "minbase"
		}
		p.Components = b.Components
		if len(p.Components) == 0 {
			p.Components = []string{"main"}
		}
		p.Packages = sortedCopy(b.Packages)
		p.Tool = c.DebBootstrapper
		if p.Tool == "" {
			p.Tool = "mmdebstrap"
		}
		if p.Tool == "debootstrap" && !slices.Contains(debootstrapVariants, p.Variant) {
			errs = append(errs, problem(b.At("variant"), "bootstrap.variant: %s needs mmdebstrap, which this host lacks (debootstrap knows %s)", p.Variant, strings.Join(debootstrapVariants, ", ")))
		}
		var in []Input
		var err error
		p.Sources, in, err = debSources(m, c, p.Components)
		errs = append(errs, err)
		d.Inputs = append(d.Inputs, in...)
	case manifest.FamilyRPM:
		p.Packages = sortedCopy(b.Packages)
		p.Groups = sortedCopy(b.Groups)
		p.Exclude = sortedCopy(b.Exclude)
		p.GPGCheck = b.GPGCheck == nil || *b.GPGCheck
	case manifest.FamilyTarball:
		p.Compression = manifest.TarballCompression(b.Source.Raw)
		dg, err := c.Files.File(b.Source.Path)
		if err != nil {
			errs = append(errs, problem(b.At("source"), "bootstrap.source: %v", err))
		}
		d.Inputs = append(d.Inputs, Input{Role: RoleSource, Path: b.Source.Path, Digest: dg})
	case manifest.FamilyDirectory:
		_, dg, err := c.Files.Tree(b.Source.Path)
		if err != nil {
			errs = append(errs, problem(b.At("source"), "bootstrap.source: %v", err))
		}
		d.Inputs = append(d.Inputs, Input{Role: RoleSource, Path: b.Source.Path, Digest: dg})
	}
	for i, k := range b.GPGKeys {
		dg, err := c.Files.File(k.Path)
		if err != nil {
			errs = append(errs, problem(b.Item("gpgkeys", k.Raw), "bootstrap.gpgkeys: %v", err))
		}
		role := fmt.Sprintf("bootstrap.gpgkeys[%d]", i)
		p.Keys = append(p.Keys, role)
		d.Inputs = append(d.Inputs, Input{Role: role, Path: k.Path, Digest: dg})
	}
	for _, r := range b.Repos {
		rp := RepoParams{Name: r.Name, URL: r.URL, Suite: r.Suite, Components: r.Components}
		if p.Family == manifest.FamilyRPM {
			rp.GPGCheck = p.GPGCheck
			if r.GPGCheck != nil {
				rp.GPGCheck = *r.GPGCheck
			}
		}
		if p.Family == manifest.FamilyDeb {
			if rp.Suite == "" {
				rp.Suite = p.Release
			}
			if len(rp.Components) == 0 {
				rp.Components = []string{"main"}
			}
		}
		if !r.GPGKey.IsZero() {
			rp.GPGKey = "bootstrap.repos." + r.Name + ".gpgkey"
			dg, err := c.Files.File(r.GPGKey.Path)
			if err != nil {
				errs = append(errs, problem(r.At("gpgkey"), "gpgkey: %v", err))
			}
			d.Inputs = append(d.Inputs, Input{Role: rp.GPGKey, Path: r.GPGKey.Path, Digest: dg})
		}
		p.Repos = append(p.Repos, rp)
	}
	if p.Family == manifest.FamilyRPM && p.Mirror != "" {
		in, err := c.indexInputs(b.At("mirror"), p.rpmSetup().repomdURLs())
		errs = append(errs, err)
		d.Inputs = append(d.Inputs, in...)
	}
	d.Summary = bootstrapSummary(p, b)
	return d, errors.Join(errs...)
}

// debSources returns the apt sources of a Debian-family manifest and an
// input per suite index. The packages stage installs from the same
// sources, so both stages' keys change when the archive does.
func debSources(m *manifest.Manifest, c *Context, components []string) ([]AptSource, []Input, error) {
	b := m.Bootstrap
	var src []AptSource
	if b.Mirror != "" {
		src = []AptSource{{URI: b.Mirror, Suite: b.Release, Components: components}}
	} else {
		src = c.HostApt.DefaultSources(b.Distro, b.Release, components)
	}
	for _, r := range b.Repos {
		suite, comps := r.Suite, r.Components
		if suite == "" {
			suite = b.Release
		}
		if len(comps) == 0 {
			comps = []string{"main"}
		}
		src = append(src, AptSource{URI: r.URL, Suite: suite, Components: comps})
	}
	urls := make([]string, len(src))
	for i, s := range src {
		urls[i] = s.InRelease()
	}
	in, err := c.indexInputs(b.At("mirror"), urls)
	return src, in, err
}

func bootstrapSummary(p *BootstrapParams, b manifest.Bootstrap) string {
	switch p.Family {
	case manifest.FamilyTarball, manifest.FamilyDirectory:
		return fmt.Sprintf("%s %s (%s)", p.Distro, b.Source.Raw, p.Arch)
	}
	s := fmt.Sprintf("%s %s %s", p.Distro, p.Release, p.Arch)
	var extra []string
	if p.Variant != "" {
		extra = append(extra, p.Variant)
	}
	if len(p.Groups) > 0 {
		extra = append(extra, "groups "+strings.Join(p.Groups, ","))
	}
	if len(p.Exclude) > 0 {
		extra = append(extra, "exclude "+strings.Join(p.Exclude, ","))
	}
	if n := len(p.Packages); n > 0 {
		extra = append(extra, fmt.Sprintf("+%d packages", n))
	}
	if n := len(p.Repos); n > 0 {
		extra = append(extra, fmt.Sprintf("+%d repos", n))
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, "; ") + ")"
	}
	return s
}

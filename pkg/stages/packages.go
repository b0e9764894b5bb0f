package stages

import (
	"fmt"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Packages installs and removes packages with the image's package manager.
var Packages = register(&Kind{Name: "packages", Version: 1, Describe: describePackages})

// PackagesParams lists packages by name. Lists are sorted: the order a
// manifest writes them in changes nothing in the image.
type PackagesParams struct {
	Family  manifest.Family `json:"family"`
	Install []string        `json:"install,omitempty"`
	Remove  []string        `json:"remove,omitempty"`
	// RPM is the dnf setup (repositories, excludes) of an RPM-family
	// image, the bootstrap's.
	RPM *RPMSetup `json:"rpm,omitempty"`
}

func describePackages(m *manifest.Manifest, c *Context) (*Description, error) {
	p := m.Packages
	if len(p.Install)+len(p.Remove) == 0 {
		return nil, nil
	}
	switch f := m.Bootstrap.Family(); f {
	case manifest.FamilyDeb, manifest.FamilyRPM:
	default:
		return nil, problem(p.Pos(), "packages: a %s bootstrap has no package manager imgplan can drive; install packages in the tree or use a package-based distro", f)
	}
	params := &PackagesParams{
		Family:  m.Bootstrap.Family(),
		Install: sortedCopy(p.Install),
		Remove:  sortedCopy(p.Remove),
	}
	d := &Description{Params: params}
	if params.Family == manifest.FamilyDeb {
		comps := m.Bootstrap.Components
		if len(comps) == 0 {
			comps = []string{"main"}
		}
		var err error
		// The sources are the bootstrap's (its params carry them); only
		// their index digests are inputs here.
		_, d.Inputs, err = debSources(m, c, comps)
		if err != nil {
			return nil, err
		}
	}
	if params.Family == manifest.FamilyRPM {
		// The bootstrap's repositories, keys and index digests.
		bd, err := describeBootstrap(m, c)
		if err != nil {
			return nil, err
		}
		params.RPM = bd.Params.(*BootstrapParams).rpmSetup()
		for _, in := range bd.Inputs {
			if in.Role != RoleSource {
				d.Inputs = append(d.Inputs, in)
			}
		}
	}
	if c.LockFile != "" {
		lock, err := lockInput(c)
		if err != nil {
			return nil, err
		}
		d.Inputs = append(d.Inputs, lock)
	}
	var parts []string
	if n := len(params.Install); n > 0 {
		parts = append(parts, fmt.Sprintf("install %d", n))
	}
	if n := len(params.Remove); n > 0 {
		parts = append(parts, fmt.Sprintf("remove %d", n))
	}
	d.Summary = strings.Join(parts, ", ")
	return d, nil
}

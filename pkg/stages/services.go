package stages

import (
	"fmt"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Services enables and disables services at boot.
var Services = register(&Kind{Name: "services", Version: 1, Describe: describeServices})

// ServicesParams lists service names, sorted.
type ServicesParams struct {
	Enable  []string `json:"enable,omitempty"`
	Disable []string `json:"disable,omitempty"`
}

func describeServices(m *manifest.Manifest, _ *Context) (*Description, error) {
	s := m.Services
	if len(s.Enable)+len(s.Disable) == 0 {
		return nil, nil
	}
	p := &ServicesParams{Enable: sortedCopy(s.Enable), Disable: sortedCopy(s.Disable)}
	var parts []string
	if len(p.Enable) > 0 {
		parts = append(parts, "enable "+strings.Join(p.Enable, ","))
	}
	if n := len(p.Disable); n > 0 {
		parts = append(parts, fmt.Sprintf("disable %d", n))
	}
	return &Description{Params: p, Summary: strings.Join(parts, "; ")}, nil
}

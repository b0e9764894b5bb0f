package stages

import (
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// System sets the hostname, time zone and locale.
var System = register(&Kind{Name: "system", Version: 1, Describe: describeSystem})

// SystemParams are the settings; empty ones are left as the image has them.
type SystemParams struct {
	Hostname string `json:"hostname,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	Locale   string `json:"locale,omitempty"`
}

func describeSystem(m *manifest.Manifest, _ *Context) (*Description, error) {
	p := &SystemParams{Hostname: m.Hostname, Timezone: m.Timezone, Locale: m.Locale}
	if *p == (SystemParams{}) {
		return nil, nil
	}
	var parts []string
	for _, kv := range [][2]string{{"hostname", p.Hostname}, {"timezone", p.Timezone}, {"locale", p.Locale}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return &Description{Params: p, Summary: strings.Join(parts, ", ")}, nil
}

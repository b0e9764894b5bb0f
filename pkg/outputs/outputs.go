// Package outputs holds one file per output kind: how each describes itself
// from a manifest (parameters with defaults applied, for its key) and how
// the executor builds it from the finished tree.
package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Kind is one output kind. Kinds are keyed by manifest.OutputType, the one
// table of output names, plus KindDisk for the partitioned disk that raw,
// qcow2, vmdk and vhd outputs are converted from.
type Kind struct {
	Name string
	// Version of the code that builds it; part of every key of the kind.
	Version int
	// Describe returns the node for one output.
	Describe func(o manifest.Output, m *manifest.Manifest, c *stages.Context) (*stages.Description, error)
	// Build writes the artifact, a file or a directory named Artifact in
	// env.Out(), from the finished tree env.Root() (read-only).
	Build func(ctx context.Context, env stages.Env, params json.RawMessage) error
	// SyncOnCommit says Build leaves the fsync of what it wrote to the
	// commit, which overlaps it with the content digest (exec.Scratch).
	SyncOnCommit bool
}

// Artifact is the name of what an output builder writes in env.Out().
const Artifact = "artifact"

// ArtifactPath is where a builder writes its artifact.
func ArtifactPath(env stages.Env) string { return filepath.Join(env.Out(), Artifact) }

// Code names the kind and its code version, as keys record it.
func (k *Kind) Code() string { return fmt.Sprintf("%s/%d", k.Name, k.Version) }

// KindDisk is the partitioned disk image shared by disk outputs.
const KindDisk = "disk"

var registry = map[string]*Kind{}

func register(k *Kind) *Kind {
	if _, dup := registry[k.Name]; dup {
		panic("outputs: duplicate kind " + k.Name)
	}
	registry[k.Name] = k
	return k
}

// Lookup returns the kind for an output type (or KindDisk).
func Lookup(name string) (*Kind, bool) {
	k, ok := registry[name]
	return k, ok
}

// Names lists the registered kinds, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

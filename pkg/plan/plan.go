// Package plan compiles a manifest into a DAG of content-addressed nodes.
// It describes and hashes; it never builds anything. A Plan is a value:
// it serialises to JSON, and every human view of it is rendered from that
// value.
package plan

import (
	"encoding/json"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Format versions the plan's JSON form.
const Format = "imgplan.plan.v1"

// Plan is a manifest compiled to nodes in topological order.
type Plan struct {
	Format string `json:"format"`
	// Name is the manifest's name.
	Name string `json:"name"`
	// Manifest is the file compiled, and Files every file it extends.
	Manifest string   `json:"manifest"`
	Files    []string `json:"files"`
	Epoch    int64    `json:"epoch"`
	// Notes are things a reader of the plan should know, like planning
	// offline.
	Notes []string `json:"notes,omitempty"`
	Nodes []*Node  `json:"nodes"`
}

// Status says whether a node must be built.
type Status string

// The statuses.
const (
	ToBuild Status = "to build"
	Cached  Status = "cached"
)

// Node is one stage or output.
type Node struct {
	// ID names the node within its plan: the stage name ("files"), the
	// hook phase ("run:post-files"), or the output path ("output:root.img").
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Code is the kind and the version of the code that builds it.
	Code string        `json:"code"`
	Key  digest.Digest `json:"key"`
	// Parents are the IDs of the nodes this one builds on.
	Parents []string `json:"parents,omitempty"`
	// Params is the canonical JSON of the kind's parameters.
	Params json.RawMessage `json:"params"`
	Inputs []stages.Input  `json:"inputs,omitempty"`
	// Output is the path under the output directory, for output nodes.
	Output  string `json:"output,omitempty"`
	Summary string `json:"summary"`
	Status  Status `json:"status"`
	// Reason says why a node must be built: what changed since the last
	// build of this node, or that it was never built.
	Reason string `json:"reason,omitempty"`
}

// Node returns the node with the given ID, or nil.
func (p *Plan) Node(id string) *Node {
	for _, n := range p.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Cache tells a plan which nodes are already built.
type Cache interface {
	// Status reports whether node n of p is stored and, when it is not,
	// why it must be built.
	Status(p *Plan, n *Node) (Status, string)
}

// Annotate fills every node's status and reason from c.
func (p *Plan) Annotate(c Cache) {
	for _, n := range p.Nodes {
		n.Status, n.Reason = c.Status(p, n)
	}
}

// Counts returns how many nodes are to build and how many are cached.
func (p *Plan) Counts() (toBuild, cached int) {
	for _, n := range p.Nodes {
		if n.Status == Cached {
			cached++
		} else {
			toBuild++
		}
	}
	return toBuild, cached
}

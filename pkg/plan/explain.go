package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/imgplan/imgplan/pkg/digest"
)

// Record is what a build remembers of a node, under the manifest's name
// and the node's ID, so that the next plan can say what changed.
type Record struct {
	Key     digest.Digest            `json:"key"`
	Code    string                   `json:"code"`
	Params  json.RawMessage          `json:"params"`
	Inputs  map[string]digest.Digest `json:"inputs,omitempty"`
	Parents map[string]digest.Digest `json:"parents,omitempty"`
}

// RecordOf returns the record of node n of p.
func RecordOf(p *Plan, n *Node) Record {
	r := Record{Key: n.Key, Code: n.Code, Params: n.Params, Inputs: map[string]digest.Digest{}, Parents: map[string]digest.Digest{}}
	for _, in := range n.Inputs {
		r.Inputs[in.Role] = in.Digest
	}
	for _, id := range n.Parents {
		if pn := p.Node(id); pn != nil {
			r.Parents[id] = pn.Key
		}
	}
	return r
}

// Explain says why node n of p must be built when the last build of the
// same node recorded prev: the first of a changed parent, a new version of
// the code, changed parameters (naming them), or changed inputs (naming
// them, with their paths).
func Explain(p *Plan, n *Node, prev *Record) string {
	if prev == nil {
		return "not built yet"
	}
	cur := RecordOf(p, n)
	if prev.Key == cur.Key {
		return "built before; the store no longer holds it"
	}
	var changed []string
	for _, id := range n.Parents {
		if prev.Parents[id] != cur.Parents[id] {
			changed = append(changed, id)
		}
	}
	if len(changed) > 0 {
		return fmt.Sprintf("%s changed", strings.Join(changed, ", "))
	}
	if prev.Code != cur.Code {
		return fmt.Sprintf("builder updated (%s → %s)", prev.Code, cur.Code)
	}
	var why []string
	if fields := changedFields(prev.Params, cur.Params); len(fields) > 0 {
		why = append(why, "changed "+strings.Join(fields, ", "))
	}
	paths := map[string]string{}
	for _, in := range n.Inputs {
		paths[in.Role] = in.Path
	}
	var inputs []string
	for role, d := range cur.Inputs {
		if prev.Inputs[role] != d {
			name := role
			if paths[role] != "" {
				name = paths[role]
			}
			if _, existed := prev.Inputs[role]; existed {
				inputs = append(inputs, name)
			} else {
				inputs = append(inputs, name+" (new)")
			}
		}
	}
	for role := range prev.Inputs {
		if _, ok := cur.Inputs[role]; !ok {
			inputs = append(inputs, role+" (gone)")
		}
	}
	sort.Strings(inputs)
	if len(inputs) > 0 {
		why = append(why, "changed input "+strings.Join(inputs, ", "))
	}
	if len(why) == 0 {
		return "key format changed"
	}
	return strings.Join(why, "; ")
}

// changedFields lists the top-level parameter fields that differ, with
// the index of the first differing item for lists ("ops[3]").
func changedFields(a, b json.RawMessage) []string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		if !bytes.Equal(a, b) {
			return []string{"parameters"}
		}
		return nil
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if bytes.Equal(ma[k], mb[k]) {
			continue
		}
		var la, lb []json.RawMessage
		if json.Unmarshal(ma[k], &la) == nil && json.Unmarshal(mb[k], &lb) == nil {
			i := 0
			for i < len(la) && i < len(lb) && bytes.Equal(la[i], lb[i]) {
				i++
			}
			out = append(out, fmt.Sprintf("%s[%d]", k, i))
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

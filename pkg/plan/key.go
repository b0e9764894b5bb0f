package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// KeyFormat versions the encoding keys are computed over. A shipped key
// format is permanent: change the encoding only together with this tag.
const KeyFormat = "imgplan.key.v1"

// keyPayload is what a node key is the SHA-256 of, as canonical JSON. Only
// what a build can observe goes in: no manifest names, paths of local
// inputs, comments or key order.
type keyPayload struct {
	Format string `json:"format"`
	Kind   string `json:"kind"`
	Code   string `json:"code"`
	// Epoch is SOURCE_DATE_EPOCH, which every build step sees (dpkg,
	// useradd and the outputs' timestamps all use it).
	Epoch   int64           `json:"epoch"`
	Params  json.RawMessage `json:"params"`
	Inputs  []keyInput      `json:"inputs"`
	Parents []digest.Digest `json:"parents"`
}

type keyInput struct {
	Role   string        `json:"role"`
	Digest digest.Digest `json:"digest"`
}

// canonical re-encodes JSON with object keys sorted and no insignificant
// space; numbers keep their exact text.
func canonical(v any) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	// encoding/json writes map keys sorted.
	return json.Marshal(tree)
}

// computeKey hashes a node from its kind, code version, the epoch, its
// canonical params, inputs and its parents' keys (in order).
func computeKey(kind, code string, epoch int64, params json.RawMessage, inputs []stages.Input, parents []digest.Digest) (digest.Digest, error) {
	in := make([]keyInput, len(inputs))
	for i, x := range inputs {
		in[i] = keyInput{Role: x.Role, Digest: x.Digest}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].Role < in[j].Role })
	payload, err := json.Marshal(keyPayload{
		Format: KeyFormat, Kind: kind, Code: code, Epoch: epoch, Params: params, Inputs: in, Parents: parents,
	})
	if err != nil {
		return "", fmt.Errorf("encode key of %s: %w", kind, err)
	}
	return digest.FromBytes(payload), nil
}

// Package stages holds one file per rootfs stage kind. Each kind describes
// itself from a manifest (its parameters and the local inputs it reads:
// what the planner hashes into its key) and, in the executor, builds its
// layer of the tree.
package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// Input is something a node reads besides its parameters: a local file or
// tree, or a remote index. Its role and digest are part of the node key;
// its path is only for people and for the builder to find it.
type Input struct {
	Role   string        `json:"role"`
	Path   string        `json:"path,omitempty"`
	Digest digest.Digest `json:"digest"`
}

// Context is what describing a node may use.
type Context struct {
	Files *digest.Files
	Epoch int64
	// HostApt is the build host's apt configuration, which Debian-family
	// manifests without a mirror default to (nil: the tools' defaults).
	HostApt *HostApt
	// DebBootstrapper is the tool Debian-family bootstraps use on this
	// host: mmdebstrap, or debootstrap where mmdebstrap is missing. Empty
	// means mmdebstrap.
	DebBootstrapper string
	// Index returns the digest of a repository's signed index (InRelease,
	// repomd.xml), fetched at plan time so that an archive update changes
	// the keys of the stages that install from it. Nil plans offline:
	// index digests are then not part of the keys.
	Index func(url string) (digest.Digest, error)
	// LockFile is the manifest's lock file (lock.go) when packages are
	// installed from it; its digest joins the packages node's key.
	LockFile string
}

// indexInputs returns an input per repository index, by URL.
func (c *Context) indexInputs(pos manifest.Position, urls []string) ([]Input, error) {
	if c.Index == nil {
		return nil, nil
	}
	var out []Input
	var errs []error
	for _, u := range urls {
		d, err := c.Index(u)
		if err != nil {
			errs = append(errs, problem(pos, "repository index %s: %v", u, err))
			continue
		}
		if d != "" { // "": unknown offline
			out = append(out, Input{Role: "index " + u, Digest: d})
		}
	}
	return out, errors.Join(errs...)
}

// Description is what a kind says about one node: the parameters its
// builder needs (everything but local file contents), its inputs, and a
// one-line summary for people.
type Description struct {
	Params  any
	Inputs  []Input
	Summary string
}

// Kind is one rootfs stage kind.
type Kind struct {
	Name string
	// Version is the version of the code that builds this kind. Bump it
	// whenever a change to the builder changes what it produces: it is
	// part of every key of this kind, so caches built by older code are
	// not reused.
	Version int
	// Describe returns the node for m, or nil when m has nothing for this
	// stage (an empty section makes no node). Problems in the manifest are
	// returned as *manifest.Error values (several joined with errors.Join).
	Describe func(m *manifest.Manifest, c *Context) (*Description, error)
	// Build makes the node's layer in env from its parameters.
	Build func(ctx context.Context, env Env, params json.RawMessage) error
	// API says the builder runs commands in the image, which then gets
	// /proc, /sys, /dev, /run, /tmp and the host's resolv.conf mounted,
	// and services blocked, while it runs.
	API bool
}

// DecodeParams reads a node's parameters into p, strictly: a field the
// builder does not know is an error, never ignored.
func DecodeParams(raw json.RawMessage, p any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	return nil
}

// Code names the kind and its code version, as keys record it.
func (k *Kind) Code() string { return fmt.Sprintf("%s/%d", k.Name, k.Version) }

var registry = map[string]*Kind{}

func register(k *Kind) *Kind {
	if _, dup := registry[k.Name]; dup {
		panic("stages: duplicate kind " + k.Name)
	}
	registry[k.Name] = k
	return k
}

// Lookup returns the kind with the given name.
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

// Kinds that are not manifest sections: hooks, the initramfs stage pxe
// outputs need, and the two stages every plan ends its rootfs part with.
const (
	KindRun       = "run"
	KindInitramfs = "initramfs"
	KindFinalize  = "finalize"
	KindTree      = "tree"
)

func problem(pos manifest.Position, format string, args ...any) error {
	return &manifest.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

package plan

import (
	"fmt"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/outputs"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Option configures Compile.
type Option func(*options)

type options struct {
	files   *digest.Files
	hostApt *stages.HostApt
	index   func(string) (digest.Digest, error)
	notes   []string

	debBootstrapper string
	lockFile        string
}

// WithFiles shares a digest cache between compilations (variants of one
// base read each local file once).
func WithFiles(f *digest.Files) Option { return func(o *options) { o.files = f } }

// WithHostApt gives the build host's apt configuration, which Debian
// manifests without a mirror default to.
func WithHostApt(h *stages.HostApt) Option { return func(o *options) { o.hostApt = h } }

// WithIndex gives the function that returns repository index digests.
// Without it the plan has none in its keys, and says so.
func WithIndex(index func(url string) (digest.Digest, error)) Option {
	return func(o *options) { o.index = index }
}

// WithDebBootstrapper names the tool Debian bootstraps use on this host
// (mmdebstrap or debootstrap).
func WithDebBootstrapper(tool string) Option { return func(o *options) { o.debBootstrapper = tool } }

// WithLock installs the packages pinned in the lock file at path
// (stages.Lock); its digest joins the packages node's key.
func WithLock(path string) Option { return func(o *options) { o.lockFile = path } }

// WithNote adds a note the plan shows its reader.
func WithNote(note string) Option { return func(o *options) { o.notes = append(o.notes, note) } }

// Compile turns a loaded, valid manifest into a plan. The rootfs stages
// form a chain in manifest.Stages order, each followed by the hooks of its
// phase; then initramfs (for pxe outputs), finalize and tree; then one node per output (disk outputs
// share a disk node). A section the manifest leaves empty makes no node.
// Problems found while reading local inputs (a tree holding a device node,
// a file that vanished) are returned as manifest problems with positions.
func Compile(m *manifest.Manifest, opts ...Option) (*Plan, error) {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.files == nil {
		o.files = digest.NewFiles()
	}
	c := &stages.Context{Files: o.files, HostApt: o.hostApt, Index: o.index, DebBootstrapper: o.debBootstrapper, LockFile: o.lockFile}
	if m.Epoch != nil {
		c.Epoch = *m.Epoch
	}
	b := &builder{plan: &Plan{Format: Format, Name: m.Name, Manifest: m.Path, Files: m.Chain, Epoch: c.Epoch, Notes: o.notes}, keys: map[string]digest.Digest{}}
	if o.index == nil {
		b.plan.Notes = append(b.plan.Notes, "repository indexes not consulted: keys do not follow archive updates")
	}

	var last string
	chain := func(id, kind, code string, d *stages.Description, err error) {
		b.errs = append(b.errs, err)
		if d == nil {
			return
		}
		var parents []string
		if last != "" {
			parents = []string{last}
		}
		if b.add(id, kind, code, parents, d, "") {
			last = id
		}
	}
	for _, name := range manifest.Stages {
		k, ok := stages.Lookup(name)
		if !ok {
			panic("plan: no stage kind " + name)
		}
		d, err := k.Describe(m, c)
		chain(name, k.Name, k.Code(), d, err)
		phase := "post-" + name
		d, err = stages.DescribeRun(m, c, phase)
		chain("run:"+phase, stages.Run.Name, stages.Run.Code(), d, err)
	}
	for _, k := range []*stages.Kind{stages.Initramfs, stages.Finalize, stages.Tree} {
		d, err := k.Describe(m, c)
		chain(k.Name, k.Name, k.Code(), d, err)
	}
	tree := last

	disks := map[int64]string{} // disk size → disk node id
	for _, out := range m.Outputs {
		spec, ok := manifest.OutputTypes[out.Type]
		k, kok := outputs.Lookup(string(out.Type))
		if !ok || !kok {
			panic(fmt.Sprintf("plan: no output kind %q", out.Type))
		}
		parent := tree
		if spec.Disk {
			size := outputs.DiskSize(out, m)
			id, seen := disks[size]
			if !seen {
				id = outputs.KindDisk
				if len(disks) > 0 {
					id = fmt.Sprintf("%s@%s", outputs.KindDisk, manifest.Size(size))
				}
				disks[size] = id
				dk, _ := outputs.Lookup(outputs.KindDisk)
				d, err := dk.Describe(out, m, c)
				b.errs = append(b.errs, err)
				if d != nil {
					b.add(id, dk.Name, dk.Code(), []string{tree}, d, "")
				}
			}
			parent = id
		}
		d, err := k.Describe(out, m, c)
		b.errs = append(b.errs, err)
		if d != nil {
			b.add("output:"+out.OutputPath(), k.Name, k.Code(), []string{parent}, d, out.OutputPath())
		}
	}
	if err := manifest.Join(b.errs...); err != nil {
		return nil, err
	}
	return b.plan, nil
}

type builder struct {
	plan *Plan
	keys map[string]digest.Digest
	errs []error
}

// add appends a node and computes its key from its parents' keys.
func (b *builder) add(id, kind, code string, parents []string, d *stages.Description, output string) bool {
	params, err := canonical(d.Params)
	if err != nil {
		b.errs = append(b.errs, fmt.Errorf("node %s: %w", id, err))
		return false
	}
	pk := make([]digest.Digest, len(parents))
	for i, p := range parents {
		pk[i] = b.keys[p]
	}
	key, err := computeKey(kind, code, b.plan.Epoch, params, d.Inputs, pk)
	if err != nil {
		b.errs = append(b.errs, err)
		return false
	}
	b.keys[id] = key
	b.plan.Nodes = append(b.plan.Nodes, &Node{
		ID: id, Kind: kind, Code: code, Key: key, Parents: parents,
		Params: params, Inputs: d.Inputs, Output: output, Summary: d.Summary,
		Status: ToBuild, Reason: "not built yet",
	})
	return true
}

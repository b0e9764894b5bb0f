package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/exec/sandbox"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/outputs"
	"github.com/imgplan/imgplan/pkg/plan"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Snapshotters.
const (
	Overlay = "overlay"
	Copy    = "copy"
)

// Event reports progress of one node.
type Event struct {
	Node    *plan.Node
	Status  string // waiting, pulling, building, cached, pulled, built, failed, pushed
	Elapsed time.Duration
	Size    int64
	Err     error
}

// Progress receives events; implementations must be safe for concurrent
// use.
type Progress interface{ Event(Event) }

// Option configures an Executor.
type Option func(*Executor)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(e *Executor) { e.log = l } }

// WithProgress sets where progress events go.
func WithProgress(p Progress) Option { return func(e *Executor) { e.progress = p } }

// WithJobs bounds how many nodes build at once (default: number of CPUs).
func WithJobs(n int) Option { return func(e *Executor) { e.jobs = n } }

// WithSnapshotter forces a snapshotter (Overlay or Copy); by default
// overlayfs is used where it works and the copy fallback elsewhere.
func WithSnapshotter(name string) Option { return func(e *Executor) { e.snapshotter = name } }

// WithBuildLog tees every build's output to w as well as to its log file.
func WithBuildLog(w io.Writer) Option { return func(e *Executor) { e.buildLog = w } }

// WithCacheFrom names remote caches an apply looks a missing node up in,
// in order, before building it.
func WithCacheFrom(r ...*Remote) Option {
	return func(e *Executor) { e.cacheFrom = append(e.cacheFrom, r...) }
}

// WithCacheTo names a remote cache every node of an apply is pushed to.
func WithCacheTo(r *Remote) Option { return func(e *Executor) { e.cacheTo = r } }

// Executor builds plans into a store.
type Executor struct {
	store       *Store
	log         *slog.Logger
	progress    Progress
	jobs        int
	snapshotter string
	buildLog    io.Writer
	cacheFrom   []*Remote
	cacheTo     *Remote
}

// New returns an executor over store.
func New(store *Store, opts ...Option) *Executor {
	e := &Executor{store: store, jobs: runtime.NumCPU(), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(e)
	}
	if e.progress == nil {
		e.progress = nopProgress{}
	}
	return e
}

type nopProgress struct{}

func (nopProgress) Event(Event) {}

// ReportFormat versions the build report.
const ReportFormat = "imgplan.report.v1"

// Report says what an apply did.
type Report struct {
	Format      string    `json:"format"`
	Name        string    `json:"name"`
	Manifest    string    `json:"manifest"`
	Snapshotter string    `json:"snapshotter"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	Built       int       `json:"built"`
	Cached      int       `json:"cached"`
	Pulled      int       `json:"pulled,omitempty"` // from a remote cache
	Pushed      int       `json:"pushed,omitempty"` // to the remote cache
	// Warnings are problems that did not stop the build: a remote object
	// that failed verification (and was built here instead), a failed push.
	Warnings []string       `json:"warnings,omitempty"`
	Nodes    []NodeReport   `json:"nodes"`
	Outputs  []OutputReport `json:"outputs"`
}

// NodeReport is one node's part in an apply.
type NodeReport struct {
	ID     string        `json:"id"`
	Kind   string        `json:"kind"`
	Key    digest.Digest `json:"key"`
	Status string        `json:"status"` // cached, pulled or built
	// Seconds is the node's whole time: waiting for its lock, building,
	// committing to the store. BuildSeconds is the build in its sandbox.
	Seconds      float64 `json:"seconds"`
	BuildSeconds float64 `json:"build_seconds,omitempty"`
	Size         int64   `json:"size"`
}

// OutputReport is one file or directory written to the output directory.
type OutputReport struct {
	Path   string        `json:"path"`
	Key    digest.Digest `json:"key"`
	Size   int64         `json:"size"`
	Copied bool          `json:"copied"` // false: already there, unchanged
}

// Node reports the node with the given ID.
func (r *Report) Node(id string) *NodeReport {
	for i := range r.Nodes {
		if r.Nodes[i].ID == id {
			return &r.Nodes[i]
		}
	}
	return nil
}

// ErrBuild wraps a failure of one node's build.
var ErrBuild = errors.New("build failed")

// Apply builds every node of p that the store does not hold — in
// parallel where the DAG allows, each key once even across concurrent
// applies — then writes the outputs into outDir and the report beside
// them.
func (e *Executor) Apply(ctx context.Context, p *plan.Plan, outDir string) (*Report, error) {
	start := time.Now()
	if _, err := e.store.CleanScratch(ctx); err != nil {
		return nil, err
	}
	snap, err := e.chooseSnapshotter(ctx)
	if err != nil {
		return nil, err
	}
	w := &walk{e: e, p: p, snap: snap, objs: map[string]*Object{}, done: map[string]chan struct{}{}, reports: map[string]NodeReport{}}
	// The leases keep every object this apply uses from collection until
	// the outputs are delivered.
	defer func() {
		for _, l := range w.leases {
			l.Release()
		}
	}()
	for _, n := range p.Nodes {
		w.done[n.ID] = make(chan struct{})
	}
	if err := w.run(ctx); err != nil {
		return nil, err
	}
	rep := &Report{Format: ReportFormat, Name: p.Name, Manifest: p.Manifest, Snapshotter: snap, Started: start, Warnings: w.warnings}
	for _, n := range p.Nodes {
		nr := w.reports[n.ID]
		rep.Nodes = append(rep.Nodes, nr)
		switch nr.Status {
		case "built":
			rep.Built++
		case "pulled":
			rep.Pulled++
		default:
			rep.Cached++
		}
	}
	if err := e.store.SaveRecords(p); err != nil {
		return nil, err
	}
	if rep.Outputs, err = deliver(p, w.objs, outDir); err != nil {
		return nil, err
	}
	// Pushed once the outputs are in place: a slow or failing registry
	// delays nothing the user waits for but the report.
	if e.cacheTo != nil {
		for i, n := range p.Nodes {
			pushed, err := e.cacheTo.Push(ctx, e.store, w.objs[n.ID])
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				// What fails one push (credentials, the network, a full
				// registry) fails the next: say it once.
				msg := fmt.Sprintf("%v; %d objects not pushed", err, len(p.Nodes)-i)
				e.log.Warn("remote cache", "error", msg)
				rep.Warnings = append(rep.Warnings, msg)
				break
			}
			if pushed {
				rep.Pushed++
				e.progress.Event(Event{Node: n, Status: "pushed"})
			}
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(outDir, ReportFile), append(b, '\n')); err != nil {
		return nil, err
	}
	return rep, nil
}

// ReportFile is the name of the report in the output directory.
const ReportFile = manifest.ReportFile

type walk struct {
	e    *Executor
	p    *plan.Plan
	snap string

	mu       sync.Mutex
	failed   map[*Remote]bool // remotes given up on after an error
	objs     map[string]*Object
	done     map[string]chan struct{}
	reports  map[string]NodeReport
	leases   []*Lease
	warnings []string
}

func (w *walk) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, max(1, w.e.jobs))
	var wg sync.WaitGroup
	for _, n := range w.p.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(w.done[n.ID])
			for _, parent := range n.Parents {
				select {
				case <-w.done[parent]:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			for _, parent := range n.Parents {
				if w.object(parent) == nil {
					return // the parent failed
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := w.node(ctx, n); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

func (w *walk) object(id string) *Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.objs[id]
}

// node makes sure n is in the store: found, or built under its key's lock.
func (w *walk) node(ctx context.Context, n *plan.Node) error {
	e := w.e
	report := func(obj *Object, status string, elapsed time.Duration) {
		w.mu.Lock()
		w.objs[n.ID] = obj
		nr := NodeReport{ID: n.ID, Kind: n.Kind, Key: n.Key, Status: status, Seconds: elapsed.Seconds(), Size: obj.Meta.Size}
		if status != "cached" {
			nr.BuildSeconds = obj.Meta.BuildSeconds
		}
		w.reports[n.ID] = nr
		w.mu.Unlock()
		e.store.Touch(n.Key)
		e.progress.Event(Event{Node: n, Status: status, Elapsed: elapsed, Size: obj.Meta.Size})
	}
	// Either the object under a lease, or the key's build lock.
	obj, lease, err := e.store.acquire(ctx, n.Key, func() { e.progress.Event(Event{Node: n, Status: "waiting"}) })
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.leases = append(w.leases, lease)
	w.mu.Unlock()
	if obj != nil {
		report(obj, "cached", 0)
		return nil
	}
	start := time.Now()
	if obj := w.pull(ctx, n); obj != nil {
		if err := lease.downgrade(); err != nil {
			return err
		}
		report(obj, "pulled", time.Since(start))
		return nil
	}
	e.progress.Event(Event{Node: n, Status: "building"})
	obj, err = w.build(ctx, n)
	if err != nil {
		err = fmt.Errorf("%w: %s: %w", ErrBuild, n.ID, err)
		e.progress.Event(Event{Node: n, Status: "failed", Elapsed: time.Since(start), Err: err})
		return err
	}
	if err := lease.downgrade(); err != nil {
		return err
	}
	report(obj, "built", time.Since(start))
	return nil
}

// pull looks n up in the remote caches and commits it to the store. A
// remote object that fails verification is never used: it is reported as
// a warning and n is built here.
func (w *walk) pull(ctx context.Context, n *plan.Node) *Object {
	for _, r := range w.e.cacheFrom {
		w.mu.Lock()
		skip := w.failed[r]
		w.mu.Unlock()
		if skip {
			continue
		}
		obj, err := r.Pull(ctx, w.e.store, n.Key, func() { w.e.progress.Event(Event{Node: n, Status: "pulling"}) })
		if err == nil {
			return obj
		}
		if errors.Is(err, ErrRemoteMiss) || ctx.Err() != nil {
			continue
		}
		msg := fmt.Sprintf("%s: %v; building it here", n.ID, err)
		w.mu.Lock()
		// A corrupt object concerns that object; any other error
		// (credentials, the network) would repeat for every node.
		if !errors.Is(err, ErrCorrupt) {
			if w.failed[r] {
				w.mu.Unlock()
				continue
			}
			if w.failed == nil {
				w.failed = map[*Remote]bool{}
			}
			w.failed[r] = true
			msg += fmt.Sprintf("; %s not asked again in this apply", r.Name())
		}
		w.warnings = append(w.warnings, msg)
		w.mu.Unlock()
		w.e.log.Warn("remote cache", "node", n.ID, "error", msg)
	}
	return nil
}

// build runs n's builder in a sandbox over a scratch area and commits the
// result.
func (w *walk) build(ctx context.Context, n *plan.Node) (*Object, error) {
	e := w.e
	k, err := lookupKind(n.Kind)
	if err != nil {
		return nil, err
	}
	sc, err := e.store.NewScratch(n.Key)
	if err != nil {
		return nil, err
	}
	defer sc.Discard()
	if k.sync {
		sc.SyncOnCommit()
	}
	inputs, err := verifyInputs(n)
	if err != nil {
		return nil, err
	}
	j := &buildJob{
		Kind: n.Kind, Output: k.output, Params: n.Params, Inputs: inputs, Key: n.Key, Epoch: w.p.Epoch,
		Lowers: w.layers(n), Target: filepath.Join(sc.Dir(), "root"), Copy: w.snap == Copy, API: k.api,
		Scratch: sc.Dir(), Downloads: filepath.Join(e.store.Root(), "downloads"),
	}
	for _, parent := range n.Parents {
		j.Parents = append(j.Parents, w.object(parent).Data())
	}
	if k.layer {
		j.Upper, j.Work = sc.Data(), filepath.Join(sc.Dir(), "work")
	} else {
		j.Out = sc.Data()
	}
	// With no lowers (the bootstrap) the upper dir itself is bound at the
	// target: nothing is below it, and overlayfs would only slow writes.
	for _, in := range n.Inputs {
		if in.Path == "" {
			j.Indexes = append(j.Indexes, in)
		}
	}
	for _, d := range append([]string{j.Target}, j.Lowers...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if j.Work != "" {
		if err := os.MkdirAll(j.Work, 0o700); err != nil {
			return nil, err
		}
	}
	logf, logPath, err := e.openLog(w.p.Name, n.ID)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	var out io.Writer = logf
	if e.buildLog != nil {
		out = io.MultiWriter(logf, e.buildLog)
	}
	start := time.Now()
	if err := sandbox.Run(ctx, childBuild, j, sandbox.Options{Stdout: out, Stderr: out}); err != nil {
		return nil, fmt.Errorf("%w%s", err, logTail(logPath, 25))
	}
	if err := publishDownloads(sc.Dir(), j.Downloads); err != nil {
		return nil, err
	}
	meta := Meta{Kind: n.Kind, Code: n.Code, Params: n.Params, BuildSeconds: time.Since(start).Seconds(), Created: time.Now().UTC()}
	if k.layer {
		meta.Snapshotter = w.snap
	}
	for _, id := range n.Parents {
		meta.Parents = append(meta.Parents, w.object(id).Meta.Key)
	}
	for _, in := range n.Inputs {
		meta.Inputs = append(meta.Inputs, InputDigest{Role: in.Role, Digest: in.Digest})
	}
	return sc.Commit(meta)
}

// layers returns the layer directories n builds on: those of its rootfs
// stage ancestors, nearest first.
func (w *walk) layers(n *plan.Node) []string {
	var out []string
	for cur := n; len(cur.Parents) > 0; {
		parent := w.p.Node(cur.Parents[0])
		if k, err := lookupKind(parent.Kind); err == nil && k.layer {
			out = append(out, w.object(parent.ID).Data())
		}
		cur = parent
	}
	return out
}

// kindInfo is what the executor needs to know of a kind.
type kindInfo struct {
	layer  bool // a rootfs stage: its payload is a layer
	output bool // an output (or the tree): reads the finished tree
	api    bool
	sync   bool // the payload is fsynced at commit (outputs.Kind.SyncOnCommit)
	build  func(ctx context.Context, env stages.Env, params json.RawMessage) error
}

func lookupKind(name string) (kindInfo, error) {
	if k, ok := stages.Lookup(name); ok && k.Build != nil {
		return kindInfo{layer: name != stages.KindTree, output: name == stages.KindTree, api: k.API, build: k.Build}, nil
	}
	if k, ok := outputs.Lookup(name); ok && k.Build != nil {
		return kindInfo{output: true, sync: k.SyncOnCommit, build: k.Build}, nil
	}
	return kindInfo{}, fmt.Errorf("kind %q cannot be built yet", name)
}

// verifyInputs checks every local input still has the digest the plan
// recorded, and returns their paths by role.
func verifyInputs(n *plan.Node) (map[string]string, error) {
	files := digest.NewFiles()
	paths := map[string]string{}
	for _, in := range n.Inputs {
		if in.Path == "" {
			continue // a remote index: checked by the package manager
		}
		d, err := files.Path(in.Path)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.Path, err)
		}
		if d != in.Digest {
			return nil, fmt.Errorf("input %s changed since the plan was made; plan again", in.Path)
		}
		paths[in.Role] = in.Path
	}
	return paths, nil
}

func (e *Executor) openLog(name, id string) (*os.File, string, error) {
	dir := filepath.Join(e.store.Root(), "logs", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	p := filepath.Join(dir, safeName(id)+".log")
	f, err := os.Create(p)
	return f, p, err
}

// logTail returns the last lines of a build log, for error messages.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	s := string(b)
	n := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i != len(s)-1 {
			if n++; n == lines {
				s = s[i+1:]
				break
			}
		}
	}
	return fmt.Sprintf("\n--- last lines of %s:\n%s", path, s)
}

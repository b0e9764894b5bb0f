package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/exec/sandbox"
	"github.com/imgplan/imgplan/pkg/exec/snapshot"
	"github.com/imgplan/imgplan/pkg/fsroot"
	"github.com/imgplan/imgplan/pkg/stages"
)

// The functions the sandbox child runs.
const (
	childBuild = "imgplan-build"
	childProbe = "imgplan-probe-overlay"
)

func init() {
	sandbox.Register(childBuild, runBuild)
	sandbox.Register(childProbe, func(_ context.Context, _ *sandbox.Child, raw json.RawMessage) error {
		var dir string
		if err := json.Unmarshal(raw, &dir); err != nil {
			return err
		}
		return snapshot.OverlaySupported(dir)
	})
}

// buildJob is everything the sandbox child needs to build one node.
type buildJob struct {
	Kind   string            `json:"kind"`
	Output bool              `json:"output"`
	Params json.RawMessage   `json:"params"`
	Inputs map[string]string `json:"inputs"`
	// Indexes are the remote index digests the node's key includes.
	Indexes []stages.Input `json:"indexes,omitempty"`
	Key     digest.Digest  `json:"key"`
	Epoch   int64          `json:"epoch"`
	Lowers  []string       `json:"lowers"` // nearest first
	Upper   string         `json:"upper,omitempty"`
	Work    string         `json:"work,omitempty"`
	Target  string         `json:"target"`
	Out     string         `json:"out,omitempty"`
	Parents []string       `json:"parents,omitempty"`
	Copy    bool           `json:"copy"`
	API     bool           `json:"api"`
	Scratch string         `json:"scratch"`
	// Downloads is the store's shared download cache root.
	Downloads string `json:"downloads"`
}

// chooseSnapshotter returns the forced snapshotter, or overlay when a
// probe in a sandbox can mount one over the store's filesystem.
func (e *Executor) chooseSnapshotter(ctx context.Context) (string, error) {
	switch e.snapshotter {
	case Overlay, Copy:
		return e.snapshotter, nil
	case "":
	default:
		return "", fmt.Errorf("unknown snapshotter %q (overlay or copy)", e.snapshotter)
	}
	dir, err := os.MkdirTemp(filepath.Join(e.store.Root(), "tmp"), "probe.")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	var out bytes.Buffer
	if err := sandbox.Run(ctx, childProbe, dir, sandbox.Options{Stdout: &out, Stderr: &out}); err != nil {
		e.log.Warn("overlayfs does not work here; using the copying snapshotter (slower, same results)", "reason", err)
		return Copy, nil
	}
	return Overlay, nil
}

// runBuild is the sandbox child: it mounts the node's tree, runs its
// builder, and leaves a plain layer in the upper directory (overlay: the
// upper dir without overlayfs' bookkeeping xattrs; copy: a diff of the
// materialized tree).
func runBuild(ctx context.Context, c *sandbox.Child, raw json.RawMessage) error {
	var j buildJob
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	k, err := lookupKind(j.Kind)
	if err != nil {
		return err
	}
	var base *snapshot.Baseline
	if j.Copy {
		bottomUp := slices.Clone(j.Lowers)
		slices.Reverse(bottomUp)
		if base, err = snapshot.Materialize(bottomUp, j.Target); err != nil {
			return fmt.Errorf("materialize: %w", err)
		}
	} else {
		if j.Upper != "" {
			if err := snapshot.InitUpper(j.Lowers, j.Upper); err != nil {
				return err
			}
		}
		if err := snapshot.MountOverlay(j.Lowers, j.Upper, j.Work, j.Target); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	root, err := fsroot.Open(j.Target)
	if err != nil {
		return err
	}
	env := &childEnv{c: c, j: &j, root: root, log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	err = env.build(ctx, k)
	root.Close()
	if err != nil {
		return err
	}
	switch {
	case j.Copy && j.Upper != "":
		if err := snapshot.Diff(j.Target, base, j.Upper); err != nil {
			return fmt.Errorf("diff: %w", err)
		}
	case !j.Copy:
		if err := snapshot.Unmount(j.Target); err != nil {
			return err
		}
		if j.Upper != "" {
			return snapshot.Normalize(j.Upper)
		}
	}
	return nil
}

// childEnv implements stages.Env in the sandbox.
type childEnv struct {
	c    *sandbox.Child
	j    *buildJob
	root *fsroot.Root
	log  *slog.Logger
}

var _ stages.Env = (*childEnv)(nil)

func (e *childEnv) build(ctx context.Context, k kindInfo) (err error) {
	if e.j.API {
		if err := e.c.MountAPI(e.j.Target, sandbox.APIMounts{Proc: true, Sys: true, Dev: true, Run: true, Tmp: true, Resolv: true}); err != nil {
			return fmt.Errorf("mount API filesystems: %w", err)
		}
		undo, err := e.c.BlockServices(e.j.Target)
		if err != nil {
			return err
		}
		defer func() {
			if uerr := undo(); uerr != nil && err == nil {
				err = uerr
			}
		}()
	}
	defer func() {
		// Unmount everything (binds first: they are on the stack last)
		// before the layer is read or the overlay unmounted.
		if uerr := e.c.Cleanup(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	return k.build(ctx, e, e.j.Params)
}

func (e *childEnv) Root() *fsroot.Root { return e.root }

func (e *childEnv) Run(ctx context.Context, argv []string, o stages.RunOptions) error {
	cmd := e.c.Command(ctx, e.j.Target, argv, sandbox.CmdOptions{Env: o.Env, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Dir: o.Dir, Epoch: e.j.Epoch})
	return runCmd(cmd, argv)
}

func (e *childEnv) RunHost(ctx context.Context, argv []string, o stages.RunOptions) error {
	cmd := e.c.HostCommand(ctx, argv, sandbox.CmdOptions{Env: o.Env, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Dir: o.Dir, Epoch: e.j.Epoch})
	return runCmd(cmd, argv)
}

func runCmd(cmd interface{ Run() error }, argv []string) error {
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

func (e *childEnv) Input(role string) (string, error) {
	p, ok := e.j.Inputs[role]
	if !ok {
		return "", fmt.Errorf("no input %q", role)
	}
	return p, nil
}

// Downloads stages the shared download cache name (its whole tree) into
// this build's scratch area by hard links (same filesystem), so concurrent builds never
// share a package manager's lock; publishDownloads adds what the build
// fetched to the shared cache once it succeeded.
func (e *childEnv) Downloads(name string) (string, error) {
	shared := filepath.Join(e.j.Downloads, name)
	private := filepath.Join(e.j.Scratch, "downloads", name)
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return "", err
	}
	if err := os.MkdirAll(private, 0o755); err != nil {
		return "", err
	}
	// Recursively: dnf keeps its packages and metadata in a directory per
	// repository, apt keeps flat directories.
	err := filepath.WalkDir(shared, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(shared, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(private, rel), 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		err = os.Link(p, filepath.Join(private, rel))
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return private, nil
}

// publishDownloads puts what a successful build downloaded into the shared
// caches: every file of its download directories that is not the shared
// file itself (a new package, or an index list the package manager
// replaced) is linked in, replacing the shared one atomically. Partial
// downloads and lock files are left out.
func publishDownloads(scratch, sharedRoot string) error {
	privateRoot := filepath.Join(scratch, "downloads")
	return filepath.WalkDir(privateRoot, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == privateRoot {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "partial" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || d.Name() == "lock" {
			return nil
		}
		rel, err := filepath.Rel(privateRoot, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(sharedRoot, rel)
		if same(p, dst) {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		tmp := dst + ".imgplan-publish"
		os.Remove(tmp)
		if err := os.Link(p, tmp); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	})
}

// same reports whether two paths name one inode.
func same(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// Bind mounts hostPath (a file or directory) onto imagePath, resolved
// inside the root; Cleanup undoes it with the other sandbox mounts.
func (e *childEnv) Bind(hostPath, imagePath string, readOnly bool) error {
	return e.c.Bind(e.j.Target, hostPath, imagePath, readOnly)
}

func (e *childEnv) Out() string { return e.j.Out }

func (e *childEnv) ParentData(i int) string {
	if i < 0 || i >= len(e.j.Parents) {
		return ""
	}
	return e.j.Parents[i]
}

func (e *childEnv) Indexes() []stages.Input { return e.j.Indexes }

func (e *childEnv) Key() digest.Digest { return e.j.Key }
func (e *childEnv) Epoch() int64       { return e.j.Epoch }
func (e *childEnv) Log() *slog.Logger  { return e.log }

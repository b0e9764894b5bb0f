package stages

import (
	"context"
	"io"
	"log/slog"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/fsroot"
)

// Env is what a builder works with. The executor runs every builder in a
// sandbox (private mount, PID, UTS and IPC namespaces) and implements Env
// there; builders never mount, chroot or touch the store themselves.
type Env interface {
	// Root is the image tree: for a stage, its writable merged overlay;
	// for an output, the finished tree, read-only. Every write through it
	// stays inside the tree whatever symlinks the image holds.
	Root() *fsroot.Root
	// Run runs argv chrooted into the image, with a clean environment
	// (SOURCE_DATE_EPOCH set) and services blocked from starting.
	Run(ctx context.Context, argv []string, o RunOptions) error
	// RunHost runs a build-host tool (mmdebstrap, mkfs.ext4) inside the
	// sandbox's namespaces, not chrooted.
	RunHost(ctx context.Context, argv []string, o RunOptions) error
	// Input returns the host path of a local input by role; the executor
	// has checked it still has the digest the plan recorded.
	Input(role string) (string, error)
	// Indexes are the repository indexes the node's key includes, with the
	// digests fetched at plan time (Role "index <url>").
	Indexes() []Input
	// Downloads returns a package download directory for this build,
	// seeded from the store's shared cache of that name (hard links, so
	// concurrent builds never share a package manager's lock); what the
	// build adds is published to the shared cache when it succeeds.
	Downloads(name string) (string, error)
	// Bind mounts a host directory onto a directory in the image until the
	// builder returns; the mount point is created if missing and removed
	// afterwards if it was.
	Bind(hostDir, imagePath string, readOnly bool) error
	// Out is the directory an output writes its artifact into.
	Out() string
	// ParentData is the payload directory of the node's i-th parent (the
	// tree's package list, the disk image a conversion reads).
	ParentData(i int) string
	// Key is the node's key, for deriving UUIDs and seeds.
	Key() digest.Digest
	// Epoch is SOURCE_DATE_EPOCH.
	Epoch() int64
	Log() *slog.Logger
}

// RunOptions adjust one command.
type RunOptions struct {
	Env    []string
	Stdin  io.Reader
	Stdout io.Writer // default: the build log
	Stderr io.Writer // default: the build log
	Dir    string    // working directory (in the image for Run)
}

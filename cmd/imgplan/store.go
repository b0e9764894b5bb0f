package main

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/exec"
	"github.com/imgplan/imgplan/pkg/plan"
	"github.com/imgplan/imgplan/pkg/stages"
)

// storeFlags are the flags of commands that use the store.
type storeFlags struct {
	cacheDir string
	offline  bool
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", exec.DefaultStoreDir, "the store of built stages")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "do not fetch repository indexes; use the digests last fetched")
}

// planned is a compiled plan with the store it was checked against (nil
// when the store could not be opened).
type planned struct {
	plan  *plan.Plan
	store *exec.Store
}

// compileWithStore loads and compiles a manifest, fetching repository
// index digests (or, offline, taking the last ones fetched), and marks
// each node cached or to build from the store.
func compileWithStore(ctx context.Context, lf *loadFlags, sf *storeFlags, path string, needStore bool) (*planned, error) {
	m, err := lf.load(path)
	if err != nil {
		return nil, err
	}
	store, err := exec.OpenStore(sf.cacheDir)
	var notes []string
	if err != nil {
		if needStore {
			return nil, err
		}
		notes = append(notes, fmt.Sprintf("no store (%v): every node shows as to build", err))
		store = nil
	}
	host, err := stages.ReadHostApt("/")
	if err != nil {
		return nil, err
	}
	tool := debBootstrapper()
	if tool != "mmdebstrap" && tool != "debootstrap" {
		return nil, usageError{fmt.Errorf("IMGPLAN_DEB_BOOTSTRAP=%q: mmdebstrap or debootstrap", tool)}
	}
	opts := []plan.Option{plan.WithHostApt(host), plan.WithDebBootstrapper(tool)}
	lockOpts, err := lockOptions(lf, m)
	if err != nil {
		return nil, err
	}
	opts = append(opts, lockOpts...)
	for _, n := range notes {
		opts = append(opts, plan.WithNote(n))
	}
	var ix *exec.Indexes
	if store != nil {
		ix = exec.NewIndexes(store, sf.offline)
		opts = append(opts, plan.WithIndex(func(url string) (digest.Digest, error) { return ix.Digest(ctx, url) }))
		if sf.offline {
			opts = append(opts, plan.WithNote("offline: repository index digests are those last fetched"))
		}
	}
	p, err := plan.Compile(m, opts...)
	if err != nil {
		return nil, err
	}
	if ix != nil {
		if unknown := ix.Unknown(); len(unknown) > 0 {
			what := fmt.Sprintf("%d repository indexes were never fetched and are", len(unknown))
			if len(unknown) == 1 {
				what = "1 repository index was never fetched and is"
			}
			p.Notes = append(p.Notes, "offline: "+what+" left out of the keys")
		}
	}
	if store != nil {
		p.Annotate(store)
	}
	return &planned{plan: p, store: store}, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// debBootstrapper is mmdebstrap, or debootstrap where mmdebstrap is not
// installed; IMGPLAN_DEB_BOOTSTRAP chooses one.
func debBootstrapper() string {
	if t := os.Getenv("IMGPLAN_DEB_BOOTSTRAP"); t != "" {
		return t
	}
	if _, err := osexec.LookPath("mmdebstrap"); err != nil {
		if _, err := osexec.LookPath("debootstrap"); err == nil {
			return "debootstrap"
		}
	}
	return "mmdebstrap"
}

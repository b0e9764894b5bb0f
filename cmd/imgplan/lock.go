package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/exec"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
	"github.com/imgplan/imgplan/pkg/stages"
)

func newLockCmd() *cobra.Command {
	var lf loadFlags
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "lock MANIFEST",
		Short: "Pin the exact package set (name, version, arch, checksum) in MANIFEST.lock.yaml",
		Long: "Lock builds the manifest's bootstrap and packages stages (reusing what the\n" +
			"store holds), and writes every package the packages stage installs, with its\n" +
			"version, architecture, SHA256 and archive path, to x.lock.yaml beside x.yaml.\n" +
			"apply, plan and diff then install from the lock: exactly those versions, each\n" +
			"download checked against the checksum. A lock whose manifest's package list or\n" +
			"sources changed is stale: apply says so and resolves afresh, or with --locked\n" +
			"fails. apt (Debian, Ubuntu) and dnf (CentOS, Rocky, Fedora) images.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lf.noLock = true
			path, err := lockManifest(cmd.Context(), cmd.ErrOrStderr(), &lf, &sf, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	lf.register(cmd)
	sf.register(cmd)
	return cmd
}

func lockManifest(ctx context.Context, log io.Writer, lf *loadFlags, sf *storeFlags, path string) (string, error) {
	m, err := lf.load(path)
	if err != nil {
		return "", err
	}
	family := m.Bootstrap.Family()
	if family != manifest.FamilyDeb && family != manifest.FamilyRPM {
		return "", fmt.Errorf("lock: %s: a %s bootstrap has no package manager to lock", path, family)
	}
	pl, err := compileWithStore(ctx, lf, sf, path, true)
	if err != nil {
		return "", err
	}
	lockPath := stages.LockPath(m.Path)
	pn := pl.plan.Node("packages")
	if pn == nil {
		l := &stages.Lock{Format: stages.LockFormat, Manager: stages.LockManager(family), Inputs: stages.LockInputs(m), Packages: []stages.LockedPackage{}}
		return lockPath, l.Write(lockPath)
	}
	sub := upTo(pl.plan, pn.ID)
	dir, err := os.MkdirTemp("", "imgplan-lock-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	rep, err := exec.New(pl.store, exec.WithLogger(slog.New(slog.NewTextHandler(log, nil)))).Apply(ctx, sub, dir)
	if err != nil {
		return "", fmt.Errorf("lock: building the packages stage: %w", err)
	}
	fmt.Fprintf(log, "%s: built %d, cached %d\n", path, rep.Built, rep.Cached)
	if family == manifest.FamilyRPM {
		l, err := resolveRPMLock(ctx, pl.store, sub, pn, m)
		if err != nil {
			return "", fmt.Errorf("lock: %w", err)
		}
		return lockPath, l.Write(lockPath)
	}
	after, err := dpkgStatus(pl.store, sub, pn.ID)
	if err != nil {
		return "", err
	}
	before, err := dpkgStatus(pl.store, sub, pn.Parents[0])
	if err != nil {
		return "", err
	}
	arch := nativeArch(before)
	lists, err := pl.store.DownloadDir("apt-lists/" + m.Bootstrap.Distro + "/" + arch)
	if err != nil {
		return "", err
	}
	debs, err := pl.store.DownloadDir("apt/" + m.Bootstrap.Distro + "/" + arch)
	if err != nil {
		return "", err
	}
	l, err := stages.ResolveLock(m, before, after, lists, debs)
	if err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	return lockPath, l.Write(lockPath)
}

// upTo returns the part of p that node id needs: it and its ancestors.
func upTo(p *plan.Plan, id string) *plan.Plan {
	need := map[string]bool{}
	var mark func(string)
	mark = func(id string) {
		if need[id] {
			return
		}
		need[id] = true
		if n := p.Node(id); n != nil {
			for _, pid := range n.Parents {
				mark(pid)
			}
		}
	}
	mark(id)
	sub := *p
	sub.Nodes = nil
	for _, n := range p.Nodes {
		if need[n.ID] {
			sub.Nodes = append(sub.Nodes, n)
		}
	}
	return &sub
}

// dpkgStatus reads the dpkg status file of the tree as of node id: from
// the nearest layer, going up the chain, that holds one.
func dpkgStatus(store *exec.Store, p *plan.Plan, id string) ([]byte, error) {
	for n := p.Node(id); n != nil; {
		obj, err := store.Get(n.Key)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(obj.Data(), "var/lib/dpkg/status"))
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) || len(n.Parents) == 0 {
			return nil, fmt.Errorf("lock: dpkg status of %s: %w", id, err)
		}
		n = p.Node(n.Parents[0])
	}
	return nil, fmt.Errorf("lock: no node %s", id)
}

// resolveRPMLock pins what the packages node pn installed: its rpm
// database against its parent's, with the locations and checksums of
// the repositories' metadata in the store's dnf cache.
func resolveRPMLock(ctx context.Context, store *exec.Store, p *plan.Plan, pn *plan.Node, m *manifest.Manifest) (*stages.Lock, error) {
	var params stages.PackagesParams
	if err := stages.DecodeParams(pn.Params, &params); err != nil {
		return nil, err
	}
	if params.RPM == nil {
		return nil, fmt.Errorf("the packages stage has no dnf setup")
	}
	after, err := rpmPackagesAt(ctx, store, p, pn.ID)
	if err != nil {
		return nil, err
	}
	before, err := rpmPackagesAt(ctx, store, p, pn.Parents[0])
	if err != nil {
		return nil, err
	}
	cache, err := store.DownloadDir("dnf/" + params.RPM.Distro + "/" + params.RPM.Arch)
	if err != nil {
		return nil, err
	}
	return stages.ResolveRPMLock(m, params.RPM, before, after, cache)
}

// rpmPackagesAt lists the rpm database of the tree as of node id: that of
// the nearest layer, going up the chain, that holds one.
func rpmPackagesAt(ctx context.Context, store *exec.Store, p *plan.Plan, id string) ([]stages.RPMPackage, error) {
	for n := p.Node(id); n != nil; {
		obj, err := store.Get(n.Key)
		if err != nil {
			return nil, err
		}
		db := filepath.Join(obj.Data(), "var/lib/rpm")
		if stages.HasRPMDB(db) {
			return stages.ListRPMDB(ctx, db)
		}
		if len(n.Parents) == 0 {
			break
		}
		n = p.Node(n.Parents[0])
	}
	return nil, fmt.Errorf("no rpm database in /var/lib/rpm of the tree of %s", id)
}

// nativeArch is the architecture of the dpkg package in a status file.
func nativeArch(status []byte) string {
	for _, pkg := range stages.ParseDpkgStatus(status) {
		if pkg.Name == "dpkg" {
			return pkg.Arch
		}
	}
	return "amd64"
}

// lockOptions finds the manifest's lock and returns the plan options and
// notes for it: installs pinned by a current lock; a stale or missing
// lock is an error with --locked and a note otherwise.
func lockOptions(lf *loadFlags, m *manifest.Manifest) ([]plan.Option, error) {
	if lf.noLock {
		return nil, nil
	}
	path := stages.LockPath(m.Path)
	l, err := stages.ReadLock(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if lf.locked {
			return nil, fmt.Errorf("--locked: %s has no lock file %s; run imgplan lock", m.Path, path)
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	if err := stages.CheckLock(l, m, path); err != nil {
		if !errors.Is(err, stages.ErrStaleLock) {
			return nil, err
		}
		if lf.locked {
			return nil, fmt.Errorf("--locked: %w", err)
		}
		return []plan.Option{plan.WithNote(err.Error() + "; packages are resolved from the archive")}, nil
	}
	return []plan.Option{plan.WithLock(path), plan.WithNote(fmt.Sprintf("packages pinned by %s (%d packages)", path, len(l.Packages)))}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/diff"
	"github.com/imgplan/imgplan/pkg/exec"
	"github.com/imgplan/imgplan/pkg/stages"
)

func newDiffCmd() *cobra.Command {
	var lf loadFlags
	var sf storeFlags
	var format, base string
	var built bool
	cmd := &cobra.Command{
		Use:   "diff OLD.yaml NEW.yaml | diff --base REV MANIFEST",
		Short: "Show what a manifest change does to the image, and which stages rebuild",
		Long: "Diff compares two manifests, or (--base REV) a manifest in the working tree\n" +
			"with the same manifest and everything it reads at a git revision. It reports\n" +
			"packages, files (with a short diff of text), fstab, users, services, hooks,\n" +
			"layout, outputs and bootstrap added, removed or changed, and for every stage\n" +
			"whether it rebuilds (and why) or stays cached.\n\n" +
			"--built builds both sides (stages already in the store are reused) and adds\n" +
			"the difference of the real images: files added, removed or modified (content,\n" +
			"mode, owner), package versions, and the size of every output.",
		Args: func(cmd *cobra.Command, args []string) error {
			if base != "" {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			write, ok := diffWriters[format]
			if !ok {
				return usageError{fmt.Errorf("unknown --format %q (text, json, markdown)", format)}
			}
			ctx := cmd.Context()
			oldPath, newPath := "", args[len(args)-1]
			oldName, newName := "", newPath
			if base != "" {
				dir, err := os.MkdirTemp("", "imgplan-diff-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				oldPath, err = materialise(ctx, newPath, base, dir)
				if err != nil {
					return err
				}
				oldName = newPath + "@" + base
			} else {
				oldPath, oldName = args[0], args[0]
			}
			oldSide, oldPl, err := diffSide(ctx, &lf, &sf, oldPath, oldName, built)
			if err != nil {
				return err
			}
			newSide, newPl, err := diffSide(ctx, &lf, &sf, newPath, newName, built)
			if err != nil {
				return err
			}
			d := diff.Compare(oldSide, newSide)
			if built {
				d.Built, err = buildBoth(ctx, cmd.ErrOrStderr(), oldPl, newPl)
				if err != nil {
					return err
				}
			}
			return write(cmd.OutOrStdout(), d)
		},
	}
	lf.register(cmd)
	sf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	cmd.Flags().StringVar(&base, "base", "", "compare MANIFEST with itself at this git revision")
	cmd.Flags().BoolVar(&built, "built", false, "build both sides and compare the images")
	return cmd
}

var diffWriters = map[string]func(io.Writer, *diff.Diff) error{
	"text":     diff.WriteText,
	"json":     diff.WriteJSON,
	"markdown": diff.WriteMarkdown,
}

func diffSide(ctx context.Context, lf *loadFlags, sf *storeFlags, path, name string, needStore bool) (diff.Side, *planned, error) {
	m, err := lf.load(path)
	if err != nil {
		return diff.Side{}, nil, err
	}
	pl, err := compileWithStore(ctx, lf, sf, path, needStore)
	if err != nil {
		return diff.Side{}, nil, err
	}
	side := diff.Side{Name: name, Manifest: m, Plan: pl.plan}
	if l, err := stages.ReadLock(stages.LockPath(m.Path)); err == nil {
		side.Lock = l
	} else if !errors.Is(err, os.ErrNotExist) {
		return diff.Side{}, nil, err
	}
	return side, pl, nil
}

// materialise writes the git tree of the repository holding manifest at
// rev into dir, keeping relative paths, and returns where the manifest is
// in it. Git keeps only the executable bit of a file's mode: files come
// out 0644 or 0755, as a checkout with umask 022 has them. Everything the manifest reads through relative paths (bases,
// src files, trees, scripts) is then read as it was at rev.
func materialise(ctx context.Context, manifestPath, rev, dir string) (string, error) {
	abs, err := filepath.Abs(manifestPath)
	if err != nil {
		return "", err
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	top, err := gitOut(ctx, filepath.Dir(abs), "rev-parse", "--show-toplevel")
	if err != nil {
		return "", fmt.Errorf("--base: %s is not in a git repository: %w", manifestPath, err)
	}
	top = strings.TrimSpace(top)
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return "", err
	}
	if _, err := gitOut(ctx, top, "rev-parse", "--verify", "--quiet", rev+"^{commit}"); err != nil {
		return "", usageError{fmt.Errorf("--base %s: not a revision of %s", rev, top)}
	}
	archive := osexec.CommandContext(ctx, "git", "-C", top, "-c", "tar.umask=0022", "archive", "--format=tar", rev)
	extract := osexec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	var aerr, xerr strings.Builder
	archive.Stderr, extract.Stderr, extract.Stdin = &aerr, &xerr, pipe
	if err := archive.Start(); err != nil {
		return "", err
	}
	if err := extract.Run(); err != nil {
		archive.Wait() //nolint:errcheck // the extract error says more
		return "", fmt.Errorf("--base %s: extracting: %w: %s", rev, err, xerr.String())
	}
	if err := archive.Wait(); err != nil {
		return "", fmt.Errorf("--base %s: git archive: %w: %s", rev, err, aerr.String())
	}
	old := filepath.Join(dir, rel)
	if _, err := os.Stat(old); err != nil {
		return "", fmt.Errorf("--base %s: %s did not exist at that revision", rev, rel)
	}
	return old, nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := osexec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return string(out), nil
}

// buildBoth applies both plans into temporary output directories and
// compares what they hold.
func buildBoth(ctx context.Context, log io.Writer, a, b *planned) (*diff.Built, error) {
	dir, err := os.MkdirTemp("", "imgplan-diff-built-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	outs := []string{filepath.Join(dir, "old"), filepath.Join(dir, "new")}
	for i, pl := range []*planned{a, b} {
		opts := []exec.Option{exec.WithLogger(slog.New(slog.NewTextHandler(log, nil)))}
		rep, err := exec.New(pl.store, opts...).Apply(ctx, pl.plan, outs[i])
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", pl.plan.Manifest, err)
		}
		fmt.Fprintf(log, "%s: built %d, cached %d\n", pl.plan.Manifest, rep.Built, rep.Cached)
	}
	return diff.CompareBuilt(outs[0], outs[1])
}

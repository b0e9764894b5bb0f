package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/exec"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// remoteFlags name the remote caches of an apply. The environment gives
// defaults that hold for every manifest (IMGPLAN_CACHE_FROM, a
// comma-separated list, and IMGPLAN_CACHE_TO), so CI runners can share a
// cache without touching the manifests.
type remoteFlags struct {
	from []string
	to   string
}

func (f *remoteFlags) register(cmd *cobra.Command) {
	var from []string
	if env := os.Getenv("IMGPLAN_CACHE_FROM"); env != "" {
		from = strings.Split(env, ",")
	}
	cmd.Flags().StringSliceVar(&f.from, "cache-from", from,
		"OCI repository to pull missing stages from before building them, [http://]host[:port]/path (repeatable; env IMGPLAN_CACHE_FROM)")
	cmd.Flags().StringVar(&f.to, "cache-to", os.Getenv("IMGPLAN_CACHE_TO"),
		"OCI repository to push every stage of the apply to (env IMGPLAN_CACHE_TO)")
}

func (f *remoteFlags) options() ([]exec.Option, error) {
	var opts []exec.Option
	for _, ref := range f.from {
		if ref == "" {
			continue
		}
		r, err := exec.OpenRemote(ref)
		if err != nil {
			return nil, usageError{err}
		}
		opts = append(opts, exec.WithCacheFrom(r))
	}
	if f.to != "" {
		r, err := exec.OpenRemote(f.to)
		if err != nil {
			return nil, usageError{err}
		}
		opts = append(opts, exec.WithCacheTo(r))
	}
	return opts, nil
}

func newCacheCmd() *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect, collect, verify and move the store of built stages",
	}
	cmd.PersistentFlags().StringVar(&cacheDir, "cache-dir", exec.DefaultStoreDir, "the store of built stages")
	open := func() (*exec.Store, error) { return exec.OpenStore(cacheDir) }

	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List objects: key, kind, size, last use, manifests that use them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			entries, err := s.List()
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tKIND\tSIZE\tLAST USED\tMANIFESTS")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Meta.Key.Short(), e.Meta.Kind, humanBytes(e.Meta.Size),
					e.LastUsed.UTC().Format(time.RFC3339), strings.Join(e.Manifests, ","))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "one JSON array of objects")

	du := &cobra.Command{
		Use:   "du",
		Short: "Show how much space the objects take, in total and by kind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			entries, err := s.List()
			if err != nil {
				return err
			}
			byKind := map[string]int64{}
			count := map[string]int{}
			var kinds []string
			var total int64
			for _, e := range entries {
				if _, ok := byKind[e.Meta.Kind]; !ok {
					kinds = append(kinds, e.Meta.Kind)
				}
				byKind[e.Meta.Kind] += e.Meta.Size
				count[e.Meta.Kind]++
				total += e.Meta.Size
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, k := range kinds {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", k, count[k], humanBytes(byKind[k]))
			}
			fmt.Fprintf(tw, "total\t%d\t%s\t%d bytes\n", len(entries), humanBytes(total), total)
			return tw.Flush()
		},
	}

	var maxSize string
	var keep time.Duration
	var dryRun bool
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove objects unused for --keep-duration, then least recently used ones down to --max-size",
		Long: "gc removes objects not used for longer than --keep-duration, then, while\n" +
			"the store is over --max-size, the least recently used ones. Objects held by a\n" +
			"build or by an apply in progress are never removed (they are listed as busy).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o exec.GCOptions
			if maxSize != "" {
				n, err := manifest.ParseSize(maxSize)
				if err != nil {
					return usageError{fmt.Errorf("--max-size: %w", err)}
				}
				o.MaxSize = n
			}
			if o.MaxSize == 0 && keep == 0 {
				return usageError{errors.New("gc needs --max-size or --keep-duration")}
			}
			o.KeepDuration, o.DryRun = keep, dryRun
			s, err := open()
			if err != nil {
				return err
			}
			res, err := s.GC(time.Now(), o)
			if err != nil {
				return err
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, e := range res.Removed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\t%s\n", verb, e.Meta.Key.Short(), e.Meta.Kind, humanBytes(e.Meta.Size))
			}
			for _, e := range res.Busy {
				fmt.Fprintf(cmd.OutOrStdout(), "busy\t%s\t%s\t%s\n", e.Meta.Key.Short(), e.Meta.Kind, humanBytes(e.Meta.Size))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s %d objects, %s; the store now takes %s\n", verb, len(res.Removed), humanBytes(res.Freed), humanBytes(res.Size))
			return nil
		},
	}
	gc.Flags().StringVar(&maxSize, "max-size", "", "bound on the objects' total size (e.g. 20GiB, 500MB, 1048576)")
	gc.Flags().DurationVar(&keep, "keep-duration", 0, "remove objects unused for longer than this (e.g. 720h)")
	gc.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute every object's content digest; quarantine altered objects so they are rebuilt",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			ok := 0
			altered, err := s.Verify(cmd.Context(), func(r exec.VerifyResult) {
				switch r.Status {
				case "ok":
					ok++
				case "altered":
					fmt.Fprintf(cmd.OutOrStdout(), "ALTERED\t%s\t%s\tcontent %s; moved to %s, will be rebuilt\n", r.Key.Short(), r.Kind, r.Got.Short(), r.Quarantine)
				case "busy":
					fmt.Fprintf(cmd.OutOrStdout(), "busy\t%s\t%s\tin use, not checked\n", r.Key.Short(), r.Kind)
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d objects intact, %d altered\n", ok, altered)
			if altered > 0 {
				return fmt.Errorf("%d altered objects quarantined", altered)
			}
			return nil
		},
	}

	var asFile bool
	export := &cobra.Command{
		Use:   "export DIR|FILE",
		Short: "Write every object to an OCI image layout (a directory, or a tar file with --file or a .tar name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			file := asFile || strings.HasSuffix(args[0], ".tar")
			n, err := s.Export(cmd.Context(), args[0], file, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d objects to %s\n", n, args[0])
			return nil
		},
	}
	export.Flags().BoolVar(&asFile, "file", false, "write a tar file (the default for names ending in .tar)")

	imp := &cobra.Command{
		Use:   "import DIR|FILE",
		Short: "Add the objects of an exported OCI image layout, each verified against its digests",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := open()
			if err != nil {
				return err
			}
			n, err := s.Import(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "imported %d objects from %s\n", n, args[0])
			return nil
		},
	}
	cmd.AddCommand(ls, du, gc, verify, export, imp)
	for _, c := range cmd.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	return cmd
}

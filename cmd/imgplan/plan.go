package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
)

func newValidateCmd() *cobra.Command {
	var lf loadFlags
	cmd := &cobra.Command{
		Use:   "validate MANIFEST...",
		Short: "Check manifests and everything they read; report every problem",
		Long: "Validate reads each manifest with its bases, applies --set overrides, checks\n" +
			"every field and every local file it names, and compiles its plan. Every\n" +
			"problem in every file is reported, as file:line:column: message.\n" +
			"Exit status 2 when any manifest has a problem.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, path := range args {
				if _, err := lf.compile(path); err != nil {
					if !errors.Is(err, manifest.ErrInvalid) {
						return err
					}
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			}
			return manifest.Join(errs...)
		},
	}
	lf.register(cmd)
	return cmd
}

func newPlanCmd() *cobra.Command {
	var lf loadFlags
	var sf storeFlags
	var format string
	cmd := &cobra.Command{
		Use:   "plan MANIFEST",
		Short: "Show the stage DAG with keys, what is cached and what would build",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			write, ok := planWriters[format]
			if !ok {
				return usageError{fmt.Errorf("unknown --format %q (text, json, markdown)", format)}
			}
			pl, err := compileWithStore(cmd.Context(), &lf, &sf, args[0], false)
			if err != nil {
				return err
			}
			return write(cmd.OutOrStdout(), pl.plan)
		},
	}
	lf.register(cmd)
	sf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	cmd.Flags().BoolVar(&lf.locked, "locked", false, "fail when the manifest's lock file is missing or stale")
	return cmd
}

var planWriters = map[string]func(io.Writer, *plan.Plan) error{
	"text":     plan.WriteText,
	"json":     plan.WriteJSON,
	"markdown": plan.WriteMarkdown,
}

func newGraphCmd() *cobra.Command {
	var lf loadFlags
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "graph MANIFEST",
		Short: "Print the stage DAG as Graphviz DOT (cached nodes filled grey)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pl, err := compileWithStore(cmd.Context(), &lf, &sf, args[0], false)
			if err != nil {
				return err
			}
			return plan.WriteDOT(cmd.OutOrStdout(), pl.plan)
		},
	}
	lf.register(cmd)
	sf.register(cmd)
	return cmd
}

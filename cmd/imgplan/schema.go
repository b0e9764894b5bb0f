package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
)

func newSchemaCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of manifests (for editors), or the field reference",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(manifest.Schema())
			case "markdown":
				return manifest.WriteReference(cmd.OutOrStdout())
			}
			return usageError{fmt.Errorf("unknown --format %q (json, markdown)", format)}
		},
	}
	cmd.Flags().StringVar(&format, "format", "json", "json (JSON Schema) or markdown (field reference)")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the formats it reads and writes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imgplan %s\nmanifest %s, plan %s, keys %s\n", v, manifest.APIVersion, plan.Format, plan.KeyFormat)
			return nil
		},
	}
}

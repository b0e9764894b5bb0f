// Command imgplan builds OS images from declarative manifests: plan shows
// what would be built and what is cached, apply builds it.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/imgplan/imgplan/pkg/exec/sandbox"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// Exit statuses.
const (
	exitFailure = 1 // the build or an I/O operation failed
	exitInvalid = 2 // bad input: a manifest problem or a usage error
)

// usageError marks errors in how imgplan was called.
type usageError struct{ error }

func main() {
	// A re-exec of this binary as a build sandbox runs there and exits.
	sandbox.Init()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ue usageError
	switch {
	case errors.Is(err, manifest.ErrInvalid):
		problems := manifest.Problems(err)
		fmt.Fprintln(stderr, err)
		if n := len(problems); n > 1 {
			fmt.Fprintf(stderr, "%d problems\n", n)
		}
		return exitInvalid
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "imgplan: %v\n", err)
		fmt.Fprintln(stderr, "Run 'imgplan --help' for usage.")
		return exitInvalid
	}
	fmt.Fprintf(stderr, "imgplan: %v\n", err)
	return exitFailure
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "imgplan",
		Short:         "Build OS images from declarative manifests, stage by cached stage",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newValidateCmd(),
		newPlanCmd(),
		newApplyCmd(),
		newDiffCmd(),
		newLockCmd(),
		newGraphCmd(),
		newCacheCmd(),
		newSchemaCmd(),
		newVersionCmd(),
	)
	for _, c := range root.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	return root
}

// wrapArgs marks argument-count errors as usage errors.
func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	if check == nil {
		return nil
	}
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

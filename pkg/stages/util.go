package stages

import (
	"bytes"
	"context"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

// exists reports whether an image path exists (following symlinks).
func exists(r *fsroot.Root, p string) bool {
	_, err := r.Stat(p)
	return err == nil
}

// firstExisting returns the first of the image paths that exists, or "".
func firstExisting(r *fsroot.Root, paths ...string) string {
	for _, p := range paths {
		if exists(r, p) {
			return p
		}
	}
	return ""
}

// output runs argv in the image and returns its standard output.
func output(ctx context.Context, env Env, argv ...string) (string, error) {
	var out bytes.Buffer
	err := env.Run(ctx, argv, RunOptions{Stdout: &out})
	return out.String(), err
}

// setVar sets KEY=value in a shell-style variables file's text (replacing
// an existing assignment, else appending).
func setVar(text, key, value string) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		lines = nil
	}
	line := key + "=" + value
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), key+"=") {
			lines[i] = line
			return strings.Join(lines, "\n") + "\n"
		}
	}
	return strings.Join(append(lines, line), "\n") + "\n"
}

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBlockServices checks the policy-rc.d that invoke-rc.d consults: it
// refuses (exit 101) inside the image, its undo removes it, and an image's
// own policy, or an image without /usr/sbin, is left as it is.
func TestBlockServices(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name      string
		setup     func(t *testing.T, dir, root string)
		policy    string // what running policy-rc.d inside printed
		mode      string // its mode
		afterUndo bool   // policy-rc.d still there after undo
	}{
		{name: "written and undone", policy: "rc=101\n", mode: "-rwxr-xr-x", setup: func(t *testing.T, _, root string) {
			must(t, os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755))
		}},
		{name: "image's own kept", policy: "rc=0\n", mode: "-rwxr-xr-x", afterUndo: true, setup: func(t *testing.T, _, root string) {
			must(t, os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 0\n"), 0o755))
		}},
		{name: "no /usr/sbin", policy: "none\n"},
		{name: "/usr pointing at the host", policy: "none\n", setup: func(t *testing.T, dir, root string) {
			host := filepath.Join(dir, "host-usr")
			must(t, os.MkdirAll(filepath.Join(host, "sbin"), 0o755))
			must(t, os.Symlink(host, filepath.Join(root, "usr")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			buildRoot(t, root, rootOpts{})
			if tt.setup != nil {
				tt.setup(t, dir, root)
			}
			before := snapshot(t, dir)
			outPath := filepath.Join(dir, "..", filepath.Base(dir)+".json")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := Run(ctx, "test-services", servicesArg{Root: root, Out: outPath}, testOptions(t)); err != nil {
				t.Fatal(err)
			}
			var out servicesOut
			readJSON(t, outPath, &out)
			os.Remove(outPath)
			if out.BlockError != "" {
				t.Fatalf("BlockServices: %s", out.BlockError)
			}
			if out.Policy != tt.policy {
				t.Errorf("policy-rc.d inside printed %q, want %q", out.Policy, tt.policy)
			}
			if out.Mode != tt.mode {
				t.Errorf("policy-rc.d mode %q, want %q", out.Mode, tt.mode)
			}
			if out.AfterUndo != tt.afterUndo {
				t.Errorf("policy-rc.d there after undo: %v, want %v", out.AfterUndo, tt.afterUndo)
			}
			if out.UndoAgain != "" {
				t.Errorf("second undo: %s", out.UndoAgain)
			}
			sameTree(t, "test dir", before, snapshot(t, dir))
		})
	}
}

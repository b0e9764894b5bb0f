package sandbox

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCommands checks lookups in the image's PATH, working directory,
// stdin, cancellation, HostCommand's environment and Bind.
func TestCommands(t *testing.T) {
	needRoot(t)
	dir := sharedTempDir(t)
	root := filepath.Join(dir, "root")
	buildRoot(t, root, rootOpts{})
	shared := filepath.Join(dir, "shared")
	must(t, os.Mkdir(shared, 0o755))
	must(t, os.WriteFile(filepath.Join(shared, "file"), []byte("shared\n"), 0o644))
	before := snapshot(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	arg := commandsArg{Root: root, HostPATH: os.Getenv("PATH"), Shared: shared}
	if err := Run(ctx, "test-commands", arg, testOptions(t)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "test dir", before, snapshot(t, dir))
	if m := mountsUnder(t, "/proc/self/mountinfo", dir); len(m) != 0 {
		t.Errorf("host mounts under the test dir after Run: %v", m)
	}
}

// TestChildWithoutArgument starts a sandbox child the way Run does but
// closes the argument pipe unwritten, as a parent that died right after the
// fork would: the child must not run the Func, since its Pdeathsig may have
// been armed too late to fire.
func TestChildWithoutArgument(t *testing.T) {
	needRoot(t)
	for _, role := range []string{roleInit, roleWorker} {
		t.Run(role, func(t *testing.T) {
			argR, argW, err := os.Pipe()
			must(t, err)
			resR, resW, err := os.Pipe()
			must(t, err)
			defer resR.Close()
			argW.Write([]byte(`{"half":`))
			argW.Close()
			p, err := os.StartProcess("/proc/self/exe", []string{"imgplan-sandbox", "test-fail"}, &os.ProcAttr{
				Env:   append(os.Environ(), envRole+"="+role+":test-fail"),
				Files: []*os.File{nil, os.Stderr, os.Stderr, argR, resW},
			})
			must(t, err)
			argR.Close()
			resW.Close()
			st, err := p.Wait()
			must(t, err)
			if st.ExitCode() != exitOrphan {
				t.Errorf("child exited with %v, want status %d", st, exitOrphan)
			}
			if b, _ := io.ReadAll(resR); len(b) != 0 {
				t.Errorf("child reported %q, want nothing", b)
			}
		})
	}
}

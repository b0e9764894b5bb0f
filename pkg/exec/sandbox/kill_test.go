package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillSafety kills a running sandbox — one that has mounted the API
// filesystems and left daemons running — in every way it can end abruptly,
// and checks that within 2 s no process and no mount of it remains.
func TestKillSafety(t *testing.T) {
	needRoot(t)
	t.Run("parent SIGKILLed", func(t *testing.T) {
		s := newKillSetup(t)
		// The test binary plays imgplan: it calls Run and is SIGKILLed.
		arg, err := json.Marshal(s.arg)
		must(t, err)
		helper := exec.Command("/proc/self/exe", "-test.run=^$")
		helper.Env = append(os.Environ(), testParentEnv+"="+string(arg))
		out := &childOutput{}
		out.logOnFailure(t)
		helper.Stdout, helper.Stderr = out, out
		helper.WaitDelay = 5 * time.Second
		must(t, helper.Start())
		waited := false
		t.Cleanup(func() {
			if !waited {
				helper.Process.Kill()
				helper.Wait()
			}
		})
		pids := s.waitRunning(t)
		if pid := parentOf(pids.Init); pid != helper.Process.Pid {
			t.Fatalf("sandbox init's parent is %d, want the helper %d", pid, helper.Process.Pid)
		}
		must(t, helper.Process.Signal(syscall.SIGKILL))
		helper.Wait()
		waited = true
		s.checkGone(t, pids)
	})
	t.Run("init SIGKILLed", func(t *testing.T) {
		s := newKillSetup(t)
		r := s.start(t, context.Background())
		pids := s.waitRunning(t)
		must(t, syscall.Kill(pids.Init, syscall.SIGKILL))
		err := r.result(t)
		if !errors.Is(err, ErrDied) || !strings.Contains(err.Error(), "signal: killed") {
			t.Errorf("Run = %v, want %v naming the signal", err, ErrDied)
		}
		s.checkGone(t, pids)
	})
	t.Run("worker SIGKILLed", func(t *testing.T) {
		s := newKillSetup(t)
		r := s.start(t, context.Background())
		pids := s.waitRunning(t)
		must(t, syscall.Kill(pids.Worker, syscall.SIGKILL))
		err := r.result(t)
		if !errors.Is(err, ErrDied) || !strings.Contains(err.Error(), "worker signal: killed") {
			t.Errorf("Run = %v, want %v naming the signal", err, ErrDied)
		}
		s.checkGone(t, pids)
	})
	t.Run("context cancelled", func(t *testing.T) {
		s := newKillSetup(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := s.start(t, ctx)
		pids := s.waitRunning(t)
		cancel()
		if err := r.result(t); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want %v", err, context.Canceled)
		}
		s.checkGone(t, pids)
	})
}

type killSetup struct {
	dir string
	arg blockArg
}

func newKillSetup(t *testing.T) *killSetup {
	dir := sharedTempDir(t)
	s := &killSetup{dir: dir, arg: blockArg{
		Root:   filepath.Join(dir, "root"),
		Marker: randomName("sbxmark-"),
		Ready:  filepath.Join(dir, "ready.json"),
	}}
	buildRoot(t, s.arg.Root, rootOpts{marker: s.arg.Marker})
	reapMarked(t, s.arg.Marker)
	return s
}

// running is a Run in progress in this test process.
type running struct{ done chan error }

func (s *killSetup) start(t *testing.T, ctx context.Context) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{done: make(chan error, 1)}
	opts := testOptions(t)
	go func() { r.done <- Run(ctx, "test-block", s.arg, opts) }()
	t.Cleanup(func() {
		cancel() // a test that failed early must not leave the sandbox behind
		<-r.done
	})
	return r
}

// result is Run's error, which must come within 2 s.
func (r *running) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2 s")
		return nil
	}
}

// waitRunning waits for the sandbox to be ready and checks that it really
// has its daemons and mounts, and that none of its mounts shows on the host.
func (s *killSetup) waitRunning(t *testing.T) hostPIDs {
	t.Helper()
	if !eventually(10*time.Second, func() bool { _, err := os.Stat(s.arg.Ready); return err == nil }) {
		t.Fatal("the sandbox did not get ready")
	}
	var pids hostPIDs
	readJSON(t, s.arg.Ready, &pids)
	t.Cleanup(func() {
		if isSandbox(pids.Init) { // a failed test must not leave it behind
			syscall.Kill(pids.Init, syscall.SIGKILL)
		}
	})
	if n := len(procsWith(s.arg.Marker)); n != 2 {
		t.Fatalf("%d marked daemons running, want 2", n)
	}
	if m := mountsUnder(t, "/proc/"+strconv.Itoa(pids.Worker)+"/mountinfo", s.arg.Root); len(m) < 5 {
		t.Fatalf("the sandbox has only mounts %v in the image", m)
	}
	if m := mountsUnder(t, "/proc/self/mountinfo", s.dir); len(m) != 0 {
		t.Fatalf("sandbox mounts show on the host: %v", m)
	}
	return pids
}

// checkGone checks that within 2 s the sandbox's processes, its daemons and
// its mounts are gone.
func (s *killSetup) checkGone(t *testing.T, pids hostPIDs) {
	t.Helper()
	var left []int
	var mounts []string
	ok := eventually(2*time.Second, func() bool {
		left = procsWith(s.arg.Marker)
		for _, pid := range []int{pids.Init, pids.Worker} {
			if isSandbox(pid) {
				left = append(left, pid)
			}
		}
		mounts = mountsUnder(t, "/proc/self/mountinfo", s.dir)
		return len(left) == 0 && len(mounts) == 0
	})
	if !ok {
		t.Errorf("2 s after the kill: processes %v and mounts %v remain", left, mounts)
	}
}

func isSandbox(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.HasPrefix(string(b), "imgplan-sandbox")
}

func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces, so cut after ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The funcs the tests run in sandboxes, registered as imgplan's stages will
// be: in init, so the re-executed test binary finds them.
func init() {
	Register("test-ok", func(context.Context, *Child, json.RawMessage) error { return nil })
	Register("test-fail", func(_ context.Context, _ *Child, arg json.RawMessage) error {
		return fmt.Errorf("boom: %s", arg)
	})
	Register("test-panic", func(context.Context, *Child, json.RawMessage) error { panic("kaboom") })
	Register("test-exit", func(context.Context, *Child, json.RawMessage) error {
		os.Exit(3)
		return nil
	})
	Register("test-selfkill", func(context.Context, *Child, json.RawMessage) error {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
		return nil
	})
	Register("test-probe", probe)
	Register("test-daemon", daemon)
	Register("test-block", block)
	Register("test-services", services)
	Register("test-commands", commands)
	Register("test-reap", reap)
}

type probeArg struct {
	Root    string
	API     APIMounts
	Block   bool     // BlockServices, never undone by the func
	Scripts []string // run with the image's sh -c, in order
	Out     string   // host path for the probeOut
	Host    int      // host PID whose mount table to capture while mounted
}

type probeOut struct {
	MountErr  string   // MountAPI's error, after which no script runs
	Outputs   []string // each script's stdout and stderr
	Errors    []string // each script's exit error, "" for success
	Mountinfo string   // the sandbox's own mount table after MountAPI
	// The host's mount table at the same time, read through the host's
	// procfs, which is still at /proc outside the image.
	HostMountinfo string
}

// probe mounts the API filesystems, runs scripts chrooted and reports.
func probe(ctx context.Context, c *Child, raw json.RawMessage) error {
	var a probeArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	var out probeOut
	if err := c.MountAPI(a.Root, a.API); err != nil {
		out.MountErr = err.Error()
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	out.Mountinfo = string(mi)
	if a.Host != 0 {
		hmi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", a.Host))
		if err != nil {
			return err
		}
		out.HostMountinfo = string(hmi)
	}
	if out.MountErr != "" {
		return writeJSON(a.Out, out)
	}
	if a.Block {
		if _, err := c.BlockServices(a.Root); err != nil {
			return err
		}
	}
	for _, s := range a.Scripts {
		var buf bytes.Buffer
		cmd := c.Command(ctx, a.Root, []string{"sh", "-c", s}, CmdOptions{Stdout: &buf, Stderr: &buf, Epoch: 1234, Env: []string{"EXTRA=yes"}})
		err := cmd.Run()
		out.Outputs = append(out.Outputs, buf.String())
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
		} else {
			out.Errors = append(out.Errors, "")
		}
	}
	if err := writeJSON(a.Out, out); err != nil {
		return err
	}
	return c.Cleanup()
}

type daemonArg struct {
	Root, Marker string
}

// daemon leaves a daemon behind and returns.
func daemon(ctx context.Context, c *Child, raw json.RawMessage) error {
	var a daemonArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	if err := c.MountAPI(a.Root, APIMounts{Proc: true, Dev: true}); err != nil {
		return err
	}
	script := "busybox setsid /" + a.Marker + "/sleep 1000 </dev/null >/dev/null 2>&1 &"
	if err := c.Command(ctx, a.Root, []string{"sh", "-c", script}, CmdOptions{}).Run(); err != nil {
		return err
	}
	if !eventually(5*time.Second, func() bool { return len(procsWith(a.Marker)) == 1 }) {
		return errors.New("the daemon did not start")
	}
	return nil
}

type blockArg struct {
	Root, Marker string
	Ready        string // host path: hostPIDs once everything runs
}

// block mounts everything, starts two marked daemons (an orphan reparented
// to init and a child of the worker) and waits to be killed.
func block(ctx context.Context, c *Child, raw json.RawMessage) error {
	var a blockArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	if err := c.MountAPI(a.Root, allAPI()); err != nil {
		return err
	}
	sleep := "/" + a.Marker + "/sleep"
	script := "busybox setsid " + sleep + " 1000 </dev/null >/dev/null 2>&1 &"
	if err := c.Command(ctx, a.Root, []string{"sh", "-c", script}, CmdOptions{}).Run(); err != nil {
		return err
	}
	if err := c.Command(ctx, a.Root, []string{sleep, "1001"}, CmdOptions{}).Start(); err != nil {
		return err
	}
	if !eventually(5*time.Second, func() bool { return len(procsWith(a.Marker)) == 2 }) {
		return errors.New("the daemons did not start")
	}
	pids, err := readHostPIDs()
	if err != nil {
		return err
	}
	if err := writeJSON(a.Ready, pids); err != nil {
		return err
	}
	time.Sleep(time.Hour)
	return errors.New("not killed")
}

type servicesArg struct {
	Root string
	Out  string
}

type servicesOut struct {
	Policy     string // output of running policy-rc.d, and its exit status
	Mode       string // policy-rc.d's mode before undo
	AfterUndo  bool   // policy-rc.d exists after undo
	UndoAgain  string // error of a second undo
	BlockError string
}

func services(ctx context.Context, c *Child, raw json.RawMessage) error {
	var a servicesArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	var out servicesOut
	undo, err := c.BlockServices(a.Root)
	if err != nil {
		out.BlockError = err.Error()
	}
	var buf bytes.Buffer
	script := "if [ -e /usr/sbin/policy-rc.d ]; then /usr/sbin/policy-rc.d sshd start; echo rc=$?; else echo none; fi"
	c.Command(ctx, a.Root, []string{"sh", "-c", script}, CmdOptions{Stdout: &buf, Stderr: &buf}).Run()
	out.Policy = buf.String()
	if fi, err := os.Lstat(a.Root + "/usr/sbin/policy-rc.d"); err == nil {
		out.Mode = fi.Mode().String()
	}
	if err := undo(); err != nil {
		return err
	}
	_, err = os.Lstat(a.Root + "/usr/sbin/policy-rc.d")
	out.AfterUndo = err == nil
	if err := undo(); err != nil {
		out.UndoAgain = err.Error()
	}
	return writeJSON(a.Out, out)
}

type commandsArg struct {
	Root     string
	HostPATH string
	Shared   string // host directory to bind read-only at /mnt/shared
}

// commands checks Command and HostCommand from the inside and reports
// every mismatch as its error.
func commands(ctx context.Context, c *Child, raw json.RawMessage) error {
	var a commandsArg
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	if err := c.MountAPI(a.Root, APIMounts{Dev: true, Proc: true}); err != nil {
		return err
	}
	if err := c.Bind(a.Root, a.Shared, "/mnt/shared", true); err != nil {
		return err
	}
	var errs []error
	check := func(what string, cmd *exec.Cmd, want string) {
		var buf bytes.Buffer
		if cmd.Stdout == os.Stdout {
			cmd.Stdout = &buf
		}
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return
		}
		if got := buf.String(); got != want {
			errs = append(errs, fmt.Errorf("%s: got %q, want %q", what, got, want))
		}
	}
	check("dir", c.Command(ctx, a.Root, []string{"pwd"}, CmdOptions{Dir: "/bin"}), "/bin\n")
	check("relative dir", c.Command(ctx, a.Root, []string{"pwd"}, CmdOptions{Dir: "bin"}), "/bin\n")
	check("default dir", c.Command(ctx, a.Root, []string{"pwd"}, CmdOptions{}), "/\n")
	check("stdin", c.Command(ctx, a.Root, []string{"cat"}, CmdOptions{Stdin: strings.NewReader("hello")}), "hello")
	check("relative argv[0]", c.Command(ctx, a.Root, []string{"./busybox", "echo", "rel"}, CmdOptions{Dir: "/bin"}), "rel\n")
	check("bind", c.Command(ctx, a.Root, []string{"cat", "/mnt/shared/file"}, CmdOptions{}), "shared\n")
	check("bind read-only", c.Command(ctx, a.Root, []string{"sh", "-c", "touch /mnt/shared/x 2>/dev/null || echo ro"}, CmdOptions{}), "ro\n")
	check("host PATH", c.HostCommand(ctx, []string{"sh", "-c", "echo $PATH $SOURCE_DATE_EPOCH"}, CmdOptions{Epoch: 7}), a.HostPATH+" 7\n")
	check("host root", c.HostCommand(ctx, []string{"test", "-d", a.Root}, CmdOptions{}), "")

	err := c.Command(ctx, a.Root, []string{"nonesuch"}, CmdOptions{}).Run()
	if !errors.Is(err, exec.ErrNotFound) {
		errs = append(errs, fmt.Errorf("missing command: %v, want %v", err, exec.ErrNotFound))
	}
	// go is in the host's PATH, not in the image: no lookup on the host.
	err = c.Command(ctx, a.Root, []string{"go"}, CmdOptions{}).Run()
	if !errors.Is(err, exec.ErrNotFound) {
		errs = append(errs, fmt.Errorf("host-only command: %v, want %v", err, exec.ErrNotFound))
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Command(short, a.Root, []string{"sleep", "10"}, CmdOptions{}).Run(); err == nil || time.Since(start) > 5*time.Second {
		errs = append(errs, fmt.Errorf("cancelled command: %v after %v", err, time.Since(start)))
	}
	return errors.Join(errs...)
}

// reap orphans a few short-lived processes and waits for init to reap them.
func reap(ctx context.Context, c *Child, raw json.RawMessage) error {
	var root string
	if err := json.Unmarshal(raw, &root); err != nil {
		return err
	}
	if err := c.MountAPI(root, APIMounts{Proc: true, Dev: true}); err != nil {
		return err
	}
	orphans := "for i in 1 2 3 4 5; do (busybox true &); (busybox sleep 0.05 &); done"
	if err := c.Command(ctx, root, []string{"sh", "-c", orphans}, CmdOptions{}).Run(); err != nil {
		return err
	}
	var zombies string
	ok := eventually(3*time.Second, func() bool {
		var buf bytes.Buffer
		// Field 3 of stat is the state; Z is a zombie nobody reaped.
		cmd := c.Command(ctx, root, []string{"sh", "-c", "cat /proc/[0-9]*/stat | awk '$3 == \"Z\"'"}, CmdOptions{Stdout: &buf})
		if err := cmd.Run(); err != nil {
			zombies = err.Error()
			return false
		}
		zombies = buf.String()
		return zombies == ""
	})
	if !ok {
		return fmt.Errorf("zombies in the sandbox: %s", zombies)
	}
	return nil
}

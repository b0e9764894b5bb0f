package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit statuses of the child processes.
const (
	exitReported = 0   // the worker sent a report (success or the Func's error)
	exitFailed   = 1   // init sent a report about a failure of its own
	exitOrphan   = 125 // no complete argument: the parent is gone, nobody to report to
)

// Init must be the first call in main (and in TestMain of any package whose
// tests call Run). In a process Run started, it does the child's work and
// exits; otherwise it returns at once.
func Init() {
	v, ok := os.LookupEnv(envRole)
	if !ok {
		return
	}
	os.Unsetenv(envRole) // a nested Run must not see it
	role, name, _ := strings.Cut(v, ":")
	switch role {
	case roleInit:
		os.Exit(runInit(name))
	case roleWorker:
		os.Exit(runWorker(name))
	}
	fmt.Fprintf(os.Stderr, "imgplan sandbox: unknown role %q\n", role)
	os.Exit(exitOrphan)
}

// runInit is PID 1 of the new namespaces.
func runInit(name string) int {
	unix.CloseOnExec(argFd)
	unix.CloseOnExec(resultFd)
	res := os.NewFile(resultFd, "sandbox-result")

	// Go's Pdeathsig check after fork compares getppid() with the parent's
	// pid, but in a new PID namespace getppid() is 0, and the SIGKILL it
	// then sends itself is ignored because the child is its namespace's
	// init. So a parent that died before prctl(PR_SET_PDEATHSIG) would go
	// unnoticed. Run writes the argument only after Start returned, that
	// is after the exec and so after the prctl: a complete argument proves
	// the parent outlived the arming of Pdeathsig.
	arg, ok := readArg()
	if !ok {
		return exitOrphan
	}

	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		sendReport(res, fmt.Errorf("make / private: %w", err))
		return exitFailed
	}

	// The kernel shields a namespace's init from signals it has no handler
	// for, but the Go runtime installs handlers for all of them and exits on
	// SIGTERM, SIGINT, SIGHUP... That would let any process inside (kill
	// -TERM 1) end the stage. Catch and drop them; a full channel drops
	// further ones without blocking. Caught (unlike ignored) dispositions
	// are reset to default across exec, so the worker is unaffected.
	signal.Notify(make(chan os.Signal, 1), unix.SIGTERM, unix.SIGINT, unix.SIGHUP,
		unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)

	argR, argW, err := os.Pipe()
	if err != nil {
		sendReport(res, err)
		return exitFailed
	}
	// Pdeathsig for the worker, from this thread; this goroutine never ends
	// before the process does.
	runtime.LockOSThread()
	worker, err := os.StartProcess("/proc/self/exe", []string{os.Args[0], name}, &os.ProcAttr{
		Env:   append(os.Environ(), envRole+"="+roleWorker+":"+name),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, argR, res},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	argR.Close()
	if err != nil {
		argW.Close()
		sendReport(res, fmt.Errorf("start worker: %w", err))
		return exitFailed
	}
	go func() {
		argW.Write(arg)
		argW.Close()
	}()

	// Reap everything: the worker and every orphan reparented to us,
	// including clone children that signal their end with other than
	// SIGCHLD (__WALL).
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			sendReport(res, fmt.Errorf("wait for worker: %w", err))
			return exitFailed
		}
		if pid != worker.Pid {
			continue
		}
		// Returning ends PID 1: the kernel kills what is left in the
		// namespace, and the mount namespace dies with its last process.
		if ws.Exited() && ws.ExitStatus() == exitReported {
			return exitReported
		}
		b, _ := json.Marshal(report{Died: "worker " + describe(ws)})
		res.Write(b)
		return exitFailed
	}
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// runWorker runs the registered Func, cleans up after it and reports.
func runWorker(name string) int {
	unix.CloseOnExec(argFd)
	unix.CloseOnExec(resultFd)
	res := os.NewFile(resultFd, "sandbox-result")
	arg, ok := readArg()
	if !ok {
		return exitOrphan
	}
	fn := lookup(name)
	if fn == nil {
		sendReport(res, ErrUnknownFunc)
		return exitReported
	}
	c := &Child{}
	err := call(fn, c, arg)
	err = errors.Join(err, c.finish())
	sendReport(res, err)
	return exitReported
}

// call runs fn and turns a panic into an error.
func call(fn Func, c *Child, arg json.RawMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			fmt.Fprintf(os.Stderr, "imgplan sandbox: panic: %v\n%s", r, stack)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(context.Background(), c, arg)
}

func sendReport(w *os.File, err error) {
	var r report
	if err != nil {
		r.Error = err.Error()
		if r.Error == "" {
			r.Error = fmt.Sprintf("%T with empty message", err)
		}
	}
	b, _ := json.Marshal(r)
	w.Write(b)
}

// readArg reads the argument Run writes on argFd; ok is false when it is
// incomplete (the parent died before writing it all).
func readArg() (json.RawMessage, bool) {
	in := os.NewFile(argFd, "sandbox-arg")
	arg, err := io.ReadAll(in)
	in.Close()
	return arg, err == nil && json.Valid(arg)
}

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Func is the work done inside the sandbox. It is registered under a name in
// an init function, so the re-executed binary finds it. arg is the JSON of
// the value given to Run. The returned error travels back to Run as text.
type Func func(ctx context.Context, c *Child, arg json.RawMessage) error

// Sentinel errors callers test with errors.Is.
var (
	// ErrUnknownFunc reports a Run of a name no Func is registered under.
	ErrUnknownFunc = errors.New("no sandbox func registered under this name")
	// ErrDied reports a child that ended without reporting a result: it was
	// killed, or crashed outside the Func.
	ErrDied = errors.New("child died without reporting")
)

// FuncError is the error a Func returned (or its panic), as text.
type FuncError struct {
	Func string // the registered name
	Msg  string // the error's text in the child
}

func (e *FuncError) Error() string { return "sandbox " + e.Func + ": " + e.Msg }

var registry = struct {
	sync.RWMutex
	funcs map[string]Func
}{funcs: map[string]Func{}}

// Register makes fn runnable by Run under name. Call it from an init
// function; it panics on an empty name, a nil fn or a name taken twice.
func Register(name string, fn Func) {
	if name == "" || fn == nil {
		panic("sandbox: Register with empty name or nil func")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.funcs[name]; dup {
		panic("sandbox: Register called twice for " + name)
	}
	registry.funcs[name] = fn
}

func lookup(name string) Func {
	registry.RLock()
	defer registry.RUnlock()
	return registry.funcs[name]
}

// Options adjust one Run.
type Options struct {
	// Stdout and Stderr receive the child's output, including that of the
	// commands it runs unless they redirect it; nil discards it. Prefer an
	// *os.File: other writers are fed through a pipe, and Run waits at most
	// waitDelay for it to drain once the child has ended.
	Stdout, Stderr io.Writer
	// Env is added to the environment of the child process itself (commands
	// it runs get a clean environment of their own).
	Env []string
}

// Environment variable marking a sandbox child; its value is role:name.
const envRole = "IMGPLAN_SANDBOX"

const (
	roleInit   = "init"
	roleWorker = "worker"
)

// How long to wait for a non-file output pipe to drain after the process it
// belongs to has ended, so a leaked descriptor cannot hang Wait.
const waitDelay = 2 * time.Second

// The child's extra descriptors: ExtraFiles[0] and [1].
const (
	argFd    = 3
	resultFd = 4
)

// report is what a child sends back on the result pipe.
type report struct {
	Error string `json:"error,omitempty"` // the Func's error
	Died  string `json:"died,omitempty"`  // how the worker ended, from init
}

// Run runs the Func registered under name in a new child process with new
// mount, PID, UTS and IPC namespaces, passing it arg as JSON, and returns the
// Func's error. Cancelling ctx SIGKILLs the child, and with it everything in
// its namespaces; Run then returns an error wrapping ctx.Err(). A child that
// ends without a report gives an error wrapping ErrDied that names the
// signal or exit status.
func Run(ctx context.Context, name string, arg any, o Options) error {
	if lookup(name) == nil {
		return fmt.Errorf("sandbox %s: %w", name, ErrUnknownFunc)
	}
	payload, err := json.Marshal(arg)
	if err != nil {
		return fmt.Errorf("sandbox %s: encode argument: %w", name, err)
	}
	argR, argW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", name, err)
	}
	resR, resW, err := os.Pipe()
	if err != nil {
		argR.Close()
		argW.Close()
		return fmt.Errorf("sandbox %s: %w", name, err)
	}
	defer resR.Close()

	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{"imgplan-sandbox", name}
	cmd.Env = append(withoutRole(os.Environ()), o.Env...)
	cmd.Env = append(cmd.Env, envRole+"="+roleInit+":"+name)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	if !isFile(o.Stdout) || !isFile(o.Stderr) {
		cmd.WaitDelay = waitDelay
	}
	cmd.ExtraFiles = []*os.File{argR, resW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}

	// Pdeathsig is tied to the forking thread, not the process: keep this
	// goroutine, and so that thread, until the child has been reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	err = cmd.Start()
	argR.Close()
	resW.Close()
	if err != nil {
		argW.Close()
		return fmt.Errorf("sandbox %s: start: %w", name, err)
	}
	// The argument is written only now, after the child has exec'd and
	// armed Pdeathsig; the child refuses to run without a complete one.
	// See runInit for why that matters in a new PID namespace.
	go func() {
		argW.Write(payload)
		argW.Close()
	}()
	resc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(resR)
		resc <- b
	}()

	werr := cmd.Wait()
	// Everything in the namespaces is dead now, so the result pipe is at
	// EOF; the deadline only guards against a descriptor smuggled out.
	resR.SetReadDeadline(time.Now().Add(time.Second))
	out := <-resc

	if ctx.Err() != nil {
		return fmt.Errorf("sandbox %s: %w", name, ctx.Err())
	}
	var rep report
	if json.NewDecoder(bytes.NewReader(out)).Decode(&rep) != nil {
		if werr == nil {
			werr = errors.New("exit status 0")
		}
		return fmt.Errorf("sandbox %s: %w: %v", name, ErrDied, werr)
	}
	if rep.Died != "" {
		return fmt.Errorf("sandbox %s: %w: %s", name, ErrDied, rep.Died)
	}
	if rep.Error != "" {
		return &FuncError{Func: name, Msg: rep.Error}
	}
	if werr != nil {
		return fmt.Errorf("sandbox %s: reported success, then: %w", name, werr)
	}
	return nil
}

func isFile(w io.Writer) bool {
	if w == nil {
		return true
	}
	_, ok := w.(*os.File)
	return ok
}

func withoutRole(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, envRole+"=") {
			out = append(out, kv)
		}
	}
	return out
}

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// CmdOptions adjust one command.
type CmdOptions struct {
	// Env is added to the clean environment (and overrides it).
	Env []string
	// Stdin defaults to /dev/null.
	Stdin io.Reader
	// Stdout and Stderr default to the sandbox's (Run's Options).
	Stdout, Stderr io.Writer
	// Dir is the working directory: in the image for Command (default
	// "/"), on the host for HostCommand (default: the sandbox's).
	Dir string
	// Epoch is SOURCE_DATE_EPOCH.
	Epoch int64
}

// imagePATH is the search path inside images.
const imagePATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cleanEnv is the environment every command starts from: nothing of the
// host's leaks in, and package tools are told not to ask or start anything.
func cleanEnv(pathVal string, o CmdOptions) []string {
	env := []string{
		"PATH=" + pathVal,
		"HOME=/root",
		"LANG=C.UTF-8",
		"TERM=dumb",
		"DEBIAN_FRONTEND=noninteractive",
		"DEBCONF_NONINTERACTIVE_SEEN=true",
		"SYSTEMD_OFFLINE=1",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(o.Epoch, 10),
	}
	return append(env, o.Env...) // exec.Cmd keeps the last of duplicates
}

// envValue is the last value of key in env.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// Command returns a command that runs argv chrooted into root, with a clean
// environment (see CmdOptions). A bare argv[0] is looked up in the image's
// PATH, inside the root; cancelling ctx SIGKILLs the command.
func (c *Child) Command(ctx context.Context, root string, argv []string, o CmdOptions) *exec.Cmd {
	env := cleanEnv(imagePATH, o)
	// Always absolute: chroot leaves the cwd where it was, on the host, and
	// a relative Dir would be taken from there.
	dir := path.Join("/", o.Dir)
	var prog string
	var err error
	if len(argv) == 0 {
		err = errors.New("empty command")
	} else {
		prog, err = lookPathInRoot(root, argv[0], envValue(env, "PATH"), dir)
	}
	cmd := exec.CommandContext(ctx, "/nonexistent") // replaced below; the name must hold a slash to skip the host lookup
	cmd.Path = prog
	cmd.Args = append([]string(nil), argv...)
	cmd.Err = err
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	setIO(cmd, o)
	return cmd
}

// HostCommand returns a command that runs argv on the host filesystem, not
// chrooted but inside the sandbox's namespaces, with the clean environment
// and the host's PATH (argv[0] is looked up in it, or in o.Env's PATH).
func (c *Child) HostCommand(ctx context.Context, argv []string, o CmdOptions) *exec.Cmd {
	hostPATH := os.Getenv("PATH")
	if hostPATH == "" {
		hostPATH = imagePATH
	}
	env := cleanEnv(hostPATH, o)
	var prog string
	var err error
	if len(argv) == 0 {
		err = errors.New("empty command")
	} else {
		prog, err = lookPathHost(argv[0], envValue(env, "PATH"))
	}
	cmd := exec.CommandContext(ctx, "/nonexistent")
	cmd.Path = prog
	cmd.Args = append([]string(nil), argv...)
	cmd.Err = err
	cmd.Env = env
	cmd.Dir = o.Dir
	setIO(cmd, o)
	return cmd
}

func setIO(cmd *exec.Cmd, o CmdOptions) {
	cmd.Stdin = o.Stdin
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	_, fileIn := o.Stdin.(*os.File)
	if !isFile(cmd.Stdout) || !isFile(cmd.Stderr) || o.Stdin != nil && !fileIn {
		// A daemon the command leaves behind holding the pipe would
		// otherwise keep Wait from returning until the sandbox ends.
		cmd.WaitDelay = waitDelay
	}
}

// lookPathInRoot finds name as the chroot's shell would: in PATH, with
// symlinks resolved inside the root. A name with a slash is taken as is
// (made absolute against dir).
func lookPathInRoot(root, name, pathVal, dir string) (string, error) {
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join(dir, name)
		}
		return name, nil
	}
	rootfd, err := openRoot(root)
	if err != nil {
		return "", err
	}
	defer unix.Close(rootfd)
	for _, d := range filepath.SplitList(pathVal) {
		if !path.IsAbs(d) {
			continue // a relative PATH entry would depend on the cwd
		}
		p := path.Join(d, name)
		fd, err := openInRoot(rootfd, cleanRel(p), unix.O_PATH)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w in the image's PATH", name, exec.ErrNotFound)
}

func lookPathHost(name, pathVal string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range filepath.SplitList(pathVal) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w in PATH", name, exec.ErrNotFound)
}

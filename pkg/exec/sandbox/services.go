package sandbox

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// policyRCD makes invoke-rc.d (Debian's maintainer scripts) refuse every
// action: 101 is "action forbidden by policy".
const policyRCD = "#!/bin/sh\nexit 101\n"

// BlockServices keeps package scripts from starting services inside the
// image: it writes /usr/sbin/policy-rc.d (exit 101, mode 0755) when the
// image has /usr/sbin (resolved inside root) and no policy-rc.d of its own.
// The undo removes the file if BlockServices wrote it and it is still that
// file; it is safe to call more than once, and the worker calls it after
// the Func if the Func did not. systemd's tools are kept offline by
// SYSTEMD_OFFLINE=1 in every command's environment.
func (c *Child) BlockServices(root string) (undo func() error, err error) {
	noop := func() error { return nil }
	rootfd, err := openRoot(root)
	if err != nil {
		return noop, fmt.Errorf("block services: %w", err)
	}
	defer unix.Close(rootfd)
	sbin, err := openInRoot(rootfd, "usr/sbin", unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return noop, nil
	}
	if err != nil {
		return noop, fmt.Errorf("block services: open /usr/sbin in %s: %w", root, err)
	}
	keep := false
	defer func() {
		if !keep {
			unix.Close(sbin)
		}
	}()
	const name, where = "policy-rc.d", "/usr/sbin/policy-rc.d"
	var st unix.Stat_t
	switch err := unix.Fstatat(sbin, name, &st, unix.AT_SYMLINK_NOFOLLOW); err {
	case nil:
		return noop, nil // the image's own policy wins
	case unix.ENOENT:
	default:
		return noop, fmt.Errorf("block services: %s: %w", where, err)
	}
	fd, err := unix.Openat(sbin, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o755)
	if err != nil {
		return noop, fmt.Errorf("block services: create %s: %w", where, err)
	}
	_, werr := unix.Write(fd, []byte(policyRCD))
	if werr == nil {
		werr = unix.Fchmod(fd, 0o755) // the umask may have taken bits
	}
	if werr == nil {
		werr = unix.Fstat(fd, &st)
	}
	unix.Close(fd)
	if werr != nil {
		unix.Unlinkat(sbin, name, 0)
		return noop, fmt.Errorf("block services: write %s: %w", where, werr)
	}
	keep = true
	var once sync.Once
	var uerr error
	undo = func() error {
		once.Do(func() {
			uerr = removeIfSame(sbin, name, false, st.Dev, st.Ino, where)
			unix.Close(sbin)
		})
		return uerr
	}
	c.services = append(c.services, undo)
	return undo, nil
}

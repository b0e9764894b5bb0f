// Package sysx holds the small Linux system-call helpers that fsroot,
// the sandbox and the snapshotter share.
package sysx

import (
	"strings"

	"golang.org/x/sys/unix"
)

// maxRetries bounds retries of openat2's EAGAIN, which a concurrent rename
// anywhere on the system causes during a ".." lookup under RESOLVE_IN_ROOT
// (seen hundreds of times a second under load).
const maxRetries = 128

// Openat2 is unix.Openat2 retried on EINTR and, a bounded number of times,
// on EAGAIN. O_CLOEXEC is always added.
func Openat2(dirfd int, path string, how unix.OpenHow) (int, error) {
	how.Flags |= unix.O_CLOEXEC
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR, err == unix.EAGAIN && i < maxRetries:
			continue
		default:
			return -1, err
		}
	}
}

// FsLog drains the messages the kernel queued on a filesystem context
// (fsopen), which say why an fsconfig call failed far better than its
// errno; "" when there are none, else " (msg; msg)".
func FsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for range 64 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// InRoot resolves like a chroot into the directory a lookup starts from,
// and never through magic links (a procfs in an image cannot be used to
// jump out).
const InRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// OpenInRoot opens name below dirfd as if dirfd were "/" (see InRoot).
func OpenInRoot(dirfd int, name string, flags uint64) (int, error) {
	return Openat2(dirfd, name, unix.OpenHow{Flags: flags, Resolve: InRoot})
}

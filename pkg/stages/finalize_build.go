package stages

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

func init() { Finalize.Build = buildFinalize }

// Leftovers of package managers and of the build itself: caches that only
// make the image bigger, and logs and ids that differ on every build.
var leftovers = []struct{ dir, pattern string }{
	{"/var/cache/apt/archives", "*.deb"},
	{"/var/cache/apt/archives/partial", "*"},
	{"/var/cache/apt", "*.bin"},
	{"/var/lib/apt/lists", "*_*"},
	{"/var/lib/apt/lists/partial", "*"},
	{"/var/cache/debconf", "*-old"},
	{"/var/lib/dpkg", "*-old"},
	{"/var/log/apt", "*"},
	{"/var/log", "dpkg.log"},
	{"/var/log", "alternatives.log"},
	{"/var/log", "bootstrap.log"},
	{"/var/cache/ldconfig", "aux-cache"},
	{"/var/cache/yum", "*"},
	{"/var/cache/dnf", "*"},
	{"/var/lib/dnf", "history*"},
	{"/var/log", "dnf*.log"},
	{"/var/log", "yum.log"},
	{"/var/lib/systemd", "random-seed"},
	{"/var/lib/dbus", "machine-id"},
}

// buildFinalize removes build leftovers and empties /etc/machine-id (so
// every machine booting the image gets its own). Timestamps are clamped to
// the epoch by every output as it writes the tree: clamping them here would
// copy every file of the lower layers up into this one.
func buildFinalize(_ context.Context, env Env, raw json.RawMessage) error {
	var p FinalizeParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	for _, l := range leftovers {
		if err := removeMatching(r, l.dir, l.pattern); err != nil {
			return err
		}
	}
	if fi, err := r.Lstat("/etc/machine-id"); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		if err := r.WriteFile("/etc/machine-id", strings.NewReader(""), fsroot.WriteOptions{Perm: fi.Mode().Perm()}); err != nil {
			return err
		}
	}
	return removeHostKeys(r)
}

// sshKeygenUnit regenerates SSH host keys at first boot on Debian-family
// systemd images (RHEL's sshd does it itself).
const sshKeygenUnit = `[Unit]
Description=Generate the SSH host keys the image leaves out (imgplan)
Before=ssh.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
`

// removeHostKeys removes the SSH host keys package scripts generated: every
// machine booting the image would share them, and they differ on every
// build. Where Debian's ssh.service would then fail, a oneshot unit
// regenerates them first.
func removeHostKeys(r *fsroot.Root) error {
	had := false
	f, err := r.Open("/etc/ssh")
	if err != nil {
		return nil // no ssh
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		if ok, _ := filepath.Match("ssh_host_*_key*", n); ok {
			had = true
			if err := r.RemoveAll("/etc/ssh/" + n); err != nil {
				return err
			}
		}
	}
	unit := firstExisting(r, "/lib/systemd/system/ssh.service", "/usr/lib/systemd/system/ssh.service")
	if !had || unit == "" {
		return nil
	}
	const name = "/etc/systemd/system/imgplan-ssh-keygen.service"
	if err := r.WriteFile(name, strings.NewReader(sshKeygenUnit), fsroot.WriteOptions{Perm: 0o644, MkdirParents: true}); err != nil {
		return err
	}
	if err := r.MkdirAll("/etc/systemd/system/ssh.service.wants", 0o755); err != nil {
		return err
	}
	link := "/etc/systemd/system/ssh.service.wants/imgplan-ssh-keygen.service"
	if err := r.RemoveAll(link); err != nil {
		return err
	}
	return r.Symlink(name, link)
}

// removeMatching removes the entries of an image directory whose names
// match pattern.
func removeMatching(r *fsroot.Root, dir, pattern string) error {
	f, err := r.Open(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrInvalid) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil // not a directory
	}
	for _, n := range names {
		if ok, _ := filepath.Match(pattern, n); ok {
			if err := r.RemoveAll(path.Join(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

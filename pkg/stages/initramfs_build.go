package stages

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

func init() { Initramfs.Build = buildInitramfs }

var (
	//go:embed initramfs/imgplan-overlay.script
	overlayScript string
	//go:embed initramfs/imgplan-overlay.hook
	overlayHook string
	//go:embed initramfs/imgplan-overlay.conf
	overlayConf string
	//go:embed initramfs/imgplan-live.conf
	liveConf string
)

// The boot parameter that selects the script (initramfs-tools' init
// sources /scripts/$BOOT).
const OverlayBoot = "imgplan-overlay"

func buildInitramfs(ctx context.Context, env Env, raw json.RawMessage) error {
	var p InitramfsParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	kernels, err := Kernels(r)
	if err != nil {
		return err
	}
	if len(p.Methods) != 1 {
		return fmt.Errorf("pxe outputs with different boot methods (%s) need different initramfs generators: use one", strings.Join(p.Methods, ", "))
	}
	method := p.Methods[0]
	switch method {
	case "overlay-squashfs":
		err = prepareOverlayBoot(r)
	case "dracut-live":
		err = prepareLiveBoot(r)
	default:
		err = fmt.Errorf("boot method %s is not supported", method)
	}
	if err != nil {
		return err
	}
	if err := removeRootAndSwap(r); err != nil {
		return err
	}
	for _, k := range kernels {
		var argv []string
		switch method {
		case "overlay-squashfs":
			mode := "-u"
			if _, err := r.Lstat("/boot/initrd.img-" + k); errors.Is(err, fs.ErrNotExist) {
				mode = "-c"
			}
			argv = []string{"update-initramfs", mode, "-k", k}
		case "dracut-live":
			argv = []string{"dracut", "--force", "--kver", k, "/boot/initrd.img-" + k}
		}
		if err := env.Run(ctx, argv, RunOptions{}); err != nil {
			return fmt.Errorf("%s for %s: %w", argv[0], k, err)
		}
	}
	return nil
}

// prepareLiveBoot installs the dracut configuration for root=live:, after
// checking the image has dracut with its live and network modules and
// curl, which livenet downloads with.
func prepareLiveBoot(r *fsroot.Root) error {
	if !anyExists(r, "/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut") {
		if anyExists(r, "/usr/sbin/update-initramfs", "/sbin/update-initramfs") {
			return errors.New("boot dracut-live needs dracut, and the image has initramfs-tools: install dracut, dracut-live and dracut-network, or use boot overlay-squashfs")
		}
		return errors.New("the image has no initramfs generator: add dracut, dracut-live and dracut-network to packages.install")
	}
	for _, m := range []struct{ dir, pkg string }{{"90dmsquash-live", "dracut-live"}, {"90livenet", "dracut-live"}, {"40network", "dracut-network"}, {"35network-legacy", "dracut-network"}} {
		if !anyExists(r, "/usr/lib/dracut/modules.d/"+m.dir) {
			return fmt.Errorf("boot dracut-live needs dracut's %s module: add %s to packages.install", strings.TrimLeft(m.dir, "0123456789"), m.pkg)
		}
	}
	if !anyExists(r, "/usr/bin/curl", "/bin/curl") {
		return errors.New("boot dracut-live needs curl in the image (livenet downloads root.img with it): add curl to packages.install")
	}
	return r.WriteFile("/etc/dracut.conf.d/50-imgplan-live.conf", strings.NewReader(liveConf), fsroot.WriteOptions{Perm: 0o644, MkdirParents: true})
}

// prepareOverlayBoot installs the overlay-squashfs script, hook and
// configuration for initramfs-tools, after checking the image has what
// they need.
func prepareOverlayBoot(r *fsroot.Root) error {
	if !anyExists(r, "/usr/sbin/update-initramfs", "/sbin/update-initramfs") {
		if anyExists(r, "/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut") {
			return errors.New("boot overlay-squashfs needs initramfs-tools, and the image has dracut: install initramfs-tools, or use boot dracut-live")
		}
		return errors.New("the image has no initramfs generator: add initramfs-tools to packages.install")
	}
	if !anyExists(r, "/usr/bin/busybox", "/bin/busybox") {
		return errors.New("boot overlay-squashfs needs busybox in the image (wget, tftp and mount in the initrd): add busybox to packages.install")
	}
	for _, f := range []struct {
		path, content string
		perm          fs.FileMode
	}{
		{"/etc/initramfs-tools/scripts/" + OverlayBoot, overlayScript, 0o644},
		{"/etc/initramfs-tools/hooks/" + OverlayBoot, overlayHook, 0o755},
		{"/etc/initramfs-tools/conf.d/" + OverlayBoot, overlayConf, 0o644},
	} {
		if err := r.WriteFile(f.path, strings.NewReader(f.content), fsroot.WriteOptions{Perm: f.perm, MkdirParents: true}); err != nil {
			return err
		}
	}
	return nil
}

// removeRootAndSwap takes the root and swap entries out of /etc/fstab.
func removeRootAndSwap(r *fsroot.Root) error {
	old, err := r.ReadFile("/etc/fstab")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	edited := EditFstab(old, FstabParams{Remove: []string{"/", "swap"}})
	if bytes.Equal(edited, old) {
		return nil
	}
	perm := fs.FileMode(0o644)
	if fi, err := r.Stat("/etc/fstab"); err == nil {
		perm = fi.Mode().Perm()
	}
	return r.WriteFile("/etc/fstab", bytes.NewReader(edited), fsroot.WriteOptions{Perm: perm, FollowSymlink: true})
}

func anyExists(r *fsroot.Root, paths ...string) bool {
	for _, p := range paths {
		if _, err := r.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Kernels lists the versions of the kernels in the image's /boot
// (vmlinuz-VERSION), oldest first; none is an error that says what to
// install.
func Kernels(r *fsroot.Root) ([]string, error) {
	var out []string
	if d, err := r.Open("/boot"); err == nil {
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, n := range names {
			if v, ok := strings.CutPrefix(n, "vmlinuz-"); ok && v != "" {
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the image has no kernel in /boot: add a kernel package to packages.install (linux-image-amd64, or linux-image-cloud-amd64 for virtual machines)")
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out, nil
}

// versionLess compares kernel versions: runs of digits as numbers, the
// rest as text, so 6.1.0-9 comes before 6.1.0-10.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := leadingDigits(a), leadingDigits(b)
		if da != "" && db != "" {
			na, _ := strconv.ParseUint(da, 10, 64)
			nb, _ := strconv.ParseUint(db, 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

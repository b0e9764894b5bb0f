package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { PXE.Build = buildPXE }

// The files of a pxe bundle.
const (
	PXEKernel   = "vmlinuz"
	PXEInitrd   = "initrd.img"
	PXERoot     = "root.squashfs" // boot overlay-squashfs
	PXELiveRoot = "root.img"      // boot dracut-live: ext4
	PXEIPXE     = "boot.ipxe"
	PXESummary  = "README.txt"
	pxelinuxDir = "pxelinux.cfg"
)

// buildPXE writes the bundle a PXE, TFTP or HTTP server serves: the
// image's newest kernel and the initrd the initramfs stage made for it,
// the root image (root.squashfs for overlay-squashfs, an ext4 root.img for
// dracut-live), pxelinux.cfg/default and per-MAC entries, an iPXE script,
// and a summary with sizes and the kernel command line.
func buildPXE(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p PXEParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	kernels, err := stages.Kernels(r)
	if err != nil {
		return err
	}
	version := kernels[len(kernels)-1]
	out := ArtifactPath(env)
	if err := os.MkdirAll(filepath.Join(out, pxelinuxDir), 0o755); err != nil {
		return err
	}
	for name, src := range map[string]string{PXEKernel: "/boot/vmlinuz-" + version, PXEInitrd: "/boot/initrd.img-" + version} {
		if err := copyFromImage(env, src, filepath.Join(out, name)); err != nil {
			return err
		}
	}
	rootImage := PXERoot
	switch p.Boot {
	case "overlay-squashfs":
		err = mksquashfs(ctx, env, filepath.Join(out, PXERoot), SquashfsParams{Compression: p.Compression, BlockSize: 128 << 10})
	case "dracut-live":
		rootImage = PXELiveRoot
		// Mounted read-only under an overlay: little free space needed.
		err = mkext4(ctx, env, filepath.Join(out, PXELiveRoot), Ext4Params{Headroom: manifest.Extent{Percent: 10}})
	default:
		err = fmt.Errorf("pxe boot %s is not supported", p.Boot)
	}
	if err != nil {
		return err
	}

	cmdline := PXECmdline(p)
	pxelinux := fmt.Sprintf("DEFAULT imgplan\nLABEL imgplan\n  KERNEL %s\n  INITRD %s\n  APPEND %s\n", PXEKernel, PXEInitrd, cmdline)
	files := map[string]string{
		filepath.Join(pxelinuxDir, "default"): pxelinux,
		PXEIPXE:                               fmt.Sprintf("#!ipxe\ndhcp\nkernel %s %s\ninitrd %s\nboot\n", PXEKernel, cmdline, PXEInitrd),
	}
	for _, mac := range p.MACs {
		files[filepath.Join(pxelinuxDir, "01-"+mac)] = pxelinux
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(out, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "imgplan pxe bundle (boot: %s), kernel %s\n\n", p.Boot, version)
	for _, name := range []string{PXEKernel, PXEInitrd, rootImage} {
		fi, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sum, "%-14s %12d bytes\n", name, fi.Size())
	}
	fmt.Fprintf(&sum, "\nkernel command line:\n  %s\n\n", cmdline)
	fmt.Fprintf(&sum, "Serve this directory from a TFTP server (pxelinux.cfg/, with pxelinux.0\n"+
		"from your PXE setup) or from HTTP for iPXE (boot.ipxe). The root image\n"+
		"is fetched from the URL on the command line (%s); change it there to\n"+
		"serve %s from elsewhere.\n", map[string]string{"overlay-squashfs": "imgplan.root=", "dracut-live": "root=live:"}[p.Boot], rootImage)
	if err := os.WriteFile(filepath.Join(out, PXESummary), []byte(sum.String()), 0o644); err != nil {
		return err
	}
	return clampTree(out, env.Epoch())
}

// PXECmdline is the kernel command line of a pxe bundle.
func PXECmdline(p PXEParams) string {
	if p.Boot == "dracut-live" {
		// dmsquash-live mounts the ext4 image read-only under an overlayfs
		// upper layer in RAM.
		args := []string{"root=live:" + strings.TrimSuffix(p.Server, "/") + "/" + PXELiveRoot,
			"rd.live.image", "rd.live.overlay.overlayfs=1", "rd.neednet=1", "ip=dhcp"}
		if p.KernelArgs != "" {
			args = append(args, p.KernelArgs)
		}
		return strings.Join(args, " ")
	}
	root := "tftp:///" + PXERoot // the TFTP server DHCP named
	if p.Server != "" {
		root = strings.TrimSuffix(p.Server, "/") + "/" + PXERoot
	}
	size := p.TmpfsSize.String()
	if p.TmpfsSize.Bytes > 0 {
		size = strconv.FormatInt(p.TmpfsSize.Bytes, 10)
	}
	args := []string{"boot=" + stages.OverlayBoot, "imgplan.root=" + root, "imgplan.tmpfs=" + size, "ip=dhcp"}
	if p.KernelArgs != "" {
		args = append(args, p.KernelArgs)
	}
	return strings.Join(args, " ")
}

// copyFromImage copies a regular file of the image (resolved inside it) to
// a host path.
func copyFromImage(env stages.Env, src, dst string) error {
	f, err := env.Root().Open(src)
	if err != nil {
		return fmt.Errorf("%s in the image: %w", src, err)
	}
	defer f.Close()
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

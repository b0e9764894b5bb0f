package stages

import (
	"slices"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Initramfs prepares the image's own initramfs for the boot methods its
// pxe outputs name: for overlay-squashfs, initramfs-tools' boot script,
// hook and configuration, then update-initramfs in the image; for
// dracut-live, a dracut configuration adding the live and network
// modules, then dracut in the image. Root and swap entries leave /etc/fstab (the root is the overlay the initrd
// mounted, and systemd would wait for devices that never come). It runs
// after the manifest's stages and their hooks, before finalize; a manifest
// without pxe outputs has no such node.
var Initramfs = register(&Kind{Name: KindInitramfs, Version: 2, Describe: describeInitramfs, API: true})

// InitramfsParams are the boot methods to prepare, sorted.
type InitramfsParams struct {
	Methods []string `json:"methods"`
}

func describeInitramfs(m *manifest.Manifest, _ *Context) (*Description, error) {
	var methods []string
	var errs []error
	for _, o := range m.Outputs {
		opt, ok := o.Options.(*manifest.PXEOptions)
		if !ok {
			continue
		}
		if opt.Boot == "dracut-live" && opt.Server == "" {
			errs = append(errs, problem(opt.At("boot"), "boot dracut-live needs server: the base URL root.img is fetched from (root=live:URL)"))
			continue
		}
		if !slices.Contains(methods, opt.Boot) {
			methods = append(methods, opt.Boot)
		}
	}
	if err := manifest.Join(errs...); err != nil {
		return nil, err
	}
	if len(methods) == 0 {
		return nil, nil
	}
	slices.Sort(methods)
	return &Description{Params: &InitramfsParams{Methods: methods}, Summary: "initramfs for " + strings.Join(methods, ", ")}, nil
}

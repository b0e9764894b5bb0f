package outputs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

// bootFiles are the boot loader's pieces, made from the image's GRUB.
type bootFiles struct {
	coreImg string // BIOS core.img, on the host
	bootImg []byte // BIOS boot.img (the MBR code)
	efiDir  string // host directory with EFI/BOOT/BOOTX64.EFI, for the ESP
}

// GRUB modules built into the images: everything the embedded
// configuration needs, so no module directory is installed in the image.
var (
	grubModsBIOS = []string{"biosdisk", "part_msdos", "part_gpt", "ext2", "fat", "xfs", "search", "search_fs_uuid",
		"linux", "boot", "serial", "terminal", "echo", "test"}
	grubModsEFI = []string{"part_msdos", "part_gpt", "ext2", "fat", "xfs", "search", "search_fs_uuid",
		"linux", "boot", "serial", "terminal", "echo", "test", "efi_gop", "all_video"}
)

// prepareBoot makes GRUB's images with the image's own grub-mkimage: the
// configuration is built into them (find the /boot filesystem by UUID,
// load the newest kernel and its initrd with root=UUID=... and the
// layout's command line), so nothing else is installed. The tree must be
// whole here: it runs before subtrees are hidden.
func prepareBoot(ctx context.Context, env stages.Env, p *DiskParams, parts []*diskPart, work string) (*bootFiles, error) {
	b := &bootFiles{}
	root := env.Root().Dir()
	bios := p.Table == "msdos" || slices.ContainsFunc(parts, func(d *diskPart) bool { return d.Type == "bios_grub" })
	esp := slices.ContainsFunc(parts, func(d *diskPart) bool { return d.Type == "esp" })
	efi := p.Table == "gpt" && esp
	hasBIOS := exists(filepath.Join(root, "usr/lib/grub/i386-pc/boot.img"))
	hasEFI := exists(filepath.Join(root, "usr/lib/grub/x86_64-efi/linux.mod"))

	kernel, initrd, err := findKernel(root)
	if err != nil {
		return nil, err
	}
	if kernel == "" {
		env.Log().Info("no kernel in /boot: the disk gets no boot loader")
		return b, nil
	}
	switch {
	case bios && !hasBIOS:
		return nil, errors.New("the layout boots by BIOS but the image has no GRUB for it (/usr/lib/grub/i386-pc: install grub-pc-bin)")
	case efi && !hasEFI && !bios:
		return nil, errors.New("the layout has an ESP but the image has no GRUB for UEFI (/usr/lib/grub/x86_64-efi: install grub-efi-amd64-bin)")
	}
	efi = efi && hasEFI

	var rootPart, bootPart *diskPart
	for _, d := range parts {
		switch d.Mount {
		case "/":
			rootPart = d
		case "/boot":
			bootPart = d
		}
	}
	if rootPart == nil {
		return nil, errors.New("no partition is mounted at /")
	}
	dir := "/boot/"
	if bootPart == nil {
		bootPart = rootPart
	} else {
		dir = "/"
	}
	args := []string{"root=UUID=" + rootPart.uuid, "ro"}
	args = append(args, strings.Fields(p.Cmdline)...)
	args = append(args, "imgplan.key="+env.Key().Hex())
	for i, a := range args {
		args[i] = grubQuote(a)
	}
	cfg := fmt.Sprintf(`serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
search --no-floppy --fs-uuid --set=root %s
echo 'imgplan: loading %s'
linux %s %s
initrd %s
boot
`, bootPart.uuid, kernel, dir+kernel, strings.Join(args, " "), dir+initrd)

	// grub-mkimage runs in the image; its files go through /tmp, bound to a
	// host directory and hidden again afterwards.
	tmpFI, err := os.Stat(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("the image has no /tmp for grub-mkimage: %w", err)
	}
	gdir := filepath.Join(work, "grub")
	if err := os.Mkdir(gdir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(gdir, "load.cfg"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := env.Bind(gdir, "/tmp", false); err != nil {
		return nil, err
	}
	mkimage := func(format, prefix, out string, mods []string) error {
		argv := append([]string{"grub-mkimage", "-O", format, "-d", "/usr/lib/grub/" + format,
			"-c", "/tmp/load.cfg", "-p", prefix, "-o", "/tmp/" + out}, mods...)
		return env.Run(ctx, argv, stages.RunOptions{Env: []string{"SOURCE_DATE_EPOCH=" + fmt.Sprint(env.Epoch())}})
	}
	if bios {
		if err := mkimage("i386-pc", dir+"grub", "core.img", grubModsBIOS); err != nil {
			return nil, err
		}
		b.coreImg = filepath.Join(gdir, "core.img")
		if b.bootImg, err = os.ReadFile(filepath.Join(root, "usr/lib/grub/i386-pc/boot.img")); err != nil {
			return nil, err
		}
		if len(b.bootImg) != sector {
			return nil, fmt.Errorf("GRUB's boot.img has %d bytes, not %d", len(b.bootImg), sector)
		}
	}
	if efi {
		if err := mkimage("x86_64-efi", "/EFI/BOOT", "BOOTX64.EFI", grubModsEFI); err != nil {
			return nil, err
		}
		b.efiDir = filepath.Join(work, "esp")
		boot := filepath.Join(b.efiDir, "EFI", "BOOT")
		if err := os.MkdirAll(boot, 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(gdir, "BOOTX64.EFI"), filepath.Join(boot, "BOOTX64.EFI")); err != nil {
			return nil, err
		}
		// mcopy keeps the times: the epoch's, for the same ESP every build.
		epoch := time.Unix(env.Epoch(), 0)
		for _, p := range []string{filepath.Join(boot, "BOOTX64.EFI"), boot, filepath.Dir(boot)} {
			if err := os.Chtimes(p, epoch, epoch); err != nil {
				return nil, err
			}
		}
	}
	// An empty /tmp like the image's covers what grub-mkimage wrote.
	empty := filepath.Join(work, "tmp")
	if err := os.Mkdir(empty, 0o755); err != nil {
		return nil, err
	}
	st := tmpFI.Sys().(*syscall.Stat_t)
	if err := os.Chown(empty, int(st.Uid), int(st.Gid)); err != nil {
		return nil, err
	}
	if err := os.Chmod(empty, tmpFI.Mode()&(fs.ModePerm|fs.ModeSticky)); err != nil {
		return nil, err
	}
	return b, env.Bind(empty, "/tmp", true)
}

// findKernel returns the newest /boot/vmlinuz-VERSION and its initrd, as
// names in /boot; none when the image has no kernel.
func findKernel(root string) (kernel, initrd string, err error) {
	ents, err := os.ReadDir(filepath.Join(root, "boot"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	var versions []string
	for _, e := range ents {
		if v, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", "", nil
	}
	slices.SortFunc(versions, compareVersions)
	v := versions[len(versions)-1]
	initrd = "initrd.img-" + v
	if !exists(filepath.Join(root, "boot", initrd)) {
		return "", "", fmt.Errorf("/boot/vmlinuz-%s has no /boot/%s (install initramfs-tools)", v, initrd)
	}
	return "vmlinuz-" + v, initrd, nil
}

// compareVersions orders kernel versions by their numeric parts.
func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '~' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		var na, nb int
		_, ea := fmt.Sscan(pa[i], &na)
		_, eb := fmt.Sscan(pb[i], &nb)
		if ea == nil && eb == nil && na != nb {
			return na - nb
		}
		if c := strings.Compare(pa[i], pb[i]); (ea != nil || eb != nil) && c != 0 {
			return c
		}
	}
	return len(pa) - len(pb)
}

// grubQuote quotes a kernel argument for GRUB's shell when it needs it.
func grubQuote(s string) string {
	if !strings.ContainsAny(s, "$\"'\\;|&<>(){}[]# \t*?") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// installBIOS writes GRUB's boot.img into the MBR (its code only: the
// table and disk identifier stay) and core.img into the gap after the MBR
// (msdos) or the bios_grub partition (gpt), patching the sector numbers
// grub-bios-setup would: where boot.img finds core.img's first sector,
// and the block list in that sector for the rest.
func installBIOS(f *os.File, b *bootFiles, table string, parts []*diskPart) error {
	start, room := int64(sector), manifest.Align-sector
	if table == "gpt" {
		i := slices.IndexFunc(parts, func(d *diskPart) bool { return d.Type == "bios_grub" })
		if i < 0 {
			return errors.New("BIOS boot on gpt needs a bios_grub partition")
		}
		start, room = parts[i].span.Start, parts[i].span.Size
	}
	core, err := os.ReadFile(b.coreImg)
	if err != nil {
		return err
	}
	if int64(len(core)) > room {
		return fmt.Errorf("GRUB's core.img (%d bytes) does not fit in the %d bytes for it", len(core), room)
	}
	nsec := (len(core) + sector - 1) / sector
	core = append(core, make([]byte, nsec*sector-len(core))...)
	lba := uint64(start / sector)
	// diskboot.img's block list, at the end of core.img's first sector:
	// start sector (8 bytes), sector count (2), load segment (2, kept).
	const list = sector - 12
	binary.LittleEndian.PutUint64(core[list:], lba+1)
	binary.LittleEndian.PutUint16(core[list+8:], uint16(nsec-1))
	if _, err := f.WriteAt(core, start); err != nil {
		return err
	}
	code := slices.Clone(b.bootImg[:0x1b8])
	clear(code[0x03:0x5a]) // the BIOS parameter block: none on a disk
	binary.LittleEndian.PutUint64(code[0x5c:], lba)
	// Trust the drive the BIOS names (as grub-bios-setup does for disks).
	code[0x66], code[0x67] = 0x90, 0x90
	_, err = f.WriteAt(code, 0)
	return err
}

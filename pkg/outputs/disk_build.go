package outputs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/outputs/ext4fs"
	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { Disk.Build = buildDisk }

const sector = 512

// diskPart is one partition as the builder places and fills it.
type diskPart struct {
	PartitionParams
	span     manifest.Span
	uuid     string // filesystem UUID (vfat: the volume id, XXXX-XXXX)
	partUUID string // GPT partition GUID
	img      string // the filesystem image, before it is copied in
	// mkdirs are mount points of other partitions, below this one's,
	// that the tree lacks: made in the filesystem so they exist even
	// while it is mounted read-only.
	mkdirs []string
}

// buildDisk makes the disk without loop devices or mounts of the disk: each
// filesystem is built into its own sparse file from its subtree (the
// subtrees of other partitions mounted below it hidden by empty binds),
// then copied into the disk file at its offset, after the partition table
// (go-diskfs) is written. /etc/fstab in the root filesystem is generated
// from the layout and the tree's own fstab; GRUB comes from the image's
// own grub-pc-bin / grub-efi-amd64-bin, its images made with the image's
// grub-mkimage and put where the firmware looks: boot.img in the MBR and
// core.img after it (msdos) or in the bios_grub partition (gpt), and
// BOOTX64.EFI in the ESP.
func buildDisk(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p DiskParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	root := env.Root().Dir()
	key := env.Key()

	work, err := os.MkdirTemp(env.Out(), ".disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// Place the partitions; a disk sized to fit gives the rest partition
	// room for its subtree.
	l := &manifest.Layout{Table: p.Table}
	restSize := int64(0)
	for _, pp := range p.Partitions {
		l.Partitions = append(l.Partitions, manifest.Partition{Name: pp.Name, Size: pp.Size})
		if pp.Size.Rest && p.Size == 0 && pp.Mount != "" {
			u, err := measureTree(filepath.Join(root, pp.Mount))
			if err != nil {
				return err
			}
			restSize = autoExt4Size(u, 0, 20)
		}
	}
	spans, diskSize, err := manifest.Spans(l, p.Size, restSize)
	if err != nil {
		return err
	}
	parts := make([]*diskPart, len(p.Partitions))
	for i, pp := range p.Partitions {
		d := &diskPart{PartitionParams: pp, span: spans[i], uuid: pp.UUID}
		if d.uuid == "" {
			d.uuid = keyUUID(key, "fs:"+pp.Name)
			if pp.FS == "vfat" {
				h := strings.ToUpper(strings.ReplaceAll(d.uuid, "-", ""))
				d.uuid = h[:4] + "-" + h[4:8]
			}
		}
		d.partUUID = keyUUID(key, "part:"+pp.Name)
		parts[i] = d
	}

	// The boot loader's images, made before any subtree is hidden.
	boot, err := prepareBoot(ctx, env, &p, parts, work)
	if err != nil {
		return err
	}

	// /etc/fstab: the layout's entries, then the tree's own lines for
	// other mount points (the manifest's fstab edits are in them).
	fstab, err := mergeFstab(env.Root(), parts)
	if err != nil {
		return err
	}
	fstabFile := filepath.Join(work, "fstab")
	if err := os.WriteFile(fstabFile, fstab, 0o644); err != nil {
		return err
	}
	if err := env.Bind(fstabFile, "/etc/fstab", true); err != nil {
		return fmt.Errorf("generated /etc/fstab: %w", err)
	}

	// Filesystems, deepest mount point first: once built, a subtree is
	// hidden so the partitions above it leave it out.
	order := slices.Clone(parts)
	slices.SortStableFunc(order, func(a, b *diskPart) int { return mountDepth(b.Mount) - mountDepth(a.Mount) })
	for i, d := range order {
		d.img = filepath.Join(work, "part"+strconv.Itoa(i))
		d.mkdirs = missingMountPoints(root, d, parts)
		if err := buildPartFS(ctx, env, d, root, boot); err != nil {
			return fmt.Errorf("partition %s: %w", d.Name, err)
		}
		if d.Mount != "" && d.Mount != "/" {
			if err := hideSubtree(env, root, work, d.Mount, i); err != nil {
				return err
			}
		}
	}

	// The disk: table, filesystems at their offsets, boot code.
	img := ArtifactPath(env)
	if err := createSparse(img, diskSize); err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := writeTable(f, diskSize, p.Table, parts, key); err != nil {
		return err
	}
	for _, d := range parts {
		if d.img == "" {
			continue
		}
		if err := copySparseAt(f, d.span.Start, d.img); err != nil {
			return fmt.Errorf("partition %s: %w", d.Name, err)
		}
		os.Remove(d.img)
	}
	if boot.coreImg != "" {
		if err := installBIOS(f, boot, p.Table, parts); err != nil {
			return err
		}
	}
	return f.Close()
}

func mountDepth(m string) int {
	if m == "" {
		return -1 // unmounted partitions are empty; any order
	}
	if m == "/" {
		return 0
	}
	return strings.Count(path.Clean(m), "/")
}

// hideSubtree binds an empty directory, with the mode and owner of the one
// it covers, over mount in the tree.
func hideSubtree(env stages.Env, root, work, mount string, i int) error {
	fi, err := os.Stat(filepath.Join(root, mount))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	empty := filepath.Join(work, "empty"+strconv.Itoa(i))
	if err := os.Mkdir(empty, 0o755); err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(empty, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(empty, fi.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid)); err != nil {
		return err
	}
	return env.Bind(empty, mount, true)
}

// mergeFstab generates the layout's lines and keeps the tree's lines for
// other mount points.
func mergeFstab(r interface {
	ReadFile(string) ([]byte, error)
}, parts []*diskPart) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Generated by imgplan from the manifest's layout.\n")
	taken := map[string]bool{}
	for _, d := range parts {
		spec := "UUID=" + d.uuid
		switch {
		case d.FS == "swap":
			fmt.Fprintf(&b, "%s\tnone\tswap\tsw\t0\t0\n", spec)
		case d.Mount != "":
			pass := 2
			if d.Mount == "/" {
				pass = 1
			} else if d.FS == "vfat" {
				pass = 0
			}
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t0\t%d\n", spec, d.Mount, d.FS, d.Options, pass)
			taken[d.Mount] = true
		}
	}
	old, err := r.ReadFile("/etc/fstab")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.SplitAfter(string(old), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || len(f) < 2 || !taken[f[1]] {
			if strings.TrimSpace(line) != "" && !strings.Contains(line, "UNCONFIGURED FSTAB") {
				b.WriteString(strings.TrimSuffix(line, "\n") + "\n")
			}
		}
	}
	return []byte(b.String()), nil
}

// buildPartFS writes partition d's filesystem into d.img.
func buildPartFS(ctx context.Context, env stages.Env, d *diskPart, root string, boot *bootFiles) error {
	src := ""
	if d.Mount != "" {
		src = filepath.Join(root, d.Mount)
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			src = ""
		}
	}
	switch d.FS {
	case "none":
		d.img = ""
		return nil
	case "swap":
		if err := createSparse(d.img, d.span.Size); err != nil {
			return err
		}
		argv := []string{"mkswap", "-U", d.uuid}
		if d.Label != "" {
			argv = append(argv, "-L", d.Label)
		}
		return env.RunHost(ctx, append(argv, d.img), stages.RunOptions{})
	case "ext4":
		return mkfsExt4Part(ctx, env, d, src)
	case "vfat":
		return mkfsVfatPart(ctx, env, d, src, boot)
	}
	return fmt.Errorf("filesystem %s is not built yet in disk images", d.FS)
}

// missingMountPoints lists, relative to d's mount point, the mount points
// of partitions below it that the tree has no directory for, parents
// first.
func missingMountPoints(root string, d *diskPart, parts []*diskPart) []string {
	if d.Mount == "" || d.FS != "ext4" {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, o := range parts {
		if o == d || o.Mount == "" || o.Mount == d.Mount {
			continue
		}
		rel, ok := strings.CutPrefix(o.Mount, strings.TrimSuffix(d.Mount, "/")+"/")
		if !ok {
			continue
		}
		parts := strings.Split(rel, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			if !seen[p] && !exists(filepath.Join(root, d.Mount, p)) {
				out = append(out, "/"+p)
			}
			seen[p] = true
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
	return out
}

func mkfsExt4Part(ctx context.Context, env stages.Env, d *diskPart, src string) error {
	if err := createSparse(d.img, d.span.Size); err != nil {
		return err
	}
	conf := d.img + ".conf"
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return err
	}
	defer os.Remove(conf)
	argv := []string{"mkfs.ext4", "-q", "-F", "-T", "default", "-U", d.uuid,
		"-E", "hash_seed=" + d.uuid + ",root_owner=0:0"}
	if src != "" {
		argv = append(argv, "-d", src)
		u, err := measureTree(src)
		if err != nil {
			return err
		}
		if need := u.inodes + u.inodes/4 + 64; d.span.Size/16384 < need {
			argv = append(argv, "-N", strconv.FormatInt(need, 10))
		}
	}
	if d.Label != "" {
		argv = append(argv, "-L", d.Label)
	}
	argv = append(argv, d.img)
	if err := env.RunHost(ctx, argv, stages.RunOptions{
		Env: []string{"MKE2FS_CONFIG=" + conf, "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(env.Epoch(), 10), "LC_ALL=C"},
	}); err != nil {
		if src != "" {
			if u, merr := measureTree(src); merr == nil {
				return fmt.Errorf("%w (%s needs about %s in %d inodes; the partition is %s)", err, d.Mount, human(u.bytes), u.inodes, human(d.span.Size))
			}
		}
		return err
	}
	for _, dir := range d.mkdirs {
		if err := env.RunHost(ctx, []string{"debugfs", "-w", "-R", "mkdir " + dir, d.img}, stages.RunOptions{
			Env: []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(env.Epoch(), 10)},
		}); err != nil {
			return fmt.Errorf("mount point %s: %w", dir, err)
		}
	}
	return ext4fs.ClampTimes(d.img, env.Epoch())
}

func mkfsVfatPart(ctx context.Context, env stages.Env, d *diskPart, src string, boot *bootFiles) error {
	if err := createSparse(d.img, d.span.Size); err != nil {
		return err
	}
	argv := []string{"mkfs.fat", "-F", "32", "-i", strings.ReplaceAll(d.uuid, "-", "")}
	if d.Label != "" {
		argv = append(argv, "-n", d.Label)
	}
	epoch := "SOURCE_DATE_EPOCH=" + strconv.FormatInt(env.Epoch(), 10)
	if err := env.RunHost(ctx, append(argv, d.img), stages.RunOptions{Env: []string{epoch}}); err != nil {
		return err
	}
	var srcs []string
	if src != "" {
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			srcs = append(srcs, filepath.Join(src, e.Name()))
		}
	}
	if d.TypeOfESP() && boot.efiDir != "" {
		ents, err := os.ReadDir(boot.efiDir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			srcs = append(srcs, filepath.Join(boot.efiDir, e.Name()))
		}
	}
	if len(srcs) == 0 {
		return nil
	}
	argv = append([]string{"mcopy", "-s", "-p", "-m", "-Q", "-D", "o", "-i", d.img}, srcs...)
	return env.RunHost(ctx, append(argv, "::/"), stages.RunOptions{Env: []string{"MTOOLS_SKIP_CHECK=1", epoch}})
}

// TypeOfESP says whether the partition is the EFI system partition.
func (d *diskPart) TypeOfESP() bool { return d.Type == "esp" }

// writeTable writes the partition table with go-diskfs; identifiers come
// from the key, so a rebuild writes the same bytes.
func writeTable(f *os.File, size int64, table string, parts []*diskPart, key interface{ Hex() string }) error {
	h := sha256.Sum256([]byte(key.Hex() + "\x00disk-id"))
	if table == "gpt" {
		t := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true,
			GUID: keyUUIDHex(key.Hex(), "gpt-disk")}
		for i, d := range parts {
			typ := d.Type
			if kt, ok := manifest.PartTypes[typ]; ok {
				typ = kt.GPT
			}
			var attr uint64
			if slices.Contains(d.Flags, "legacy_boot") {
				attr |= 1 << 2
			}
			t.Partitions = append(t.Partitions, &gpt.Partition{
				Index: i + 1, Start: uint64(d.span.Start / sector), End: uint64((d.span.Start+d.span.Size)/sector - 1),
				Size: uint64(d.span.Size), Type: gpt.Type(strings.ToUpper(typ)), Name: d.Name, GUID: d.partUUID, Attributes: attr,
			})
		}
		return t.Write(f, size)
	}
	t := &mbr.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector}
	for i, d := range parts {
		var typ byte
		if kt, ok := manifest.PartTypes[d.Type]; ok {
			typ = kt.MBR
		} else {
			v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(d.Type), "0x"), 16, 8)
			if err != nil {
				return fmt.Errorf("partition %s: type %q: %w", d.Name, d.Type, err)
			}
			typ = byte(v)
		}
		t.Partitions = append(t.Partitions, &mbr.Partition{
			Index: i + 1, Bootable: slices.Contains(d.Flags, "boot"), Type: mbr.Type(typ),
			Start: uint32(d.span.Start / sector), Size: uint32(d.span.Size / sector),
		})
	}
	if err := t.Write(f, size); err != nil {
		return err
	}
	// The disk identifier, which go-diskfs leaves alone.
	_, err := f.WriteAt(h[:4], 0x1b8)
	return err
}

func keyUUIDHex(hex, purpose string) string {
	h := sha256.Sum256([]byte(hex + "\x00" + purpose))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// copySparseAt copies the data regions of file src into f at off,
// leaving holes as holes.
func copySparseAt(f *os.File, off int64, src string) error {
	s, err := os.Open(src)
	if err != nil {
		return err
	}
	defer s.Close()
	fi, err := s.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	fd := int(s.Fd())
	buf := make([]byte, 1<<20)
	for pos := int64(0); pos < size; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				return nil // only a hole is left
			}
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		for p := data; p < hole; {
			n := min(int64(len(buf)), hole-p)
			if _, err := s.ReadAt(buf[:n], p); err != nil && err != io.EOF {
				return err
			}
			if _, err := f.WriteAt(buf[:n], off+p); err != nil {
				return err
			}
			p += n
		}
		pos = hole
	}
	return nil
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	iexec "github.com/imgplan/imgplan/pkg/exec"
	"github.com/imgplan/imgplan/test/vm"
)

// bootDeadline bounds one boot under TCG on a busy 2-core machine.
const bootDeadline = 6 * time.Minute

// bootVariant copies an example with its files and writes a variant of it
// that adds the boot marker unit (test/e2e/testdata/boot) and, when
// given, replaces the layout and outputs. It returns the variant's path.
func bootVariant(t *testing.T, example, name, tail string) string {
	t.Helper()
	dir := copyExample(t, example, "examples/files")
	if b, err := exec.Command("cp", "-a", filepath.Join(repo, "test/e2e/testdata/boot"), dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	m := fmt.Sprintf(`apiVersion: imgplan/v1
name: %s
extends: %s
files:
  - {dest: /etc/systemd/system/imgplan-boot-ok.service, src: boot/imgplan-boot-ok.service}
  - {dest: /usr/local/sbin/imgplan-boot-ok, src: boot/imgplan-boot-ok, mode: "0755"}
services:
  enable: [imgplan-boot-ok]
%s`, name, filepath.Base(example), tail)
	p := filepath.Join(dir, name+".yaml")
	write(t, p, m)
	return p
}

// nodeKey is the key of node id in a report.
func nodeKey(t *testing.T, r *iexec.Report, id string) string {
	t.Helper()
	for _, n := range r.Nodes {
		if n.ID == id {
			return n.Key.Hex()
		}
	}
	t.Fatalf("no node %s in the report", id)
	return ""
}

// sfPart is one partition as sfdisk -J reads it back.
type sfPart struct {
	Start    int64  `json:"start"`
	Size     int64  `json:"size"`
	Type     string `json:"type"`
	Bootable bool   `json:"bootable"`
	Name     string `json:"name"`
	UUID     string `json:"uuid"`
	Attrs    string `json:"attrs"`
}

func readTable(t *testing.T, img string) (label string, parts []sfPart) {
	t.Helper()
	out, err := exec.Command("sfdisk", "-J", img).Output()
	if err != nil {
		t.Fatalf("sfdisk -J %s: %v", img, err)
	}
	var v struct {
		PT struct {
			Label      string   `json:"label"`
			Partitions []sfPart `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	d, _ := exec.Command("sfdisk", "-d", img).Output()
	t.Logf("sfdisk -d:\n%s", d)
	return v.PT.Label, v.PT.Partitions
}

// wantPart is what a test expects of a partition: offsets in MiB.
type wantPart struct {
	startMiB, sizeMiB int64
	typ               string // sfdisk's type: "83", or a GUID
	bootable          bool
	fs, mount, label  string
}

// checkDisk checks the table against want exactly, every filesystem
// (extracted by offset) with its own checker, and returns the UUID of
// each partition's filesystem.
func checkDisk(t *testing.T, img, table string, want []wantPart) []string {
	t.Helper()
	label, parts := readTable(t, img)
	if label != table {
		t.Fatalf("table %s, want %s", label, table)
	}
	if len(parts) != len(want) {
		t.Fatalf("%d partitions, want %d", len(parts), len(want))
	}
	uuids := make([]string, len(want))
	for i, w := range want {
		p := parts[i]
		if p.Start != w.startMiB<<11 || p.Size != w.sizeMiB<<11 || !strings.EqualFold(p.Type, w.typ) || p.Bootable != w.bootable {
			t.Errorf("partition %d: start %d size %d type %s bootable %v; want start %d size %d type %s bootable %v",
				i+1, p.Start, p.Size, p.Type, p.Bootable, w.startMiB<<11, w.sizeMiB<<11, w.typ, w.bootable)
		}
		if w.fs == "none" {
			continue
		}
		off := strconv.FormatInt(p.Start*512, 10)
		probe, err := exec.Command("blkid", "-p", "-O", off, "-o", "export", img).Output()
		if err != nil {
			t.Errorf("partition %d: blkid: %v", i+1, err)
			continue
		}
		vals := map[string]string{}
		for _, l := range strings.Split(string(probe), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				vals[k] = v
			}
		}
		if vals["TYPE"] != w.fs || vals["LABEL"] != w.label {
			t.Errorf("partition %d: blkid TYPE=%s LABEL=%s, want %s %q", i+1, vals["TYPE"], vals["LABEL"], w.fs, w.label)
		}
		uuids[i] = vals["UUID"]
		// Check the filesystem in a copy of the partition.
		part := filepath.Join(t.TempDir(), "part")
		dd := exec.Command("dd", "if="+img, "of="+part, "bs=1M", "conv=sparse", "status=none",
			"skip="+strconv.FormatInt(w.startMiB, 10), "count="+strconv.FormatInt(w.sizeMiB, 10))
		if b, err := dd.CombinedOutput(); err != nil {
			t.Fatalf("dd: %v %s", err, b)
		}
		var check *exec.Cmd
		switch w.fs {
		case "ext4":
			check = exec.Command("e2fsck", "-fn", part)
			// Mount points of the partitions below exist in it.
			for _, o := range want {
				rel, ok := strings.CutPrefix(o.mount, strings.TrimSuffix(w.mount, "/")+"/")
				if w.mount == "" || o.mount == w.mount || !ok {
					continue
				}
				st, _ := exec.Command("debugfs", "-R", "stat /"+rel, part).CombinedOutput()
				if !strings.Contains(string(st), "Type: directory") {
					t.Errorf("partition %d (%s) has no directory %s for %s:\n%s", i+1, w.mount, rel, o.mount, st)
				}
			}
		case "vfat":
			check = exec.Command("fsck.vfat", "-n", part)
		}
		if check != nil {
			if b, err := check.CombinedOutput(); err != nil {
				t.Errorf("partition %d: %s: %v\n%s", i+1, check.Args[0], err, b)
			}
		}
		os.Remove(part)
	}
	return uuids
}

// boot starts the disk in QEMU, waits for the marker unit's line and
// checks the build key, systemd's state, and that what is mounted (and
// swapped on) is the layout, by filesystem UUID.
func boot(t *testing.T, o vm.Options, key string, want []wantPart, uuids []string) {
	t.Helper()
	start := time.Now()
	m := vm.Start(t, o)
	got, err := m.Wait(regexp.MustCompile(`IMGPLAN-BOOT-OK (\S*) (\S+)`), bootDeadline)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, tail(m.Serial(), 4000))
	}
	t.Logf("booted in %s", time.Since(start).Round(time.Second))
	if got[1] != key {
		t.Errorf("the guest reports build key %q, want the disk's %q", got[1], key)
	}
	if got[2] != "running" {
		t.Errorf("systemd is %s, not running\n%s", got[2], tail(m.Serial(), 4000))
	}
	var mounts, wantMounts []string
	swaps := 0
	for _, l := range strings.Split(m.Serial(), "\n") {
		// A login prompt may start the line.
		if i := strings.Index(l, "IMGPLAN-MOUNT "); i >= 0 {
			if f := strings.Fields(l[i:]); len(f) >= 4 {
				mounts = append(mounts, f[1]+" "+f[2]+" "+strings.ToLower(f[3]))
			}
		}
		if strings.Contains(l, "IMGPLAN-SWAP ") {
			swaps++
		}
	}
	wantSwaps := 0
	for i, w := range want {
		switch {
		case w.fs == "swap":
			wantSwaps++
		case w.mount != "":
			wantMounts = append(wantMounts, w.mount+" "+w.fs+" "+strings.ToLower(uuids[i]))
		}
	}
	slices.Sort(mounts)
	slices.Sort(wantMounts)
	if !slices.Equal(mounts, wantMounts) {
		t.Errorf("mounted in the guest:\n%s\nwant:\n%s", strings.Join(mounts, "\n"), strings.Join(wantMounts, "\n"))
	}
	if swaps != wantSwaps {
		t.Errorf("%d swap areas in use, want %d", swaps, wantSwaps)
	}
	m.Kill()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestDiskSeed003 builds seed 003's layout (msdos: 40MiB /boot, 40MiB
// swap, 430MiB root), checks the table and filesystems from outside and
// boots it with SeaBIOS.
func TestDiskSeed003(t *testing.T) {
	out := t.TempDir()
	rep := apply(t, bootVariant(t, "examples/layout-seed003.yaml", "e2e-boot-seed003", ""), out)
	img := filepath.Join(out, "disk.raw")
	want := []wantPart{
		{1, 40, "83", true, "ext4", "/boot", "boot"},
		{41, 40, "82", false, "swap", "", "swap"},
		{81, 430, "83", false, "ext4", "/", "root"},
	}
	uuids := checkDisk(t, img, "dos", want)
	assertSparse(t, img)
	boot(t, vm.Options{Disk: img, Format: "raw"}, nodeKey(t, rep, "disk"), want, uuids)
}

// assertSparse: the raw image takes less room than its size.
func assertSparse(t *testing.T, img string) {
	t.Helper()
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ blocks int64 }
	out, err := exec.Command("stat", "-c", "%b", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	st.blocks, _ = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if st.blocks*512 >= fi.Size() {
		t.Errorf("%s is not sparse: %d bytes allocated of %d", img, st.blocks*512, fi.Size())
	}
}

const (
	guidBIOS  = "21686148-6449-6E6F-744E-656564454649"
	guidESP   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	guidLinux = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// TestDiskDebianVM builds examples/debian-vm.yaml twice: as the example
// has it (gpt with bios_grub, ESP and root) to raw and compressed qcow2,
// the qcow2 booted with OVMF and the raw with SeaBIOS; and with an msdos
// layout to raw (and vmdk, vhd), booted with SeaBIOS.
func TestDiskDebianVM(t *testing.T) {
	t.Run("gpt-uefi", func(t *testing.T) {
		out := t.TempDir()
		rep := apply(t, bootVariant(t, "examples/debian-vm.yaml", "e2e-boot-vm", `outputs:
  - {type: raw, path: disk.raw}
  - {type: qcow2, path: disk.qcow2, compress: true}
`), out)
		raw := filepath.Join(out, "disk.raw")
		if b, err := exec.Command("sgdisk", "-v", raw).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, b)
		}
		want := []wantPart{
			{1, 1, guidBIOS, false, "none", "", ""},
			{2, 64, guidESP, false, "vfat", "/boot/efi", ""},
			{66, 2048 - 66 - 1, guidLinux, false, "ext4", "/", "root"},
		}
		uuids := checkDisk(t, raw, "gpt", want)
		qcow := filepath.Join(out, "disk.qcow2")
		if b, err := exec.Command("qemu-img", "check", qcow).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check: %v\n%s", err, b)
		}
		assertVirtualSize(t, qcow, 2<<30)
		boot(t, vm.Options{Disk: qcow, Format: "qcow2", UEFI: true}, nodeKey(t, rep, "disk"), want, uuids)
		// The same disk by BIOS: boot.img in the protective MBR, core.img
		// in the bios_grub partition.
		boot(t, vm.Options{Disk: raw, Format: "raw"}, nodeKey(t, rep, "disk"), want, uuids)
	})
	t.Run("msdos-bios", func(t *testing.T) {
		out := t.TempDir()
		rep := apply(t, bootVariant(t, "examples/debian-vm.yaml", "e2e-boot-vm-msdos", `layout:
  table: msdos
  size: 2GiB
  cmdline: console=ttyS0,115200n8
  partitions:
    - {name: esp, size: 64MiB, type: esp, mount: /boot/efi, options: umask=0077, label: ESP}
    - {name: root, size: rest, mount: /, label: root, flags: [boot]}
outputs:
  - {type: raw, path: disk.raw}
  - {type: vmdk, path: disk.vmdk}
  - {type: vhd, path: disk.vhd}
`), out)
		raw := filepath.Join(out, "disk.raw")
		want := []wantPart{
			{1, 64, "ef", false, "vfat", "/boot/efi", "ESP"},
			{65, 2048 - 65, "83", true, "ext4", "/", "root"},
		}
		uuids := checkDisk(t, raw, "dos", want)
		assertSparse(t, raw)
		if b, err := exec.Command("qemu-img", "check", filepath.Join(out, "disk.vmdk")).CombinedOutput(); err != nil {
			t.Errorf("qemu-img check vmdk: %v\n%s", err, b)
		}
		assertVirtualSize(t, filepath.Join(out, "disk.vmdk"), 2<<30)
		assertVirtualSize(t, filepath.Join(out, "disk.vhd"), 2<<30)
		boot(t, vm.Options{Disk: raw, Format: "raw"}, nodeKey(t, rep, "disk"), want, uuids)
	})
}

// assertVirtualSize checks a converted image's disk size with qemu-img
// info.
func assertVirtualSize(t *testing.T, img string, size int64) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", img).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", img, err)
	}
	var v struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if v.VirtualSize != size {
		t.Errorf("%s: virtual size %d, want %d", img, v.VirtualSize, size)
	}
}

// TestReproducibleDisk: the debian-vm disk (gpt: GRUB's BIOS and EFI
// images, a FAT ESP, an ext4 root with the generated fstab) is bit-for-bit
// identical between two builds with clean stores.
func TestReproducibleDisk(t *testing.T) {
	dir := copyExample(t, "examples/debian-vm.yaml", "examples/files")
	a, b := buildTwice(t, filepath.Join(dir, "debian-vm.yaml"), "--set", "outputs=[{type: raw, path: disk.raw}]")
	assertSameBytes(t, a, b, "disk.raw")
}

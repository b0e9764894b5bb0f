package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imgplan/imgplan/test/vm"
)

// pxeMarker is a unit in the test's image that reports, on the serial
// console, how the root is mounted, whether a write to / lands in the tmpfs,
// and whether boot waited for a device.
// LOWER, RW and UPPER are where the boot method mounts the root image,
// the writable tmpfs, and the overlay's upper directory.
// It reports through the kernel log, which the kernel prints on its
// console (ttyS0): a unit that opens /dev/ttyS0 itself takes it as its
// controlling terminal and races the serial getty, whose hangup of the
// line loses the report or leaves the unit, and so the boot, stuck.
const pxeMarker = `#!/bin/sh
exec >/dev/kmsg 2>&1
root=$(findmnt -n -o FSTYPE /)
lower=$(findmnt -n -o FSTYPE LOWER)
rw=$(findmnt -n -o FSTYPE -T RW)
echo written >/imgplan-write-test && written=yes || written=no
upper=no
[ -f UPPER/imgplan-write-test ] && upper=yes
timeouts=$(journalctl -b --no-pager | grep -c "Timed out waiting for device")
devjobs=$(systemctl list-jobs --no-legend | grep -c '\.device')
fstab=$(awk '$1 !~ /^#/ && ($2 == "/" || $3 == "swap")' /etc/fstab | wc -l)
echo "IMGPLAN-PXE-OK key=$(cat /etc/imgplan-key) root=$root lower=$lower rw=$rw written=$written upper=$upper timeouts=$timeouts devjobs=$devjobs fstab=$fstab"
`

const pxeMarkerUnit = `[Unit]
Description=imgplan test marker
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/imgplan-marker

[Install]
WantedBy=multi-user.target
`

// TestPXEOverlaySquashfs builds examples/debian-diskless.yaml's pxe bundle
// and boots it diskless in QEMU (TCG, user-mode networking): the kernel and
// initrd from the bundle, the root squashfs fetched over HTTP from a server
// on loopback, then over QEMU's built-in TFTP. The guest reports that / is
// an overlay on the squashfs, that a write lands in the tmpfs, and that
// boot waited for no device.
func TestPXEOverlaySquashfs(t *testing.T) {
	dir := copyExample(t, "examples/debian-diskless.yaml")
	nonce := fmt.Sprintf("%d", time.Now().UnixNano())
	write(t, filepath.Join(dir, "marker"), strings.NewReplacer("LOWER", "/run/imgplan/lower", "RW", "/run/imgplan/rw", "UPPER", "/run/imgplan/rw/upper").Replace(pxeMarker))
	write(t, filepath.Join(dir, "marker.service"), pxeMarkerUnit)
	m := filepath.Join(dir, "pxe.yaml")
	write(t, m, `apiVersion: imgplan/v1
name: e2e-pxe
extends: debian-diskless.yaml
files:
  - {dest: /usr/local/sbin/imgplan-marker, src: marker, mode: "0755"}
  - {dest: /etc/systemd/system/imgplan-marker.service, src: marker.service}
  - {dest: /etc/imgplan-key, content: "`+nonce+`\n"}
services:
  enable: [imgplan-marker]
# A root and a swap entry the initramfs stage must take out again: left
# in, systemd waits for their devices at every boot.
fstab:
  add:
    - {spec: LABEL=imgplan-root, file: /, type: ext4}
    - {spec: /dev/vdb1, file: none, type: swap}
outputs:
  - type: pxe
    path: pxe
    boot: overlay-squashfs
    kernel_args: console=ttyS0,115200n8
    macs: ["52:54:00:12:34:56"]
`)
	out := t.TempDir()
	apply(t, m, out)
	bundle := filepath.Join(out, "pxe")
	for _, f := range []string{"vmlinuz", "initrd.img", "root.squashfs", "boot.ipxe", "README.txt", "pxelinux.cfg/default", "pxelinux.cfg/01-52-54-00-12-34-56"} {
		if fi, err := os.Stat(filepath.Join(bundle, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("bundle: %s missing or empty (%v)", f, err)
		}
	}
	def := readFile(t, bundle, "pxelinux.cfg/default")
	if mac := readFile(t, bundle, "pxelinux.cfg/01-52-54-00-12-34-56"); mac != def {
		t.Errorf("the per-MAC entry differs from the default:\n%s", mac)
	}
	cmdline := regexp.MustCompile(`(?m)^\s*APPEND (.*)$`).FindStringSubmatch(def)
	if cmdline == nil || !strings.Contains(cmdline[1], "boot=imgplan-overlay") || !strings.Contains(cmdline[1], "console=ttyS0") {
		t.Fatalf("pxelinux.cfg/default has no usable APPEND line:\n%s", def)
	}
	if ipxe := readFile(t, bundle, "boot.ipxe"); !strings.Contains(ipxe, cmdline[1]) {
		t.Errorf("boot.ipxe does not boot with the same command line:\n%s", ipxe)
	}
	if sum := readFile(t, bundle, "README.txt"); !strings.Contains(sum, cmdline[1]) || !strings.Contains(sum, "root.squashfs") {
		t.Errorf("README.txt lacks the command line or sizes:\n%s", sum)
	}

	// HTTP: a server on loopback, which the guest reaches as 10.0.2.100;
	// the command line is changed as a PXE server's admin would.
	httpCmdline := regexp.MustCompile(`imgplan\.root=\S+`).ReplaceAllString(cmdline[1], "imgplan.root=http://10.0.2.100/root.squashfs")
	t.Run("http", func(t *testing.T) {
		checkPXEBoot(t, bundle, httpCmdline, pxeHTTP(t, bundle), nonce)
	})
	// TFTP: the command line as built (the server DHCP named), QEMU's TFTP
	// server serving the bundle.
	t.Run("tftp", func(t *testing.T) {
		checkPXEBoot(t, bundle, cmdline[1], "user,model=virtio-net-pci,restrict=on,tftp="+bundle, nonce)
	})
}

func checkPXEBoot(t *testing.T, bundle, cmdline, netdev, nonce string) {
	checkPXEBootFS(t, bundle, cmdline, netdev, nonce, "squashfs")
}

func checkPXEBootFS(t *testing.T, bundle, cmdline, nic, nonce, lowerFS string) {
	m := vm.Start(t, vm.Options{
		Memory: 1024, Kernel: filepath.Join(bundle, "vmlinuz"), Initrd: filepath.Join(bundle, "initrd.img"),
		Append: cmdline + " panic=-1", NIC: nic,
	})
	start := time.Now()
	match, err := m.Wait(regexp.MustCompile(`IMGPLAN-PXE-OK [^\r\n]*`), 8*time.Minute)
	if err != nil {
		t.Fatalf("%v; console:\n%s", err, tailLines(m.Serial(), 40))
	}
	line := strings.TrimSpace(match[0])
	t.Logf("guest after %s: %s", time.Since(start).Round(time.Second), line)
	for _, want := range []string{"key=" + nonce, "root=overlay", "lower=" + lowerFS, "rw=tmpfs", "written=yes", "upper=yes", "timeouts=0", "devjobs=0", "fstab=0"} {
		if !strings.Contains(" "+line+" ", " "+want+" ") {
			t.Errorf("guest reported %q, want %s", line, want)
		}
	}
}

// pxeHTTP serves dir over HTTP on loopback and returns the -nic value
// under which the guest reaches it, and only it, as http://10.0.2.100
// (user-mode networking restricted to QEMU's own services, plus a
// forward of that one address to the server).
func pxeHTTP(t *testing.T, dir string) (nic string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:%s", ln.Addr())
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestPXEDracutLive builds examples/debian-dracut-live.yaml's pxe bundle
// (dracut with its live and network modules, an ext4 root.img) and boots
// it diskless in QEMU: dracut fetches root.img over HTTP from a server on
// loopback (root=live:http://10.0.2.100/root.img) and mounts it under
// an overlay with a tmpfs upper layer (dmsquash-live's /run/rootfsbase and
// /run/overlayfs).
func TestPXEDracutLive(t *testing.T) {
	dir := copyExample(t, "examples/debian-dracut-live.yaml")
	nonce := fmt.Sprintf("%d", time.Now().UnixNano())
	write(t, filepath.Join(dir, "marker"), strings.NewReplacer("LOWER", "/run/rootfsbase", "RW", "/run/overlayfs", "UPPER", "/run/overlayfs").Replace(pxeMarker))
	write(t, filepath.Join(dir, "marker.service"), pxeMarkerUnit)
	m := filepath.Join(dir, "live.yaml")
	write(t, m, `apiVersion: imgplan/v1
name: e2e-dracut-live
extends: debian-dracut-live.yaml
files:
  - {dest: /usr/local/sbin/imgplan-marker, src: marker, mode: "0755"}
  - {dest: /etc/systemd/system/imgplan-marker.service, src: marker.service}
  - {dest: /etc/imgplan-key, content: "`+nonce+`\n"}
services:
  enable: [imgplan-marker]
fstab:
  add:
    - {spec: LABEL=imgplan-root, file: /, type: ext4}
    - {spec: /dev/vdb1, file: none, type: swap}
`)
	out := t.TempDir()
	apply(t, m, out, "--set", "outputs[0].server=http://10.0.2.100/")
	bundle := filepath.Join(out, "pxe")

	def := readFile(t, bundle, "pxelinux.cfg/default")
	cmdline := regexp.MustCompile(`(?m)^\s*APPEND (.*)$`).FindStringSubmatch(def)
	want := "root=live:http://10.0.2.100/root.img"
	if cmdline == nil || !strings.Contains(cmdline[1], want) {
		t.Fatalf("pxelinux.cfg/default does not boot %s:\n%s", want, def)
	}
	out2, err := exec.Command("e2fsck", "-fn", filepath.Join(bundle, "root.img")).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn root.img: %v\n%s", err, out2)
	}
	checkPXEBootFS(t, bundle, cmdline[1], pxeHTTP(t, bundle), nonce, "ext4")
}

// TestManifestDiskless builds manifests/debian12-diskless.yaml's pxe
// bundle, with the per-MAC entry it names. (Its separate squashfs output,
// the same root image again, is left out to save CI time: the pxe output
// is the manifest's, as it is there.)
func TestManifestDiskless(t *testing.T) {
	dir := copyExample(t, "manifests/debian12-diskless.yaml", "manifests/base", "manifests/conf")
	out := t.TempDir()
	m := filepath.Join(dir, "debian12-diskless.yaml")
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "  - type: squashfs\n")
	j := strings.Index(string(b), "  - type: pxe\n")
	if i < 0 || j < i {
		t.Fatal("debian12-diskless.yaml: no squashfs output before the pxe output")
	}
	write(t, m, string(b[:i])+string(b[j:]))
	apply(t, m, out)
	for _, f := range []string{"pxe/vmlinuz", "pxe/initrd.img", "pxe/root.squashfs", "pxe/boot.ipxe", "pxe/pxelinux.cfg/default", "pxe/pxelinux.cfg/01-00-00-5e-00-53-01"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s missing or empty (%v)", f, err)
		}
	}
	def := readFile(t, out, "pxe/pxelinux.cfg/default")
	for _, want := range []string{"boot=imgplan-overlay", "imgplan.tmpfs=50%", "console=tty0 console=ttyS0,115200n8"} {
		if !strings.Contains(def, want) {
			t.Errorf("pxelinux.cfg/default lacks %q:\n%s", want, def)
		}
	}
}

// TestPXEMissingParts: an image without a kernel, or without an initramfs
// generator, fails in the initramfs stage with a message saying what to
// install, and nothing is delivered.
func TestPXEMissingParts(t *testing.T) {
	dir := copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	pxe := "outputs=[{type: pxe, path: pxe, boot: overlay-squashfs}]"
	for _, c := range []struct{ name, extra, want string }{
		{"no kernel", "", "the image has no kernel in /boot: add a kernel package"},
		{"no generator", "files:\n  - {dest: /boot/vmlinuz-6.1.0-1-amd64, content: kernel}\n", "the image has no initramfs generator: add initramfs-tools"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := filepath.Join(dir, "pxe-"+strings.ReplaceAll(c.name, " ", "-")+".yaml")
			write(t, m, fmt.Sprintf("apiVersion: imgplan/v1\nname: e2e-pxe-missing\nextends: tiny.yaml\nepoch: %d\n%s", time.Now().UnixNano()%1e9, c.extra))
			out := t.TempDir()
			r := imgplan(t, out, "apply", m, "--set", pxe)
			if r.code != 1 || !strings.Contains(r.err, "initramfs") || !strings.Contains(r.err, c.want) {
				t.Errorf("exit %d, want 1 and %q from the initramfs stage:\n%s", r.code, c.want, r.err)
			}
			if _, err := os.Stat(filepath.Join(out, "pxe")); !os.IsNotExist(err) {
				t.Errorf("a bundle was delivered: %v", err)
			}
		})
	}
}

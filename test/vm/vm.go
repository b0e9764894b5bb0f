// Package vm boots disk images in QEMU for tests: software emulation
// (TCG, so no /dev/kvm is needed), the serial console to a file the test
// reads, user-mode networking restricted to the guest and QEMU's own
// services (no host or outside address is reachable). The machine is
// always killed when the test ends.
package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OVMF is Debian's UEFI firmware (package ovmf).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Options describe the machine.
type Options struct {
	Disk   string // the disk image; never modified (-snapshot)
	Format string // qemu's name for its format: raw, qcow2, vmdk, vpc
	UEFI   bool   // OVMF instead of SeaBIOS
	Memory int    // MiB; default 1024
	CPUs   int    // default 2
	// Kernel, Initrd and Append boot a kernel directly (no disk needed),
	// e.g. for network boot tests.
	Kernel, Initrd, Append string
	// NIC is the -nic value; it must be user-mode networking. Default
	// "user,model=virtio-net-pci,restrict=on"; a network boot test adds
	// tftp= and bootfile=.
	NIC string
	// Extra are further qemu arguments.
	Extra []string
}

// Machine is a running QEMU.
type Machine struct {
	t      testing.TB
	cmd    *exec.Cmd
	serial string
	exited chan struct{}
	err    error
}

// Start boots a machine; it is killed when the test ends.
func Start(t testing.TB, o Options) *Machine {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatalf("qemu-system-x86_64 (package qemu-system-x86): %v", err)
	}
	dir := t.TempDir()
	m := &Machine{t: t, serial: filepath.Join(dir, "serial.log"), exited: make(chan struct{})}
	if o.Memory == 0 {
		o.Memory = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.NIC == "" {
		o.NIC = "user,model=virtio-net-pci,restrict=on"
	}
	if !strings.HasPrefix(o.NIC, "user,") && o.NIC != "user" {
		t.Fatalf("vm: only user-mode networking, not -nic %s", o.NIC)
	}
	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(o.Memory), "-smp", strconv.Itoa(o.CPUs),
		"-display", "none", "-monitor", "none", "-serial", "file:" + m.serial,
		"-nic", o.NIC, "-no-reboot",
	}
	if o.Disk != "" {
		format := o.Format
		if format == "" {
			format = "raw"
		}
		args = append(args, "-drive", "file="+o.Disk+",format="+format+",if=virtio,snapshot=on")
	}
	if o.UEFI {
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(OVMFVars, vars); err != nil {
			t.Fatalf("OVMF (package ovmf): %v", err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel, "-append", o.Append)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
	}
	args = append(args, o.Extra...)
	m.cmd = exec.Command("qemu-system-x86_64", args...)
	out, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stdout, m.cmd.Stderr = out, out
	// Its own process group, and killed if the test process dies.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	t.Logf("qemu %v", args)
	go func() {
		m.err = m.cmd.Wait()
		out.Close()
		close(m.exited)
	}()
	t.Cleanup(m.Kill)
	return m
}

// Kill stops the machine and waits for it.
func (m *Machine) Kill() {
	select {
	case <-m.exited:
		return
	default:
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

// Serial is what the guest wrote on its serial console so far.
func (m *Machine) Serial() string {
	b, _ := os.ReadFile(m.serial)
	return string(b)
}

// ErrExited: the machine stopped before the console showed what was
// awaited.
var ErrExited = errors.New("qemu exited")

// Wait polls the serial console until re matches, and returns the match
// (with its groups). It gives up at the deadline or when qemu exits.
func (m *Machine) Wait(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if s := re.FindStringSubmatch(m.Serial()); s != nil {
			return s, nil
		}
		select {
		case <-m.exited:
			if s := re.FindStringSubmatch(m.Serial()); s != nil {
				return s, nil
			}
			return nil, fmt.Errorf("%w (%v) before %s appeared on the console", ErrExited, m.err, re)
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not appear on the console within %s", re, timeout)
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

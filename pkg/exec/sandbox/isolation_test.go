package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIsolation runs commands in a tiny image with every API filesystem
// mounted, checks what they see, and then that neither the host nor the
// image tree keeps a trace of the sandbox.
func TestIsolation(t *testing.T) {
	needRoot(t)
	t.Setenv("SANDBOX_HOST_LEAK", "leaked")
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	must(t, err)
	hostName, err := os.Hostname()
	must(t, err)

	scripts := []string{
		0: `echo $$`,
		1: `hostname sbx-inside && hostname`,
		2: `ls /proc`,
		3: `cat /etc/resolv.conf`,
		4: `echo data >/tmp/written && echo data >/run/written && echo data >/dev/shm/written && cat /tmp/written /run/written`,
		5: `echo x >/dev/null && head -c 16 /dev/urandom | wc -c && head -c 4 /dev/zero | wc -c && exec 3<>/dev/ptmx && echo ptmx-ok && ls /dev/pts`,
		6: `touch /sys/x 2>/dev/null && echo sys-writable || echo sys-read-only`,
		7: `env`,
		8: `tr '\0' ' ' </proc/1/cmdline`,
		9: `ls -ld /dev /dev/shm /run /tmp | cut -c1-10`,
	}
	for _, full := range []bool{false, true} {
		name := "bare"
		if full {
			name = "full"
		}
		t.Run(name, func(t *testing.T) {
			dir := sharedTempDir(t)
			root := filepath.Join(dir, "root")
			buildRoot(t, root, rootOpts{full: full})
			before := snapshot(t, root)
			out := runProbe(t, probeArg{Root: root, API: allAPI(), Block: full, Scripts: scripts}, false)
			o := out.Outputs

			// PID namespace: a shell gets a small PID, /proc shows only
			// the sandbox's few processes and its PID 1 is the sandbox's.
			if pid, err := strconv.Atoi(strings.TrimSpace(o[0])); err != nil || pid < 2 || pid > 20 {
				t.Errorf("shell PID inside = %q, want a small number", o[0])
			}
			var pids []int
			for _, f := range strings.Fields(o[2]) {
				if n, err := strconv.Atoi(f); err == nil {
					pids = append(pids, n)
				}
			}
			if len(pids) == 0 || len(pids) > 5 || pids[0] != 1 {
				t.Errorf("/proc inside lists PIDs %v, want 1 and a few more", pids)
			}
			if !strings.HasPrefix(o[8], "imgplan-sandbox test-probe") {
				t.Errorf("PID 1 inside is %q, want the sandbox's init", o[8])
			}
			// UTS namespace.
			if strings.TrimSpace(o[1]) != "sbx-inside" {
				t.Errorf("hostname inside = %q", o[1])
			}
			if h, _ := os.Hostname(); h != hostName {
				t.Errorf("host name changed to %q (was %q)", h, hostName)
			}
			if o[3] != string(hostResolv) {
				t.Errorf("resolv.conf inside = %q, want the host's %q", o[3], hostResolv)
			}
			if o[4] != "data\ndata\n" {
				t.Errorf("tmpfs writes: %q", o[4])
			}
			if !strings.HasPrefix(o[5], "16\n4\nptmx-ok\n") || !strings.Contains(o[5], "ptmx") {
				t.Errorf("devices: %q", o[5])
			}
			if strings.TrimSpace(o[6]) != "sys-read-only" {
				t.Errorf("sysfs: %q", o[6])
			}
			if got := strings.Fields(o[9]); strings.Join(got, " ") != "drwxr-xr-x drwxrwxrwt drwxr-xr-x drwxrwxrwt" {
				t.Errorf("modes of /dev /dev/shm /run /tmp: %v", got)
			}
			checkEnv(t, o[7])
			checkMounts(t, out.Mountinfo, root)

			sameTree(t, "image tree", before, snapshot(t, root))
			if m := mountsUnder(t, "/proc/self/mountinfo", dir); len(m) != 0 {
				t.Errorf("host mounts under the test dir after Run: %v", m)
			}
		})
	}
}

func checkEnv(t *testing.T, env string) {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	want := map[string]string{
		"PATH":                        imagePATH,
		"HOME":                        "/root",
		"LANG":                        "C.UTF-8",
		"TERM":                        "dumb",
		"DEBIAN_FRONTEND":             "noninteractive",
		"DEBCONF_NONINTERACTIVE_SEEN": "true",
		"SYSTEMD_OFFLINE":             "1",
		"SOURCE_DATE_EPOCH":           "1234",
		"EXTRA":                       "yes",
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("env inside: %s=%q, want %q", k, vars[k], v)
		}
	}
	for k := range vars {
		// The shell adds PWD and SHLVL; nothing else may come in.
		if _, ok := want[k]; !ok && k != "PWD" && k != "SHLVL" {
			t.Errorf("env inside has %s=%s, not from the clean environment", k, vars[k])
		}
	}
}

// checkMounts checks the sandbox's own mount table: what MountAPI mounted,
// where, with which options.
func checkMounts(t *testing.T, mountinfo, root string) {
	t.Helper()
	got := map[string]mountEntry{}
	for _, m := range parseMountinfo(mountinfo) {
		got[m.point] = m
	}
	want := []struct{ point, fstype, opt, superOpt string }{
		{"/proc", "proc", "nosuid", ""},
		{"/sys", "sysfs", "ro", ""},
		{"/dev", "tmpfs", "nosuid", "mode=755"},
		{"/dev/null", "devtmpfs", "", ""},
		{"/dev/urandom", "devtmpfs", "", ""},
		{"/dev/pts", "devpts", "noexec", "ptmxmode=666"},
		{"/dev/pts", "devpts", "", "mode=620"},
		{"/dev/pts", "devpts", "", "gid=5"},
		{"/dev/shm", "tmpfs", "nodev", ""}, // tmpfs does not show its default mode, 1777
		{"/run", "tmpfs", "nodev", "mode=755"},
		{"/tmp", "tmpfs", "nosuid", ""},
		{"/etc/resolv.conf", "", "ro", ""},
	}
	for _, w := range want {
		m, ok := got[root+w.point]
		if !ok {
			t.Errorf("no mount at %s in the sandbox", w.point)
			continue
		}
		if w.fstype != "" && m.fstype != w.fstype {
			t.Errorf("%s is %s, want %s", w.point, m.fstype, w.fstype)
		}
		if w.opt != "" && !hasOpt(m.opts, w.opt) {
			t.Errorf("%s mount options %s lack %s", w.point, m.opts, w.opt)
		}
		if w.superOpt != "" && !hasOpt(m.superOpts, w.superOpt) {
			t.Errorf("%s options %s lack %s", w.point, m.superOpts, w.superOpt)
		}
	}
}

func hasOpt(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// TestDaemonsDie leaves a daemon running in the sandbox: it must be gone
// when Run returns, because the PID namespace died with its init.
func TestDaemonsDie(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	marker := randomName("sbxmark-")
	buildRoot(t, root, rootOpts{marker: marker})
	reapMarked(t, marker)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Run(ctx, "test-daemon", daemonArg{Root: root, Marker: marker}, testOptions(t)); err != nil {
		t.Fatal(err)
	}
	if pids := procsWith(marker); len(pids) != 0 {
		t.Errorf("daemon still running after Run returned: PIDs %v", pids)
	}
}

// TestOrphansReaped leaves orphans that exit at once: init, as PID 1 of the
// namespace, must reap them or they stay zombies until the sandbox ends.
func TestOrphansReaped(t *testing.T) {
	needRoot(t)
	root := filepath.Join(t.TempDir(), "root")
	buildRoot(t, root, rootOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Run(ctx, "test-reap", root, testOptions(t)); err != nil {
		t.Fatal(err)
	}
}

package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileImage gives MountAPI an image whose mount points are symlinks
// aimed at directories of the host: every mount must land inside the root,
// where a chrooted process would look, and the host directories must stay
// untouched. The sandbox reports its own mount table, which is where a
// misdirected mount would show (the host's never shows the sandbox's).
func TestHostileImage(t *testing.T) {
	needRoot(t)
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	must(t, err)

	type layout struct{ dir, root, sentinel, hostDir string }
	setup := func(t *testing.T) layout {
		dir := sharedTempDir(t)
		l := layout{dir: dir, root: filepath.Join(dir, "root"),
			sentinel: filepath.Join(dir, "host-sentinel"), hostDir: filepath.Join(dir, "host-dir")}
		buildRoot(t, l.root, rootOpts{})
		must(t, os.Mkdir(l.sentinel, 0o755))
		must(t, os.WriteFile(filepath.Join(l.sentinel, "keep"), []byte("host\n"), 0o644))
		must(t, os.Mkdir(l.hostDir, 0o755))
		must(t, os.WriteFile(filepath.Join(l.hostDir, "resolv.conf"), []byte("nameserver 198.51.100.1\n"), 0o644))
		return l
	}
	// untouched checks the host directories, the image and the host's
	// mount table after the run, given snapshots from before.
	type snaps struct{ sentinel, hostDir, root map[string]string }
	take := func(t *testing.T, l layout) snaps {
		return snaps{snapshot(t, l.sentinel), snapshot(t, l.hostDir), snapshot(t, l.root)}
	}
	untouched := func(t *testing.T, l layout, before snaps, mountinfo string) {
		t.Helper()
		for _, m := range parseMountinfo(mountinfo) {
			for _, host := range []string{l.sentinel, l.hostDir} {
				if m.point == host || strings.HasPrefix(m.point, host+"/") {
					t.Errorf("sandbox mounted %s on the host directory %s", m.fstype, m.point)
				}
			}
		}
		after := take(t, l)
		sameTree(t, "host-sentinel", before.sentinel, after.sentinel)
		sameTree(t, "host-dir", before.hostDir, after.hostDir)
		sameTree(t, "image tree", before.root, after.root)
		if m := mountsUnder(t, "/proc/self/mountinfo", l.dir); len(m) != 0 {
			t.Errorf("host mounts under the test dir after Run: %v", m)
		}
	}

	t.Run("symlinks out of the root", func(t *testing.T) {
		l := setup(t)
		must(t, os.Symlink(l.sentinel, filepath.Join(l.root, "proc")))                             // absolute
		must(t, os.Symlink("../host-sentinel", filepath.Join(l.root, "sys")))                      // one level up
		must(t, os.Symlink(strings.Repeat("../", 16)+l.hostDir[1:], filepath.Join(l.root, "etc"))) // far up, then down
		must(t, os.Symlink("/../../"+l.hostDir[1:]+"/../run", filepath.Join(l.root, "run")))       // absolute with ..
		before := take(t, l)
		scripts := []string{
			"cat /etc/resolv.conf",
			"tr '\\0' ' ' </proc/1/cmdline",
			"ls /sys/kernel >/dev/null && echo sys-ok",
		}
		// Not /tmp: the test's host paths are below /tmp, so a tmpfs there
		// would hide the mounts this test looks for from the chroot.
		api := allAPI()
		api.Tmp = false
		out := runProbe(t, probeArg{Root: l.root, API: api, Scripts: scripts}, false)
		if out.Outputs[0] != string(hostResolv) {
			t.Errorf("resolv.conf inside = %q, want the host's", out.Outputs[0])
		}
		if !strings.HasPrefix(out.Outputs[1], "imgplan-sandbox") {
			t.Errorf("/proc inside is not the sandbox's: PID 1 is %q", out.Outputs[1])
		}
		if out.Outputs[2] != "sys-ok\n" {
			t.Errorf("sysfs inside: %q", out.Outputs[2])
		}
		// Where a chroot into the root finds the links' targets.
		mounts := map[string]string{}
		for _, m := range parseMountinfo(out.Mountinfo) {
			mounts[m.point] = m.fstype
		}
		for p, fstype := range map[string]string{
			l.root + l.sentinel:                 "proc",
			l.root + "/host-sentinel":           "sysfs",
			l.root + l.hostDir + "/resolv.conf": "",
			l.root + l.dir + "/run":             "tmpfs",
		} {
			got, ok := mounts[p]
			if !ok || fstype != "" && got != fstype {
				t.Errorf("mount at %s: %q, want %s", p, got, fstype)
			}
		}
		untouched(t, l, before, out.Mountinfo)
		if _, err := os.Lstat(filepath.Join(l.dir, "run")); err == nil {
			t.Errorf("%s/run was created on the host", l.dir)
		}
	})

	t.Run("magic link through /proc", func(t *testing.T) {
		l := setup(t)
		must(t, os.Mkdir(filepath.Join(l.root, "proc"), 0o755))
		// Once /proc is mounted, /proc/self/root is the sandbox's real root.
		must(t, os.Symlink("/proc/self/root"+l.sentinel, filepath.Join(l.root, "dev")))
		before := take(t, l)
		out := runProbe(t, probeArg{Root: l.root, API: APIMounts{Proc: true, Dev: true}}, true)
		if !strings.Contains(out.MountErr, "/dev") || !strings.Contains(out.MountErr, "too many levels of symbolic links") {
			t.Errorf("MountAPI error = %q, want ELOOP for /dev", out.MountErr)
		}
		if m := mountPointsUnder(out.Mountinfo, l.root); len(m) != 0 {
			t.Errorf("a failed MountAPI left mounts: %v", m)
		}
		untouched(t, l, before, out.Mountinfo)
	})

	t.Run("symlink loop", func(t *testing.T) {
		l := setup(t)
		must(t, os.Symlink("/tmp", filepath.Join(l.root, "proc")))
		must(t, os.Symlink("proc", filepath.Join(l.root, "tmp")))
		before := take(t, l)
		out := runProbe(t, probeArg{Root: l.root, API: APIMounts{Proc: true}}, true)
		if !strings.Contains(out.MountErr, "too many levels of symbolic links") {
			t.Errorf("MountAPI error = %q, want ELOOP", out.MountErr)
		}
		untouched(t, l, before, out.Mountinfo)
	})
}

package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolvConf checks that commands see the host's resolv.conf whatever
// the image's is, and that the image's is as before afterwards.
func TestResolvConf(t *testing.T) {
	needRoot(t)
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	must(t, err)
	const stub = "run/systemd/resolve/stub-resolv.conf"
	mkdirs := func(root string, dirs ...string) {
		for _, d := range dirs {
			must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		}
	}
	tests := []struct {
		name  string
		setup func(root string)
		noRun bool   // leave /run to the image: the target is created there
		also  string // another path inside that must read as the host's
	}{
		{name: "regular file", setup: func(root string) {
			mkdirs(root, "etc")
			must(t, os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 192.0.2.1\n"), 0o644))
		}},
		{name: "relative symlink into /run", also: "/" + stub, setup: func(root string) {
			mkdirs(root, "etc", "run")
			must(t, os.Symlink("../"+stub, filepath.Join(root, "etc/resolv.conf")))
		}},
		{name: "absolute symlink into /run", also: "/" + stub, setup: func(root string) {
			mkdirs(root, "etc", "run")
			must(t, os.Symlink("/"+stub, filepath.Join(root, "etc/resolv.conf")))
		}},
		{name: "symlink into the image's /run", noRun: true, also: "/" + stub, setup: func(root string) {
			mkdirs(root, "etc", "run")
			must(t, os.Symlink("../"+stub, filepath.Join(root, "etc/resolv.conf")))
		}},
		{name: "symlink to a file in the image", also: "/var/lib/resolv.conf", setup: func(root string) {
			mkdirs(root, "etc", "var/lib")
			must(t, os.WriteFile(filepath.Join(root, "var/lib/resolv.conf"), []byte("nameserver 192.0.2.2\n"), 0o644))
			must(t, os.Symlink("../var/lib/resolv.conf", filepath.Join(root, "etc/resolv.conf")))
		}},
		{name: "missing", setup: func(root string) { mkdirs(root, "etc") }},
		{name: "no /etc", setup: func(string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := sharedTempDir(t)
			root := filepath.Join(dir, "root")
			buildRoot(t, root, rootOpts{})
			tt.setup(root)
			before := snapshot(t, root)
			api := APIMounts{Resolv: true, Run: !tt.noRun}
			scripts := []string{"cat /etc/resolv.conf"}
			if tt.also != "" {
				scripts = append(scripts, "cat "+tt.also)
			}
			out := runProbe(t, probeArg{Root: root, API: api, Scripts: scripts}, false)
			for i, o := range out.Outputs {
				if o != string(hostResolv) {
					t.Errorf("%s: %q, want the host's %q", scripts[i], o, hostResolv)
				}
			}
			sameTree(t, "image tree", before, snapshot(t, root))
			if m := mountsUnder(t, "/proc/self/mountinfo", dir); len(m) != 0 {
				t.Errorf("host mounts under the test dir after Run: %v", m)
			}
		})
	}
}

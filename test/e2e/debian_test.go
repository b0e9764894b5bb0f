package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDebianMinimal builds examples/debian-minimal.yaml and checks the
// result from outside, with the host's own tools: packages, every files
// entry with its content, mode and owner, the user, fstab, services.
func TestDebianMinimal(t *testing.T) {
	out := t.TempDir()
	rep := apply(t, filepath.Join(repo, "examples/debian-minimal.yaml"), out)
	root := filepath.Join(out, "rootfs")

	// Packages, read with dpkg-query from the image's database.
	q, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package} ${db:Status-Status}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"openssh-server", "less", "vim-tiny", "cron"} {
		if !strings.Contains(string(q), p+" installed\n") {
			t.Errorf("package %s is not installed", p)
		}
	}

	uid, gid := lookupIDs(t, root, "app")
	cronGID := groupID(t, root, "crontab")
	for _, f := range []struct {
		path, content string
		mode          os.FileMode
		uid, gid      int
	}{
		{"/var/spool/cron/crontabs/root", readRepo(t, "examples/files/debian-minimal/root.crontab"), 0o600, 0, cronGID},
		{"/etc/app/app.conf", "listen = 127.0.0.1:8080\n", 0o640, uid, gid},
		{"/etc/motd", "Debian 12, built by imgplan from examples/debian-minimal.yaml.\n", 0o644, 0, 0},
		{"/etc/profile.d/imgplan.sh", readRepo(t, "examples/files/debian-minimal/tree/etc/profile.d/imgplan.sh"), 0o644, 0, 0},
		{"/usr/local/bin/hello.sh", readRepo(t, "examples/files/debian-minimal/tree/usr/local/bin/hello.sh"), 0o755, 0, 0},
		{"/root/.ssh/authorized_keys", readRepo(t, "examples/files/debian-minimal/authorized_keys"), 0o600, 0, 0},
	} {
		assertFile(t, root, f.path, f.content, f.mode, f.uid, f.gid)
	}
	if target, err := os.Readlink(filepath.Join(root, "usr/local/bin/hello")); err != nil || target != "hello.sh" {
		t.Errorf("symlink /usr/local/bin/hello: %q %v", target, err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "root/.ssh")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("/root/.ssh: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/update-motd.d/10-uname")); !os.IsNotExist(err) {
		t.Errorf("/etc/update-motd.d/10-uname was not removed: %v", err)
	}

	// The user, with its shell, uid, group and password hash.
	passwd := readFile(t, root, "/etc/passwd")
	if !strings.Contains(passwd, "\napp:x:2000:2000:application service account:/home/app:/usr/sbin/nologin\n") {
		t.Errorf("no app user as declared in /etc/passwd:\n%s", passwd)
	}
	if !strings.Contains(readFile(t, root, "/etc/shadow"), "\napp:$6$imgplanex$PgViy1aw1R") {
		t.Error("app's password hash is not in /etc/shadow")
	}
	if got := readFile(t, root, "/etc/hostname"); got != "minimal\n" {
		t.Errorf("hostname: %q", got)
	}

	// fstab: swap gone, tmpfs added.
	fstab := readFile(t, root, "/etc/fstab")
	if !strings.Contains(fstab, "tmpfs\t/tmp\ttmpfs\tdefaults,nosuid,nodev,size=256m\t0\t0\n") || strings.Contains(fstab, " swap ") {
		t.Errorf("fstab:\n%s", fstab)
	}

	// Services: ssh enabled, cron disabled.
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if _, err := os.Lstat(filepath.Join(wants, "ssh.service")); err != nil {
		t.Errorf("ssh is not enabled: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(wants, "cron.service")); !os.IsNotExist(err) {
		t.Errorf("cron is not disabled: %v", err)
	}

	// The hook ran at its phase, read the manifest's directory, could not
	// write to it.
	if got := readFile(t, root, "/etc/imgplan-release-note"); got != "Built by imgplan from examples/debian-minimal.yaml.\nphase=post-files\n" {
		t.Errorf("hook output: %q", got)
	}
	if _, err := os.Stat(filepath.Join(repo, "examples/written-by-hook")); !os.IsNotExist(err) {
		t.Errorf("the hook wrote into the manifest's directory")
	}

	// Time zone and locale.
	if target, err := os.Readlink(filepath.Join(root, "etc/localtime")); err != nil || target != "../usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("/etc/localtime -> %q (%v)", target, err)
	}
	if got := readFile(t, root, "/etc/timezone"); got != "Europe/Berlin\n" {
		t.Errorf("/etc/timezone: %q", got)
	}
	if got := readFile(t, root, "/etc/default/locale"); got != "LANG=en_US.UTF-8\n" {
		t.Errorf("/etc/default/locale: %q", got)
	}
	if out, err := exec.Command("localedef", "--list-archive", filepath.Join(root, "usr/lib/locale/locale-archive")).Output(); err != nil || !strings.Contains(string(out), "en_US.utf8") {
		t.Errorf("en_US.UTF-8 not generated: %q %v", out, err)
	}

	// Nothing of the build is left in the image.
	for _, p := range []string{"/usr/sbin/policy-rc.d", "/run/imgplan", "/var/cache/apt/pkgcache.bin"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left in the image", p)
		}
	}
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
		t.Errorf("%d .debs left in the image", len(debs))
	}

	// The tar output lists the same tree.
	tv, err := exec.Command("tar", "-tvf", filepath.Join(out, "rootfs.tar")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tv), "-rw-r----- 2000/2000") || !strings.Contains(string(tv), "./etc/app/app.conf") {
		t.Errorf("tar listing lacks ./etc/app/app.conf owned 2000/2000 with mode 0640")
	}
	if len(mountsUnder(store)) > 0 {
		t.Errorf("mounts left under the store: %v", mountsUnder(store))
	}
	_ = rep
}

func readRepo(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readFile(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertFile(t *testing.T, root, p, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
	if got := readFile(t, root, p); got != content {
		t.Errorf("%s: content %q, want %q", p, got, content)
	}
}

func lookupIDs(t *testing.T, root, user string) (uid, gid int) {
	t.Helper()
	for _, l := range strings.Split(readFile(t, root, "/etc/passwd"), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 3 && f[0] == user {
			return atoi(t, f[2]), atoi(t, f[3])
		}
	}
	t.Fatalf("no user %s", user)
	return
}

func groupID(t *testing.T, root, group string) int {
	t.Helper()
	for _, l := range strings.Split(readFile(t, root, "/etc/group"), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == group {
			return atoi(t, f[2])
		}
	}
	t.Fatalf("no group %s", group)
	return 0
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestDownloadsShared: a rebuild of the same base with another epoch (so
// every node is new) downloads no .deb: each download would be published
// to the store's cache as a new inode, and the cache is unchanged.
func TestDownloadsShared(t *testing.T) {
	dir := copyExample(t, "examples/debian-minimal.yaml", "examples/files")
	m := filepath.Join(dir, "debian-minimal.yaml")
	epoch := func() string { return fmt.Sprintf("epoch=%d", time.Now().UnixNano()%1e9) }
	apply(t, m, t.TempDir(), "--set", "outputs=[{type: tar}]", "--set", epoch())
	before := debInodes(t)
	if len(before) < 90 { // minbase with its essential packages, and the example's
		t.Fatalf("only %d .debs in the shared cache", len(before))
	}
	rep := apply(t, m, t.TempDir(), "--set", "outputs=[{type: tar}]", "--set", epoch())
	if st := statuses(rep); st["bootstrap"] != "built" || st["packages"] != "built" {
		t.Fatalf("bootstrap %s, packages %s; want both built", st["bootstrap"], st["packages"])
	}
	after := debInodes(t)
	for name, ino := range after {
		if before[name] != ino {
			t.Errorf("%s was downloaded again", name)
		}
	}
}

// debInodes maps the .debs of the shared cache to their inodes.
func debInodes(t *testing.T) map[string]uint64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(store, "v1/downloads/apt/debian/*/*.deb"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return out
}

// TestDebootstrapFallback builds the base with debootstrap, as on a host
// without mmdebstrap: same packages and sources, another key.
func TestDebootstrapFallback(t *testing.T) {
	dir := copyExample(t, "examples/debian-minimal.yaml", "examples/files")
	out := t.TempDir()
	cmd := exec.Command(bin, "apply", filepath.Join(dir, "debian-minimal.yaml"), "--cache-dir", store, "--out", out, "--set", "outputs=[{type: dir, path: rootfs}]")
	cmd.Env = append(os.Environ(), "IMGPLAN_DEB_BOOTSTRAP=debootstrap")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apply with debootstrap: %v\n%s", err, b)
	}
	root := filepath.Join(out, "rootfs")
	q, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package} ${db:Status-Status}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"openssh-server", "tzdata", "locales"} {
		if !strings.Contains(string(q), p+" installed\n") {
			t.Errorf("package %s is not installed", p)
		}
	}
	sources := readFile(t, root, "/etc/apt/sources.list")
	if !strings.Contains(sources, " bookworm-security ") && strings.Contains(readFile(t, "/", "/etc/apt/sources.list.d/debian.sources"), "bookworm-security") {
		t.Errorf("the host's security suite is not in the image's sources:\n%s", sources)
	}
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
		t.Errorf("%d .debs left in the image", len(debs))
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The RPM repository fixture: built at test time with rpmbuild and
// createrepo_c from testdata/rpm, served over HTTP on loopback. It holds
// the comps group core (a shell, the base accounts, shadow and chkconfig
// tools, init scripts with a %post scriptlet, tzdata, and an i686 package
// the manifests' exclude must keep out), and a package of every name the
// centos63 manifests install, with dependencies between some of them.

// corePackages are the group core's packages (x86_64).
var corePackages = []string{"setup", "busybox", "shadow-utils", "chkconfig", "initscripts", "tzdata"}

// i686Packages are built for i686 only; core lists the first one.
var i686Packages = []string{"compat-fixture-i686", "libaio"}

// extraRequires are dependencies between the fixture's packages.
var extraRequires = map[string][]string{
	"openssh-clients": {"openssh"},
	"openssh":         {"setup"},
	"mysql-server":    {"mysql", "perl-DBI"},
	"perl-DBD-MySQL":  {"perl-DBI", "mysql"},
	"abrt-cli":        {"abrt"},
	"abrt-addon-ccpp": {"abrt"},
	"nfs-utils":       {"rpcbind"},
	"vim-enhanced":    {"vim-common"},
}

// services are the init scripts initscripts ships: every service the
// centos63 manifests enable or disable.
var services = strings.Fields(`network sshd crond rsyslog ntpdate auditd iptables ip6tables netconsole netfs
postfix rdisc restorecond rpcbind nfslock irqbalance nfs rpcgssd rpcidmapd rpcsvcgssd abrt-ccpp abrt-oops
abrtd kdump lvm2-monitor smartd cpuspeed psacct quota_nld rngd sysstat messagebus mysqld`)

// manifestPackages are the names centos63-{web,db}.yaml (and the base)
// install, without an .arch suffix.
func manifestPackages(t *testing.T) []string {
	set := map[string]bool{}
	re := regexp.MustCompile(`(?m)^    - ([A-Za-z0-9_.+-]+)`)
	for _, f := range []string{"manifests/base/centos63.yaml", "manifests/centos63-web.yaml", "manifests/centos63-db.yaml"} {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		_, after, _ := strings.Cut(string(b), "\npackages:\n")
		block, _, _ := strings.Cut(after, "\n\n")
		for _, m := range re.FindAllStringSubmatch(block, -1) {
			set[strings.TrimSuffix(m[1], ".x86_64")] = true
		}
	}
	for _, deps := range extraRequires {
		for _, d := range deps {
			set[d] = true
		}
	}
	for _, c := range corePackages {
		delete(set, c)
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// spec writes the x86_64 spec: one subpackage per name.
func rpmSpec(t *testing.T, leaves []string) string {
	var b strings.Builder
	b.WriteString(`Name: fixture
Version: 1.0
Release: 1.el6
Summary: imgplan test fixture
License: MIT
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
%description
imgplan test fixture.

%package -n setup
Summary: base accounts and directories
%description -n setup
Accounts.

%package -n busybox
Summary: a shell and core utilities
%description -n busybox
Shell.

%package -n shadow-utils
Summary: account tools
Requires: setup, busybox
%description -n shadow-utils
useradd.

%package -n chkconfig
Summary: service links
Requires: busybox
%description -n chkconfig
chkconfig.

%package -n initscripts
Summary: init scripts
Requires: chkconfig, setup
Requires(post): busybox
%description -n initscripts
Init scripts.

%package -n tzdata
Summary: time zones
%description -n tzdata
Zones.

%post -n initscripts
echo "initscripts %post ran with $0" > /var/lib/initscripts-post
ln -s rc.d/rc.local /etc/rc.local

%files -n setup
/etc/passwd
/etc/group
%attr(0000,root,root) /etc/shadow
%dir /root
%dir /home
%dir /var/lib
%dir /etc/sysconfig

%files -n busybox
/bin/*
/sbin/nologin
/usr/bin/*

%files -n shadow-utils
/usr/sbin/*

%files -n chkconfig
/sbin/chkconfig

%files -n initscripts
/etc/rc.d

%files -n tzdata
/usr/share/zoneinfo
`)
	for _, n := range leaves {
		fmt.Fprintf(&b, "\n%%package -n %s\nSummary: %s\n", n, n)
		if r := extraRequires[n]; len(r) > 0 {
			fmt.Fprintf(&b, "Requires: %s\n", strings.Join(r, ", "))
		}
		fmt.Fprintf(&b, "%%description -n %s\n%s.\n%%files -n %s\n/usr/share/fixture/%s\n", n, n, n, n)
	}
	b.WriteString(`
%install
cp -a %{fixtureroot}/. %{buildroot}/
`)
	return b.String()
}

const rpmSpecI686 = `Name: compat-fixture-i686
Version: 1.0
Release: 1.el6
Summary: multilib package the manifests exclude
License: MIT
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none
%description
Excluded.
%package -n libaio
Summary: libaio, i686
%description -n libaio
i686.
%files
/usr/lib/compat-fixture-i686
%files -n libaio
/usr/lib/libaio-i686
%install
mkdir -p %{buildroot}/usr/lib
echo i686 > %{buildroot}/usr/lib/compat-fixture-i686
echo i686 > %{buildroot}/usr/lib/libaio-i686
`

// fixtureRepo builds the repository in a directory of the test's and
// returns the directory to serve.
func fixtureRepo(t *testing.T) string {
	t.Helper()
	dir, err := buildRPMRepo(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func buildRPMRepo(t *testing.T, work string) (string, error) {
	leaves := manifestPackages(t)
	// The build root every x86_64 subpackage takes its files from.
	root := filepath.Join(work, "root")
	td := filepath.Join(repo, "test/e2e/testdata/rpm")
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
		"etc/shadow": "root:*:15000:0:99999:7:::\n",
	}
	for _, n := range leaves {
		files["usr/share/fixture/"+n] = n + "\n"
	}
	for _, s := range services {
		files["etc/rc.d/init.d/"+s] = fmt.Sprintf("#!/bin/sh\n# chkconfig: 2345 50 50\n# description: %s\necho %s \"$1\"\n", s, s)
	}
	files["etc/rc.d/rc.local"] = "#!/bin/sh\ntouch /var/lock/subsys/local\n"
	for p, c := range files {
		if err := writeMode(filepath.Join(root, p), c, 0o755); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"root", "home", "var/lib", "etc/sysconfig", "etc/rc.d/rc0.d", "etc/rc.d/rc1.d", "etc/rc.d/rc2.d", "etc/rc.d/rc3.d", "etc/rc.d/rc4.d", "etc/rc.d/rc5.d", "etc/rc.d/rc6.d", "usr/share/zoneinfo/Asia", "bin", "sbin", "usr/bin", "usr/sbin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	copies := map[string]string{
		"/usr/share/zoneinfo/Asia/Shanghai": "usr/share/zoneinfo/Asia/Shanghai",
		"/bin/busybox":                      "bin/busybox",
	}
	for _, tool := range []string{"useradd", "usermod", "groupadd", "chpasswd"} {
		copies[filepath.Join(td, tool)] = "usr/sbin/" + tool
	}
	copies[filepath.Join(td, "chkconfig")] = "sbin/chkconfig"
	for src, dst := range copies {
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := writeMode(filepath.Join(root, dst), string(b), 0o755); err != nil {
			return "", err
		}
	}
	for _, a := range []string{"sh", "ls", "cat", "sed", "awk", "grep", "mkdir", "ln", "rm", "mv", "chown", "chmod", "echo", "cut", "touch", "env"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return "", err
		}
	}
	for _, l := range [][2]string{{"../../bin/busybox", "usr/bin/env"}, {"../bin/busybox", "sbin/nologin"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			return "", err
		}
	}
	os.Remove(filepath.Join(root, "bin/env"))
	specs := filepath.Join(work, "fixture.spec")
	if err := os.WriteFile(specs, []byte(rpmSpec(t, leaves)), 0o644); err != nil {
		return "", err
	}
	i686 := filepath.Join(work, "i686.spec")
	if err := os.WriteFile(i686, []byte(rpmSpecI686), 0o644); err != nil {
		return "", err
	}
	top := filepath.Join(work, "top")
	for _, s := range []struct{ spec, target string }{{specs, "x86_64"}, {i686, "i686"}} {
		cmd := exec.Command("rpmbuild", "-bb", "--target", s.target,
			"--define", "_topdir "+top, "--define", "fixtureroot "+root,
			"--define", "_binary_payload w9.gzdio", s.spec)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("rpmbuild %s: %v\n%s", s.spec, err, b)
		}
	}
	repoDir := filepath.Join(work, "repo", "6.3", "os", "x86_64")
	if err := os.MkdirAll(filepath.Join(repoDir, "Packages"), 0o755); err != nil {
		return "", err
	}
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", "*.rpm"))
	for _, r := range rpms {
		if err := os.Rename(r, filepath.Join(repoDir, "Packages", filepath.Base(r))); err != nil {
			return "", err
		}
	}
	comps := `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//CentOS//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>core</id>
    <name>Core</name>
    <description>Smallest possible installation</description>
    <default>true</default>
    <uservisible>false</uservisible>
    <packagelist>
`
	for _, p := range append(append([]string{}, corePackages...), i686Packages[0]) {
		comps += fmt.Sprintf("      <packagereq type=\"mandatory\">%s</packagereq>\n", p)
	}
	comps += "    </packagelist>\n  </group>\n</comps>\n"
	if err := os.WriteFile(filepath.Join(work, "comps.xml"), []byte(comps), 0o644); err != nil {
		return "", err
	}
	if err := signRPMs(work, filepath.Join(repoDir, "Packages")); err != nil {
		return "", err
	}
	if b, err := exec.Command("createrepo_c", "-g", filepath.Join(work, "comps.xml"), repoDir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("createrepo_c: %v\n%s", err, b)
	}
	return filepath.Join(work, "repo"), nil
}

// signRPMs signs every package with a new key, whose public half is
// written to work/RPM-GPG-KEY-fixture (the repository's key).
func signRPMs(work, dir string) error {
	home := filepath.Join(work, "gnupg")
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	defer func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = env
		kill.Run()
	}()
	run := func(out string, argv ...string) error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		b, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, msg)
		}
		if out != "" {
			return os.WriteFile(out, b, 0o644)
		}
		return nil
	}
	const uid = "imgplan fixture <fixture@imgplan.invalid>"
	if err := run("", "gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "rsa2048", "sign", "never"); err != nil {
		return err
	}
	if err := run(filepath.Join(work, "RPM-GPG-KEY-fixture"), "gpg", "--armor", "--export", uid); err != nil {
		return err
	}
	rpms, _ := filepath.Glob(filepath.Join(dir, "*.rpm"))
	return run("", append([]string{"rpmsign", "--addsign", "--define", "__gpg /usr/bin/gpg", "--define", "_gpg_name " + uid, "--define", "_gpg_path " + home}, rpms...)...)
}

func writeMode(p, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}

// repoServer serves a directory on a loopback port and counts the GETs
// of each path.
type repoServer struct {
	URL  string
	mu   sync.Mutex
	gets map[string]int
}

func (s *repoServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[path]
}

// serveRepo serves dir until the test ends.
func serveRepo(t *testing.T, dir string) *repoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &repoServer{URL: "http://" + ln.Addr().String(), gets: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.gets[r.URL.Path]++
		s.mu.Unlock()
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// TestCentOS63 builds manifests/centos63-web.yaml and then
// centos63-db.yaml against the fixture repository, and checks the web
// image's root.img from outside; the db variant must reuse the base's
// bootstrap.
func TestCentOS63(t *testing.T) {
	dir := fixtureRepo(t)
	srv := serveRepo(t, dir)
	mirror := srv.URL + "/6.3/os/x86_64/"
	out := t.TempDir()
	rep := apply(t, filepath.Join(repo, "manifests/centos63-web.yaml"), out, "--set", "bootstrap.mirror="+mirror)
	for _, id := range []string{"bootstrap", "packages"} {
		if s := statuses(rep)[id]; s == "" {
			t.Errorf("report has no %s node", id)
		}
	}
	img := filepath.Join(out, "root.img")
	if b, err := exec.Command("dumpe2fs", "-h", img).Output(); err != nil || strings.Contains(string(b), "metadata_csum") || strings.Contains(string(b), "64bit") {
		t.Errorf("root.img has features a CentOS 6 kernel cannot mount (%v):\n%s", err, b)
	}
	mnt := t.TempDir()
	if b, err := exec.Command("mount", "-t", "ext4", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount root.img: %v\n%s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	// The package database, read by the host's rpm: exactly the packages
	// the manifest asked for and their dependencies, nothing i686.
	q, err := exec.Command("rpm", "--root", mnt, "--dbpath", "/var/lib/rpm", "-qa", "--qf", `%{NAME}.%{ARCH}\n`).Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v", err)
	}
	got := strings.Fields(string(q))
	sort.Strings(got)
	want := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if want[n+".x86_64"] {
			return
		}
		want[n+".x86_64"] = true
		for _, d := range extraRequires[n] {
			add(d)
		}
	}
	for _, n := range corePackages {
		add(n)
	}
	re := regexp.MustCompile(`(?m)^    - ([A-Za-z0-9_.+-]+)`)
	for _, f := range []string{"manifests/base/centos63.yaml", "manifests/centos63-web.yaml"} {
		_, after, _ := strings.Cut(readRepo(t, f), "\npackages:\n")
		block, _, _ := strings.Cut(after, "\n\n")
		for _, m := range re.FindAllStringSubmatch(block, -1) {
			add(strings.TrimSuffix(m[1], ".x86_64"))
		}
	}
	var wantList []string
	for n := range want {
		wantList = append(wantList, n)
	}
	sort.Strings(wantList)
	if strings.Join(got, " ") != strings.Join(wantList, " ") {
		t.Errorf("rpm -qa in the image:\n got %v\nwant %v", got, wantList)
	}
	for _, p := range got {
		if strings.Contains(p, "i686") {
			t.Errorf("i686 package installed: %s", p)
		}
	}
	// The package manifest beside the outputs says the same.
	if b, err := os.ReadFile(filepath.Join(out, "imgplan-packages.json")); err != nil || !strings.Contains(string(b), `"manager": "rpm"`) || !strings.Contains(string(b), `"name": "nfs-utils"`) {
		t.Errorf("imgplan-packages.json: %v\n%.400s", err, b)
	}

	// The scriptlet ran, chrooted, with the image's shell.
	if s := readFile(t, mnt, "/var/lib/initscripts-post"); !strings.HasPrefix(s, "initscripts %post ran") {
		t.Errorf("scriptlet output: %q", s)
	}
	if l, err := os.Readlink(filepath.Join(mnt, "etc/rc.local")); err != nil || l != "rc.d/rc.local" {
		t.Errorf("/etc/rc.local: %q %v", l, err)
	}

	// Config files, with their modes.
	for _, f := range []struct {
		path, src string
		mode      os.FileMode
	}{
		{"/etc/sysctl.conf", "manifests/conf/WEB63/sysctl.conf", 0o644},
		{"/etc/ssh/sshd_config", "manifests/conf/common/sshd_config", 0o600},
		{"/etc/sysconfig/network-scripts/ifcfg-eth1", "manifests/conf/WEB63/ifcfg-eth1", 0o644},
		{"/etc/rc.d/rc.local", "manifests/conf/WEB63/rc.local", 0o755},
		{"/var/spool/cron/root", "manifests/conf/WEB63/crontab", 0o600},
		{"/etc/yum.repos.d/base.repo", "manifests/conf/common/base.repo", 0o644},
		// No fstab section in the web manifest: the base's file as is.
		{"/etc/fstab", "manifests/conf/common/fstab", 0o644},
	} {
		assertFile(t, mnt, f.path, readRepo(t, f.src), f.mode, 0, 0)
	}
	if zone, _ := os.ReadFile("/usr/share/zoneinfo/Asia/Shanghai"); readFile(t, mnt, "/etc/localtime") != string(zone) {
		t.Errorf("/etc/localtime is not a copy of Asia/Shanghai")
	}

	// Users: the service accounts cannot log in; root has the base's hash.
	passwd := readFile(t, mnt, "/etc/passwd")
	for _, u := range []string{"appl", "zabbix"} {
		if !regexp.MustCompile(`(?m)^` + u + `:x:\d+:\d+:[^:]*:/home/` + u + `:/sbin/nologin$`).MatchString(passwd) {
			t.Errorf("user %s with /sbin/nologin not in /etc/passwd:\n%s", u, passwd)
		}
	}
	hash := regexp.MustCompile(`password_hash: (\S+)`).FindStringSubmatch(readRepo(t, "manifests/base/centos63.yaml"))[1]
	if shadow := readFile(t, mnt, "/etc/shadow"); !strings.Contains(shadow, "root:"+hash+":") {
		t.Errorf("root's hash not in /etc/shadow:\n%s", shadow)
	}

	// Services, through the image's chkconfig: sysvinit S/K links.
	for _, s := range []struct {
		name string
		on   bool
	}{{"sshd", true}, {"network", true}, {"rpcbind", true}, {"postfix", false}, {"abrtd", false}, {"kdump", false}} {
		link := "K50" + s.name
		if s.on {
			link = "S50" + s.name
		}
		if target, err := os.Readlink(filepath.Join(mnt, "etc/rc.d/rc3.d", link)); err != nil || target != "../init.d/"+s.name {
			t.Errorf("service %s (on=%v): rc3.d/%s: %q %v", s.name, s.on, link, target, err)
		}
	}
	// The build's logs and caches stay out of the image.
	for _, p := range []string{"var/log/dnf.log", "var/lib/dnf", "var/cache/dnf/packages"} {
		if _, err := os.Lstat(filepath.Join(mnt, p)); err == nil {
			t.Errorf("%s is in the image", p)
		}
	}

	// The second variant reuses the base's bootstrap from the store; it
	// also removes a package with dnf, which takes what requires it along
	// (vim-enhanced, of the base's list).
	out2 := t.TempDir()
	rep2 := apply(t, filepath.Join(repo, "manifests/centos63-db.yaml"), out2, "--set", "bootstrap.mirror="+mirror, "--set", "packages.remove+=vim-common")
	if s := statuses(rep2)["bootstrap"]; s != "cached" {
		t.Errorf("centos63-db: bootstrap is %s, want cached", s)
	}
	if s := statuses(rep2)["packages"]; s != "built" {
		t.Errorf("centos63-db: packages is %s, want built", s)
	}
	var pl struct {
		Manager  string
		Packages []struct{ Name, Version, Arch string }
	}
	b, err := os.ReadFile(filepath.Join(out2, "imgplan-packages.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pl); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, p := range pl.Packages {
		names[p.Name] = p.Version + "." + p.Arch
	}
	if pl.Manager != "rpm" || names["mysql-server"] != "1.0-1.el6.x86_64" || names["perl-DBI"] == "" || names["initscripts"] == "" {
		t.Errorf("centos63-db packages: %s %v", pl.Manager, names)
	}
	// Packages both variants install were downloaded once: the second
	// build took them from the store's RPM cache.
	for _, p := range []string{"ntpdate", "openssh-clients", "rsync", "busybox"} {
		f := "/6.3/os/x86_64/Packages/" + p + "-1.0-1.el6.x86_64.rpm"
		if n := srv.count(f); n != 1 {
			t.Errorf("%s was downloaded %d times, want 1", f, n)
		}
	}
	for _, gone := range []string{"vim-common", "vim-enhanced"} {
		if _, ok := names[gone]; ok {
			t.Errorf("centos63-db: %s was not removed", gone)
		}
	}
	if _, ok := names["nfs-utils"]; ok {
		t.Errorf("centos63-db has the web variant's nfs-utils")
	}

	// gpgcheck as the manifest says: the signed packages install with the
	// repository's key, and not without it.
	key := filepath.Join(filepath.Dir(dir), "RPM-GPG-KEY-fixture")
	r := imgplan(t, t.TempDir(), "apply", filepath.Join(repo, "manifests/centos63-db.yaml"), "--set", "bootstrap.mirror="+mirror, "--set", "bootstrap.gpgcheck=true")
	t.Logf("gpgcheck without the key:\n%s", r.err)
	if r.code != 1 || !strings.Contains(r.err, "FAILED  bootstrap") || !strings.Contains(r.err, "GPG") {
		t.Errorf("gpgcheck without the key: exit %d, want 1 from the bootstrap\n%s", r.code, r.err)
	}
	out3 := t.TempDir()
	apply(t, filepath.Join(repo, "manifests/centos63-db.yaml"), out3, "--set", "bootstrap.mirror="+mirror, "--set", "bootstrap.gpgcheck=true", "--set", "bootstrap.gpgkeys=["+key+"]")
	if b, err := os.ReadFile(filepath.Join(out3, "imgplan-packages.json")); err != nil || !strings.Contains(string(b), `"name": "gpg-pubkey"`) {
		t.Errorf("gpgcheck with the key: the key is not in the image's rpm database: %v\n%.300s", err, b)
	}
}

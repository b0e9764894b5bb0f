package stages

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// inputsEnv resolves input roles; the rest of Env is not used by what
// these tests call.
type inputsEnv struct {
	Env
	inputs map[string]string
}

func (e inputsEnv) Input(role string) (string, error) {
	p, ok := e.inputs[role]
	if !ok {
		return "", fmt.Errorf("no input %q", role)
	}
	return p, nil
}

func TestDNFConfig(t *testing.T) {
	s := &RPMSetup{
		Distro: "centos", Release: "6.3", Arch: "x86_64",
		Mirror: "http://127.0.0.1:8080/6.3/os/x86_64/", GPGCheck: true,
		Keys:    []string{"bootstrap.gpgkeys[0]"},
		Exclude: []string{"*i686*", "kernel-debug"},
		Repos: []RepoParams{
			{Name: "updates", URL: "http://127.0.0.1:8080/$releasever/updates/$basearch/", GPGCheck: false},
			{Name: "extras", URL: "http://127.0.0.1:8080/extras/", GPGCheck: true, GPGKey: "bootstrap.repos.extras.gpgkey"},
		},
	}
	d := &dnf{env: inputsEnv{inputs: map[string]string{
		"bootstrap.gpgkeys[0]":          "/keys/RPM-GPG-KEY-CentOS-6",
		"bootstrap.repos.extras.gpgkey": "/keys/extras.asc",
	}}, s: s, tmp: "/tmp/x", repos: "/tmp/x/repos.d"}
	conf, err := d.config()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[main]\ngpgcheck=1\n",
		"reposdir=/tmp/x/repos.d\n", "varsdir=/tmp/x/vars\n", "plugins=False\n", "keepcache=True\n",
		"excludepkgs=*i686*,kernel-debug\n",
		"[centos]\nname=centos\nbaseurl=http://127.0.0.1:8080/6.3/os/x86_64/\nenabled=1\ngpgcheck=1\ngpgkey=file:///keys/RPM-GPG-KEY-CentOS-6\n",
		"[updates]\nname=updates\nbaseurl=http://127.0.0.1:8080/$releasever/updates/$basearch/\nenabled=1\ngpgcheck=0\n\n",
		"[extras]\nname=extras\nbaseurl=http://127.0.0.1:8080/extras/\nenabled=1\ngpgcheck=1\ngpgkey=file:///keys/extras.asc\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("dnf.conf lacks %q:\n%s", want, conf)
		}
	}
	// A key the plan did not declare is an error, never silently dropped.
	d.env = inputsEnv{inputs: map[string]string{}}
	if _, err := d.config(); err == nil {
		t.Error("config with a missing key input: no error")
	}

	got := s.repomdURLs()
	want := []string{
		"http://127.0.0.1:8080/6.3/os/x86_64/repodata/repomd.xml",
		"http://127.0.0.1:8080/6.3/updates/x86_64/repodata/repomd.xml",
		"http://127.0.0.1:8080/extras/repodata/repomd.xml",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("repomd URLs:\n got %v\nwant %v", got, want)
	}
}

func TestRPMDBChanges(t *testing.T) {
	set := func(s ...string) map[string]bool {
		m := map[string]bool{}
		for _, p := range s {
			m[p] = true
		}
		return m
	}
	base := set("bash-4.1.2-9.el6_2.x86_64", "vim-minimal-7.2.411-1.8.el6.x86_64", "gpg-pubkey-c105b9de-4e0fd3a3.(none)")
	after := set("bash-4.1.2-9.el6_2.x86_64", "vim-minimal-7.2.411-1.8.el6.x86_64", "gpg-pubkey-c105b9de-4e0fd3a3.(none)",
		"rsync-3.0.6-9.el6.x86_64", "gpg-pubkey-0608b895-4bd22942.(none)", "ed-1.1-3.3.el6.x86_64")
	delete(after, "vim-minimal-7.2.411-1.8.el6.x86_64")
	added, removed, keys := rpmdbChanges(base, after)
	if want := []string{"ed-1.1-3.3.el6.x86_64", "rsync-3.0.6-9.el6.x86_64"}; !reflect.DeepEqual(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
	if want := []string{"vim-minimal-7.2.411-1.8.el6.x86_64"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if want := []string{"gpg-pubkey-0608b895-4bd22942.(none)"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	// A new database (after the bootstrap) records everything.
	added, removed, keys = rpmdbChanges(map[string]bool{}, after)
	if len(added) != 3 || len(removed) != 0 || len(keys) != 2 {
		t.Errorf("new database: added %v removed %v keys %v", added, removed, keys)
	}
}

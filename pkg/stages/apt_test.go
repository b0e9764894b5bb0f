package stages

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestHostAptDefaults(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n",
		"etc/apt/sources.list": "# comment\ndeb http://mirror.example/debian bookworm main contrib\n" +
			"deb-src http://mirror.example/debian bookworm main\n" +
			"deb [arch=amd64 signed-by=/k.gpg] http://other.example/repo stable main\n",
		"etc/apt/sources.list.d/debian.sources": "Types: deb\n# note\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
			"Types: deb deb-src\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
			"Types: deb\nURIs: http://disabled.example/\nSuites: bookworm\nEnabled: no\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := ReadHostApt(root)
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != "debian" || h.Codename != "bookworm" || len(h.Sources) != 5 {
		t.Fatalf("host: %+v", h)
	}
	got := h.DefaultSources("debian", "trixie", []string{"main"})
	want := []AptSource{
		{URI: "http://mirror.example/debian", Suite: "trixie", Components: []string{"main"}},
		{URI: "http://mirror.example/debian", Suite: "trixie-updates", Components: []string{"main"}},
		{URI: "http://security.example/debian-security", Suite: "trixie-security", Components: []string{"main"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if h.DefaultSources("ubuntu", "noble", nil) != nil {
		t.Error("a Debian host gave defaults for ubuntu")
	}
	if s := want[1].InRelease(); s != "http://mirror.example/debian/dists/trixie-updates/InRelease" {
		t.Errorf("InRelease: %s", s)
	}
	if s := (AptSource{URI: "http://x.example/repo/", Suite: "./"}).InRelease(); s != "http://x.example/repo/InRelease" {
		t.Errorf("flat InRelease: %s", s)
	}
}

func TestAptListName(t *testing.T) {
	for url, want := range map[string]string{
		"http://deb.debian.org/debian/dists/bookworm/InRelease":                   "deb.debian.org_debian_dists_bookworm_InRelease",
		"http://deb.debian.org/debian-security/dists/bookworm-security/InRelease": "deb.debian.org_debian-security_dists_bookworm-security_InRelease",
		"https://user:pw@mirror.example:8080/deb_ian/dists/x/InRelease":           "mirror.example:8080_deb%5fian_dists_x_InRelease",
	} {
		if got := aptListName(url); got != want {
			t.Errorf("%s: %s, want %s", url, got, want)
		}
	}
}

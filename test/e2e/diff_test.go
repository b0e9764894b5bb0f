package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/diff"
)

// TestDiffBase commits a Debian manifest to a git repository made here,
// edits a config file and adds a package in the working tree, and checks
// that imgplan diff --base HEAD names exactly those changes and the
// stages they rebuild, and that --built reads the file and package
// differences from the two built images.
func TestDiffBase(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	const manifestText = `apiVersion: imgplan/v1
name: e2e-diff
bootstrap:
  distro: debian
  release: bookworm
  variant: minbase
packages:
  install: [less]
files:
  - {dest: /etc/app/app.conf, src: conf/app.conf}
outputs:
  - {type: tar, path: rootfs.tar}
`
	write("image/web.yaml", manifestText)
	write("image/conf/app.conf", "listen = 127.0.0.1:8080\nworkers = 2\n")
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "image")

	write("image/conf/app.conf", "listen = 127.0.0.1:8080\nworkers = 4\n")
	write("image/web.yaml", strings.Replace(manifestText, "install: [less]", "install: [less, tree]", 1))
	manifest := filepath.Join(dir, "image/web.yaml")

	r := imgplan(t, "", "diff", "--base", "HEAD", "--format", "json", manifest)
	if r.code != 0 {
		t.Fatalf("diff: exit %d\n%s", r.code, r.err)
	}
	var d diff.Diff
	if err := json.Unmarshal([]byte(r.out), &d); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	want := []diff.Change{
		{Section: "packages", Item: "tree", Op: diff.Added},
		{Section: "files", Item: "/etc/app/app.conf", Op: diff.Changed, Text: "-workers = 2\n+workers = 4"},
	}
	if len(d.Changes) != len(want) {
		t.Fatalf("changes: got %+v, want %+v", d.Changes, want)
	}
	for i := range want {
		if g := d.Changes[i]; g.Section != want[i].Section || g.Item != want[i].Item || g.Op != want[i].Op || g.Text != want[i].Text || len(g.Fields) != 0 {
			t.Errorf("change %d: got %+v, want %+v", i, g, want[i])
		}
	}
	status := map[string]string{}
	for _, s := range d.Stages {
		status[s.ID] = s.Status
	}
	for id, st := range map[string]string{"bootstrap": diff.Same, "packages": diff.Rebuild, "files": diff.Rebuild, "tree": diff.Rebuild, "output:rootfs.tar": diff.Rebuild} {
		if status[id] != st {
			t.Errorf("stage %s: %q, want %q (all: %v)", id, status[id], st, status)
		}
	}

	// The text form names the same things.
	r = imgplan(t, "", "diff", "--base", "HEAD", manifest)
	for _, s := range []string{"+ tree", "~ /etc/app/app.conf", "+workers = 4", "cached   bootstrap", "rebuild  packages"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("text diff lacks %q:\n%s", s, r.out)
		}
	}

	r = imgplan(t, "", "diff", "--base", "HEAD", "--built", "--format", "json", manifest)
	if r.code != 0 {
		t.Fatalf("diff --built: exit %d\n%s", r.code, r.err)
	}
	d = diff.Diff{}
	if err := json.Unmarshal([]byte(r.out), &d); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if d.Built == nil {
		t.Fatalf("no built difference:\n%s", r.out)
	}
	files := map[string]diff.FileChange{}
	for _, f := range d.Built.Files {
		files[f.Path] = f
	}
	if f := files["/etc/app/app.conf"]; f.Op != diff.Changed || strings.Join(f.Fields, ",") != "content" {
		t.Errorf("/etc/app/app.conf: %+v", f)
	}
	if f := files["/usr/bin/tree"]; f.Op != diff.Added {
		t.Errorf("/usr/bin/tree: %+v", f)
	}
	var pkgs []string
	for _, p := range d.Built.Packages {
		pkgs = append(pkgs, p.Op+" "+p.Name)
	}
	if strings.Join(pkgs, ",") != "added tree:amd64" {
		t.Errorf("package changes: %v, want only tree added", pkgs)
	}
	if len(d.Built.Outputs) != 1 || d.Built.Outputs[0].Path != "rootfs.tar" || d.Built.Outputs[0].Old <= 0 || d.Built.Outputs[0].New <= d.Built.Outputs[0].Old {
		t.Errorf("output sizes: %+v", d.Built.Outputs)
	}
}

package main

import (
	"bytes"
	"flag"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestPlanGolden pins the plan output in every format. Keys are part of
// it: a change here means every cache built before it is invalidated, so
// it must be deliberate (bump a kind's Version or the key format).
func TestPlanGolden(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	t.Setenv("IMGPLAN_DEB_BOOTSTRAP", "mmdebstrap") // whatever this host has
	for _, tc := range []struct{ name, format string }{
		{"plan-web.txt", "text"},
		{"plan-web.json", "json"},
		{"plan-web.md", "markdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "plan", "testdata/plan/web.yaml", "--format", tc.format, "--offline", "--cache-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, tc.name, out)
		})
	}
	out, errOut, code := runCLI(t, "graph", "testdata/plan/web.yaml", "--offline", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("graph: exit %d: %s", code, errOut)
	}
	golden(t, "graph-web.dot", out)
}

func TestSourceDateEpochOverridesManifest(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	out, errOut, code := runCLI(t, "plan", "testdata/plan/base.yaml", "--format", "json", "--offline", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"epoch": 1,`) {
		t.Errorf("SOURCE_DATE_EPOCH=1 not used:\n%s", out)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, _, code := runCLI(t, "plan", "testdata/plan/base.yaml"); code != exitInvalid {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d, want %d", code, exitInvalid)
	}
}

func TestValidate(t *testing.T) {
	out, errOut, code := runCLI(t, "validate", "testdata/plan/base.yaml", "testdata/plan/web.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if out != "testdata/plan/base.yaml: ok\ntestdata/plan/web.yaml: ok\n" {
		t.Errorf("stdout: %q", out)
	}
}

// TestBadInput: every problem at once, with positions, exit status 2.
func TestBadInput(t *testing.T) {
	out, errOut, code := runCLI(t, "validate", "testdata/plan/base.yaml", "testdata/plan/bad.yaml")
	if code != exitInvalid {
		t.Errorf("exit %d, want %d", code, exitInvalid)
	}
	if out != "testdata/plan/base.yaml: ok\n" {
		t.Errorf("stdout: %q", out)
	}
	golden(t, "validate-bad.txt", errOut)

	_, errOut, code = runCLI(t, "plan", "testdata/plan/base.yaml", "--set", "bootstrap.arch=sparc", "--set", "nosuch=1")
	if code != exitInvalid {
		t.Errorf("plan with bad --set: exit %d, want %d", code, exitInvalid)
	}
	golden(t, "plan-bad-set.txt", errOut)
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"plan"},
		{"plan", "a.yaml", "b.yaml"},
		{"plan", "--nosuchflag", "x.yaml"},
		{"plan", "testdata/plan/base.yaml", "--format", "yaml"},
		{"validate"},
	} {
		if _, errOut, code := runCLI(t, args...); code != exitInvalid || !strings.Contains(errOut, "imgplan: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and a message", args, code, errOut, exitInvalid)
		}
	}
	if _, errOut, code := runCLI(t, "plan", "testdata/plan/nosuch.yaml"); code != exitFailure || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing manifest: exit %d, stderr %q", code, errOut)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	out, _, code := runCLI(t, "schema")
	if code != 0 || !strings.Contains(out, `"$schema": "https://json-schema.org/draft/2020-12/schema"`) {
		t.Fatalf("exit %d:\n%.300s", code, out)
	}
}

// TestReferenceDocIsCurrent keeps docs/manifest-reference.md generated
// from the types (go test -update rewrites it).
func TestReferenceDocIsCurrent(t *testing.T) {
	out, errOut, code := runCLI(t, "schema", "--format", "markdown")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	path := "../../docs/manifest-reference.md"
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || string(want) != out {
		t.Errorf("%s is not current: run go test ./cmd/imgplan -update", path)
	}
}

// TestDiffGolden pins imgplan diff in every format for pairs of manifest
// revisions under testdata/diff/CASE/{old,new}.
func TestDiffGolden(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	t.Setenv("IMGPLAN_DEB_BOOTSTRAP", "mmdebstrap")
	cache := t.TempDir()
	for _, c := range []string{"package-added", "config-edited", "partition-resized", "variant-base-changed"} {
		for _, f := range []struct{ format, ext string }{{"text", "txt"}, {"markdown", "md"}, {"json", "json"}} {
			t.Run(c+"."+f.ext, func(t *testing.T) {
				dir := filepath.Join("testdata", "diff", c)
				out, errOut, code := runCLI(t, "diff", filepath.Join(dir, "old", "web.yaml"), filepath.Join(dir, "new", "web.yaml"),
					"--format", f.format, "--offline", "--cache-dir", cache)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errOut)
				}
				golden(t, "diff-"+c+"."+f.ext, out)
			})
		}
	}
}

// TestDiffBaseGit runs diff --base on a git repository made here, with a
// manifest that needs no network: the old side is read from the commit,
// the new from the working tree, and a bad revision is a usage error.
func TestDiffBaseGit(t *testing.T) {
	if _, err := osexec.LookPath("git"); err != nil {
		t.Skip("needs git (scripts/deps.sh installs it)")
	}
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
		out, err := osexec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@localhost"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write("img/root/etc/os-release", "ID=tiny\n")
	write("img/conf/motd", "hello\n")
	write("img/m.yaml", "apiVersion: imgplan/v1\nname: t\nbootstrap: {distro: directory, source: root}\nfiles:\n  - {dest: /etc/motd, src: conf/motd}\noutputs:\n  - {type: tar}\n")
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "one")
	write("img/conf/motd", "hello, world\n")
	out, errOut, code := runCLI(t, "diff", "--base", "HEAD", filepath.Join(dir, "img/m.yaml"), "--offline", "--cache-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range []string{"m.yaml@HEAD → ", "~ /etc/motd", "-hello\n", "+hello, world\n", "cached   bootstrap", "rebuild  files"} {
		if !strings.Contains(out, s) {
			t.Errorf("diff lacks %q:\n%s", s, out)
		}
	}
	if _, errOut, code := runCLI(t, "diff", "--base", "no-such-rev", filepath.Join(dir, "img/m.yaml"), "--offline", "--cache-dir", t.TempDir()); code != exitInvalid || !strings.Contains(errOut, "not a revision") {
		t.Errorf("bad revision: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "diff", "--base", "HEAD", filepath.Join(t.TempDir(), "x.yaml")); code == 0 {
		t.Errorf("manifest outside git: exit 0: %s", errOut)
	}
}

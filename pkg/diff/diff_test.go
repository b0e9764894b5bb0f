package diff

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/continuity"

	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/stages"
)

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"x\ny\nz\n", "x\nY\nz\n", "-y\n+Y"},
		{"", "a\n", "+a"},
		{"a\nb\n", "a\n", "-b"},
		{"a\n", "a\n", ""},
		{"a\nb\nc\n", "b\nc\nd\n", "-a\n+d"},
	} {
		if got := lineDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
	long := ""
	for i := 0; i < 50; i++ {
		long += "line\n"
	}
	if got := splitLines(lineDiff("", long)); len(got) != maxDiffLines+1 || got[maxDiffLines] != "… 30 more lines" {
		t.Errorf("long diff not cut: %d lines, last %q", len(got), got[len(got)-1])
	}
}

func TestTreeChanges(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	write := func(dir, name, s string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "etc/same", "s\n", 0o644)
	write(b, "etc/same", "s\n", 0o644)
	write(a, "etc/edited", "old\n", 0o644)
	write(b, "etc/edited", "new\n", 0o600)
	write(a, "etc/gone", "g\n", 0o644)
	write(b, "etc/new", "n\n", 0o644)
	got := treeChanges(manifest.File{Tree: manifest.LocalPath{Raw: "t", Path: a}}, manifest.File{Dest: "/srv", Tree: manifest.LocalPath{Raw: "t", Path: b}})
	want := []Change{
		{Section: "files", Item: "/srv/etc/edited", Op: Changed, Fields: []Field{{Name: "mode", Old: "-rw-r--r--", New: "-rw-------"}}, Text: "-old\n+new"},
		{Section: "files", Item: "/srv/etc/gone", Op: Removed},
		{Section: "files", Item: "/srv/etc/new", Op: Added, Text: "+n"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestCompareBuilt compares two output directories holding real
// continuity manifests of two trees, package lists and apply reports.
func TestCompareBuilt(t *testing.T) {
	side := func(files map[string]string, modes map[string]os.FileMode, pkgs []stages.Package, size int64) string {
		tree, out := t.TempDir(), t.TempDir()
		for name, s := range files {
			if err := os.WriteFile(filepath.Join(tree, name), []byte(s), modes[name]); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(tree, name), modes[name]); err != nil {
				t.Fatal(err)
			}
		}
		ctx, err := continuity.NewContext(tree)
		if err != nil {
			t.Fatal(err)
		}
		m, err := continuity.BuildManifest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := continuity.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		js := func(v any) []byte { b, _ := json.Marshal(v); return b }
		for name, b := range map[string][]byte{
			manifest.ContentFile:  pb,
			manifest.PackagesFile: js(stages.PackageList{Format: "x", Manager: "dpkg", Packages: pkgs}),
			manifest.ReportFile:   js(map[string]any{"outputs": []map[string]any{{"path": "root.img", "size": size}, {"path": manifest.PackagesFile, "size": 1}}}),
		} {
			if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	old := side(map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]os.FileMode{"a": 0o644, "b": 0o644, "c": 0o644},
		[]stages.Package{{Name: "bash", Version: "5.2-1", Arch: "amd64"}, {Name: "vim", Version: "9", Arch: "amd64"}}, 1<<20)
	new := side(map[string]string{"a": "1", "b": "22", "c": "3", "d": "4"}, map[string]os.FileMode{"a": 0o600, "b": 0o644, "c": 0o644, "d": 0o644},
		[]stages.Package{{Name: "bash", Version: "5.2-2", Arch: "amd64"}, {Name: "htop", Version: "3", Arch: "amd64"}}, 2<<20)
	got, err := CompareBuilt(old, new)
	if err != nil {
		t.Fatal(err)
	}
	want := &Built{
		Files: []FileChange{{Path: "/a", Op: Changed, Fields: []string{"mode 644 → 600"}}, {Path: "/b", Op: Changed, Fields: []string{"content"}}, {Path: "/d", Op: Added}},
		Packages: []PackageChange{{Name: "bash:amd64", Op: Changed, Old: "5.2-1", New: "5.2-2"}, {Name: "htop:amd64", Op: Added, New: "3"},
			{Name: "vim:amd64", Op: Removed, Old: "9"}},
		Outputs: []OutputSize{{Path: "root.img", Old: 1 << 20, New: 2 << 20}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestLockChanges(t *testing.T) {
	pin := func(name, version string) stages.LockedPackage {
		return stages.LockedPackage{Name: name, Version: version, Arch: "amd64"}
	}
	a := &stages.Lock{Packages: []stages.LockedPackage{pin("curl", "7.88.1-10"), pin("nginx", "1.22.1-9"), pin("gone", "1")}}
	b := &stages.Lock{Packages: []stages.LockedPackage{pin("curl", "7.88.1-11"), pin("nginx", "1.22.1-9"), pin("htop", "3.2")}}
	got := lockChanges(a, b)
	want := []Change{
		{Section: "lock", Item: "curl:amd64", Op: Changed, Fields: []Field{{Name: "version", Old: "7.88.1-10", New: "7.88.1-11"}}},
		{Section: "lock", Item: "htop:amd64", Op: Added, Fields: []Field{{Name: "version", New: "3.2"}}},
		{Section: "lock", Item: "gone:amd64", Op: Removed, Fields: []Field{{Name: "version", Old: "1"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := lockChanges(nil, nil); len(got) != 0 {
		t.Errorf("no locks: %+v", got)
	}
}

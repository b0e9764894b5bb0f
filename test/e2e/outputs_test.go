package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/continuity"
)

// TestOutputs builds examples/special.yaml into every filesystem and
// archive format and checks each with an independent tool, then mounts
// (ext4, squashfs) or extracts (tar, cpio) it and compares what is there
// with the tree's content manifest written beside the outputs.
func TestOutputs(t *testing.T) {
	out := t.TempDir()
	apply(t, filepath.Join(repo, "examples/special.yaml"), out)
	ref := loadManifest(t, filepath.Join(out, "imgplan-content.pb"))
	if _, ok := ref["usr/bin/su"]; !ok {
		t.Fatalf("the content manifest lacks usr/bin/su: %v", keysOf(ref))
	}

	t.Run("ext4", func(t *testing.T) {
		img := filepath.Join(out, "root.img")
		if b, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
			t.Fatalf("e2fsck -fn: %v\n%s", err, b)
		}
		for path, want := range map[string][]string{
			"/usr/bin/su":           {"Mode:  04755", "User:     0   Group:     0"},
			"/usr/bin/wall":         {"Mode:  02755", "Group:     5"},
			"/home/appl/.profile":   {"User:  1000   Group:  1000"},
			"/dev/loop0":            {"Type: block", "Device major/minor number: 07:00"},
			"/dev/null":             {"Type: character special", "Device major/minor number: 01:03"},
			"/usr/bin/gunzip":       {"Links: 3"},
			"/tmp":                  {"Mode:  01777"},
			"/run/initctl":          {"Type: FIFO"},
			"/etc/os-release":       {"user.imgplan (7) = \"example\""},
			"/etc/motd":             {"mtime: 0x65920080"}, // clamped to the epoch (2024-01-01)
			"/usr/share/doc/README": {"mtime: 0x6553f100"}, // older: kept (2023-11-14)
		} {
			b, err := exec.Command("debugfs", "-R", "stat "+path, img).CombinedOutput()
			if err != nil {
				t.Fatalf("debugfs stat %s: %v", path, err)
			}
			for _, w := range want {
				if !strings.Contains(string(b), w) {
					t.Errorf("debugfs stat %s: no %q in\n%s", path, w, b)
				}
			}
		}
		mnt := mount(t, img, "ext4")
		compareTree(t, ref, mnt, "lost+found")
	})

	t.Run("squashfs", func(t *testing.T) {
		img := filepath.Join(out, "root.squashfs")
		b, err := exec.Command("unsquashfs", "-lln", img).Output()
		if err != nil {
			t.Fatal(err)
		}
		listing := squeeze(string(b))
		for _, w := range []string{
			"-rwsr-xr-x 0/0 18 2023-11-14 22:13 squashfs-root/usr/bin/su",
			"-rwxr-sr-x 0/5 20 2023-11-14 22:13 squashfs-root/usr/bin/wall",
			"crw-rw-rw- 0/0 1, 3 2023-11-14 22:13 squashfs-root/dev/null",
			"brw-rw---- 0/6 7, 0 2023-11-14 22:13 squashfs-root/dev/loop0",
			"squashfs-root/bin -> usr/bin",
			"-rw-r--r-- 1000/1000 10 2023-11-14 22:13 squashfs-root/home/appl/.profile",
			"prw------- 0/0 0 2023-11-14 22:13 squashfs-root/run/initctl",
			"-rw-r--r-- 0/0 24 2024-01-01 00:00 squashfs-root/etc/motd", // clamped
		} {
			if !strings.Contains(listing, w) {
				t.Errorf("unsquashfs -lln lacks %q", w)
			}
		}
		mnt := mount(t, img, "squashfs")
		compareTree(t, ref, mnt)
	})

	t.Run("tar", func(t *testing.T) {
		b, err := exec.Command("tar", "-tvf", filepath.Join(out, "rootfs.tar")).Output()
		if err != nil {
			t.Fatal(err)
		}
		listing := squeeze(string(b))
		for _, w := range []string{
			"-rwsr-xr-x 0/0 18 2023-11-14 22:13 ./usr/bin/su",
			"hrwxr-xr-x 0/0 0 2023-11-14 22:13 ./usr/bin/gzip link to ./usr/bin/gunzip", // the first name sorted
			"crw-rw-rw- 0/0 1,3 2023-11-14 22:13 ./dev/null",
		} {
			if !strings.Contains(listing, w) {
				t.Errorf("tar -tvf lacks %q", w)
			}
		}
		for _, name := range []string{"rootfs.tar", "rootfs.tar.zst"} {
			dir := t.TempDir()
			x := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-p", "-x", "-C", dir, "-f", filepath.Join(out, name))
			if b, err := x.CombinedOutput(); err != nil {
				t.Fatalf("extract %s: %v\n%s", name, err, b)
			}
			compareTree(t, ref, dir)
		}
	})

	t.Run("cpio", func(t *testing.T) {
		dir := t.TempDir()
		x := exec.Command("sh", "-c", "zcat \"$1\" | cpio -idm --quiet --no-absolute-filenames", "sh", filepath.Join(out, "rootfs.cpio.gz"))
		x.Dir = dir
		if b, err := x.CombinedOutput(); err != nil {
			t.Fatalf("cpio: %v\n%s", err, b)
		}
		// newc cannot carry extended attributes.
		compareTree(t, withoutXattrs(ref), dir)
	})
}

// mount mounts an image read-only through a loop device for the test.
func mount(t *testing.T, img, fstype string) string {
	t.Helper()
	mnt := t.TempDir()
	if b, err := exec.Command("mount", "-t", fstype, "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", img, err, b)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	if b, err := os.ReadFile(filepath.Join(mnt, "etc/motd")); err != nil || string(b) != "imgplan special example\n" {
		t.Errorf("reading /etc/motd back from the mounted %s: %q %v", fstype, b, err)
	}
	return mnt
}

// loadManifest reads a continuity manifest into path → canonical line.
func loadManifest(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := continuity.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return canonical(m)
}

func manifestOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	ctx, err := continuity.NewContext(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := continuity.BuildManifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return canonical(m)
}

func canonical(m *continuity.Manifest) map[string]string {
	out := map[string]string{}
	for _, r := range m.Resources {
		line := fmt.Sprintf("%o %d:%d", uint32(r.Mode()), r.UID(), r.GID())
		switch v := r.(type) {
		case continuity.RegularFile:
			line += fmt.Sprintf(" file %d %v", v.Size(), v.Digests())
		case continuity.SymLink:
			line += " -> " + v.Target()
		case continuity.Device:
			line += fmt.Sprintf(" dev %d:%d", v.Major(), v.Minor())
		}
		if x, ok := r.(continuity.XAttrer); ok {
			var names []string
			for k, val := range x.XAttrs() {
				names = append(names, k+"="+string(val))
			}
			sort.Strings(names)
			if len(names) > 0 {
				line += " xattrs " + strings.Join(names, ",")
			}
		}
		paths := []string{r.Path()}
		if hl, ok := r.(continuity.Hardlinkable); ok {
			paths = hl.Paths()
			line += fmt.Sprintf(" links %d", len(paths))
		}
		for _, p := range paths {
			out[strings.TrimPrefix(p, "/")] = line
		}
	}
	return out
}

func withoutXattrs(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if i := strings.Index(v, " xattrs "); i >= 0 {
			rest := v[i+len(" xattrs "):]
			j := strings.Index(rest, " links ")
			if j >= 0 {
				v = v[:i] + rest[j:]
			} else {
				v = v[:i]
			}
		}
		out[k] = v
	}
	return out
}

// compareTree checks the tree at dir has exactly the reference's entries.
func compareTree(t *testing.T, ref map[string]string, dir string, ignore ...string) {
	t.Helper()
	got := manifestOf(t, dir)
	for _, p := range ignore {
		for k := range got {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(got, k)
			}
		}
	}
	for p, want := range ref {
		if got[p] != want {
			t.Errorf("%s: %q, want %q", p, got[p], want)
		}
	}
	for p := range got {
		if _, ok := ref[p]; !ok {
			t.Errorf("%s: not in the tree", p)
		}
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// squeeze collapses runs of spaces, so listings compare whatever their
// column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

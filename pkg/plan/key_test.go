package plan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
)

// baseManifest touches every section, so that every stage kind has a node.
const baseManifest = `apiVersion: imgplan/v1
name: keys
epoch: 1700000000
bootstrap:
  distro: debian
  release: bookworm
  arch: amd64
  components: [main, contrib]
packages:
  install: [openssh-server, vim-tiny, cron]
  remove: [nano]
hostname: web1
timezone: Asia/Shanghai
files:
  - {src: conf/sshd_config, dest: /etc/ssh/sshd_config, mode: "0600"}
  - {dest: /etc/motd, content: "hello\n", owner: root}
  - {dest: /etc/localtime2, symlink: /usr/share/zoneinfo/UTC}
  - {tree: conf/rootfs}
  - {dest: /root/.ssh, directory: true, mode: "0700"}
  - {dest: /etc/security/limits.d/90-nproc.conf, remove: true}
fstab:
  remove: [/, swap]
  add:
    - {spec: LABEL=data, file: /data, type: ext4, pass: 2}
groups:
  - {name: web, gid: 1500}
users:
  - {name: appl, shell: /sbin/nologin, groups: [web]}
services:
  enable: [ssh]
  disable: [cron, rsync]
run:
  - {phase: post-files, script: conf/hook.sh}
layout:
  table: gpt
  size: 2GiB
  partitions:
    - {name: esp, size: 64MiB, type: esp, mount: /boot/efi}
    - {name: root, size: rest, mount: /}
outputs:
  - {type: ext4, path: root.img, size: 2500MiB}
  - {type: squashfs, compression: xz}
  - {type: tar, path: rootfs.tar.xz}
  - {type: qcow2}
`

// equivalent is the same manifest written differently: keys reordered,
// comments, an anchor and a merge key, other spellings of the same values.
const equivalent = `# The same image, spelled differently.
name: keys-renamed          # names never change a key
apiVersion: imgplan/v1
epoch: 1700000000
x-defaults: &nologin {shell: /sbin/nologin}
hostname: web1
bootstrap:
  arch: x86_64              # the RPM spelling of amd64
  components: [main, contrib]
  release: bookworm
  distro: debian
packages:
  remove: [nano]
  install: [cron, openssh-server, vim-tiny]   # order of packages is not observable
timezone: Asia/Shanghai
files:
  - dest: /etc/ssh/sshd_config
    mode: 0600              # unquoted octal
    src: conf/sshd_config
  - {content: "hello\n", dest: /etc/motd, owner: "0"}
  - {symlink: /usr/share/zoneinfo/UTC, dest: /etc/localtime2}
  - {tree: conf/rootfs, dest: /}
  - {dest: /root/.ssh, mode: 0o700, directory: true}
  - {remove: true, dest: /etc/security/limits.d/90-nproc.conf}
fstab:
  add:
    - {file: /data, spec: LABEL=data, options: defaults, type: ext4, pass: 2, dump: 0}
  remove: [swap, /]
groups:
  - {gid: 1500, name: web}
users:
  - {<<: *nologin, name: appl, groups: [web]}
services:
  disable: [rsync, cron]
  enable: [ssh]
run:
  - {script: conf/hook.sh, phase: post-files, chroot: true}
layout:
  size: 2048MiB
  table: gpt
  partitions:
    - {name: esp, size: 64M, type: esp, fs: vfat, mount: /boot/efi}
    - {name: root, size: rest, fs: ext4, mount: /, type: linux}
outputs:
  - {type: ext4, path: root.img, size: 2500M}
  - {type: squashfs, compression: xz, block_size: 128KiB}
  - {type: tar, path: rootfs.tar.xz, compression: xz}
  - {type: qcow2, path: disk.qcow2}
`

// workspace writes the manifest and its local files into a new directory.
func workspace(t *testing.T, manifests map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"conf/sshd_config":          "PermitRootLogin no\n",
		"conf/hook.sh":              "#!/bin/sh\necho hook\n",
		"conf/rootfs/etc/issue":     "Welcome\n",
		"conf/rootfs/usr/bin/hello": "#!/bin/sh\necho hello\n",
	}
	for k, v := range manifests {
		files[k] = v
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") || strings.Contains(name, "/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func compile(t *testing.T, path string, sets ...string) *plan.Plan {
	t.Helper()
	m, err := manifest.Load(path, manifest.WithOverrides(sets...))
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	p, err := plan.Compile(m)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return p
}

func keys(p *plan.Plan) map[string]digest.Digest {
	out := map[string]digest.Digest{}
	for _, n := range p.Nodes {
		out[n.ID] = n.Key
	}
	return out
}

// descendants returns id and every node built on it.
func descendants(p *plan.Plan, id string) map[string]bool {
	out := map[string]bool{id: true}
	for _, n := range p.Nodes { // topological order
		for _, parent := range n.Parents {
			if out[parent] {
				out[n.ID] = true
			}
		}
	}
	return out
}

// assertChangedFrom checks that exactly `from` and the nodes below it have
// new keys, and every other node kept its key.
func assertChangedFrom(t *testing.T, before, after *plan.Plan, from string) {
	t.Helper()
	if after.Node(from) == nil {
		t.Fatalf("no node %q in %v", from, keys(after))
	}
	below := descendants(after, from)
	kb := keys(before)
	for _, n := range after.Nodes {
		old, existed := kb[n.ID]
		switch {
		case below[n.ID] && existed && old == n.Key:
			t.Errorf("node %s kept its key after a change at %s", n.ID, from)
		case !below[n.ID] && old != n.Key:
			t.Errorf("node %s changed its key after a change at %s (not below it)", n.ID, from)
		}
	}
}

func TestEveryStageHasANode(t *testing.T) {
	dir := workspace(t, map[string]string{"m.yaml": baseManifest})
	p := compile(t, filepath.Join(dir, "m.yaml"))
	var ids []string
	for _, n := range p.Nodes {
		ids = append(ids, n.ID)
	}
	// The disk node comes right before the first disk output.
	want := "bootstrap packages system users files run:post-files fstab services finalize tree output:root.img output:root.squashfs output:rootfs.tar.xz disk output:disk.qcow2"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("nodes:\n got %s\nwant %s", got, want)
	}
}

func TestKeysIgnoreSpelling(t *testing.T) {
	dir := workspace(t, map[string]string{"a.yaml": baseManifest, "b.yaml": equivalent})
	a := compile(t, filepath.Join(dir, "a.yaml"))
	b := compile(t, filepath.Join(dir, "b.yaml"))
	ka, kb := keys(a), keys(b)
	if len(ka) != len(kb) {
		t.Fatalf("different node sets: %v vs %v", ka, kb)
	}
	for id, k := range ka {
		if kb[id] != k {
			t.Errorf("node %s: key %s vs %s", id, k.Short(), kb[id].Short())
		}
	}
}

func TestKeysIgnoreWhereTheCheckoutIs(t *testing.T) {
	d1 := workspace(t, map[string]string{"m.yaml": baseManifest})
	d2 := workspace(t, map[string]string{"m.yaml": baseManifest})
	a, b := keys(compile(t, filepath.Join(d1, "m.yaml"))), keys(compile(t, filepath.Join(d2, "m.yaml")))
	for id, k := range a {
		if b[id] != k {
			t.Errorf("node %s: key depends on the checkout directory", id)
		}
	}
}

// TestObservableChanges: each change a build could observe gives new keys
// to the node it belongs to and every node below, and to no other.
func TestObservableChanges(t *testing.T) {
	dir := workspace(t, map[string]string{"m.yaml": baseManifest})
	path := filepath.Join(dir, "m.yaml")
	before := compile(t, path)
	cases := []struct {
		name string
		sets []string
		file string // a local file to append one byte to
		from string
	}{
		{"release", []string{"bootstrap.release=trixie"}, "", "bootstrap"},
		{"mirror", []string{"bootstrap.mirror=http://127.0.0.1:9/debian"}, "", "bootstrap"},
		{"component order is written to sources.list", []string{"bootstrap.components=[contrib, main]"}, "", "bootstrap"},
		{"package added", []string{"packages.install+=htop"}, "", "packages"},
		{"hostname", []string{"hostname=web2"}, "", "system"},
		{"one byte of an overlaid file", nil, "conf/sshd_config", "files"},
		{"one byte of a file in a tree", nil, "conf/rootfs/etc/issue", "files"},
		{"file mode", []string{"files[0].mode=0640"}, "", "files"},
		{"owner", []string{"files[1].owner=appl"}, "", "files"},
		{"hook script", nil, "conf/hook.sh", "run:post-files"},
		{"fstab", []string{"fstab.add[0].pass=1"}, "", "fstab"},
		{"user shell", []string{"users[0].shell=/bin/bash"}, "", "users"},
		{"group id", []string{"groups[0].gid=1501"}, "", "users"},
		{"service", []string{"services.enable+=nginx"}, "", "services"},
		{"ext4 size", []string{"outputs[0].size=3GiB"}, "", "output:root.img"},
		{"squashfs block size", []string{"outputs[1].block_size=256KiB"}, "", "output:root.squashfs"},
		{"partition size", []string{"layout.partitions[0].size=100MiB"}, "", "disk"},
		{"qcow2 compression", []string{"outputs[3].compress=true"}, "", "output:disk.qcow2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file != "" {
				p := filepath.Join(dir, tc.file)
				orig, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				defer os.WriteFile(p, orig, 0o644) //nolint:errcheck // restored for the next case
				if err := os.WriteFile(p, append(orig, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			after := compile(t, path, tc.sets...)
			assertChangedFrom(t, before, after, tc.from)
		})
	}
	t.Run("epoch", func(t *testing.T) {
		// Every build step sees SOURCE_DATE_EPOCH (dpkg, useradd, the
		// outputs' timestamps): every key changes.
		after := compile(t, path, "epoch=1700000001")
		for _, n := range after.Nodes {
			if n.Key == before.Node(n.ID).Key {
				t.Errorf("node %s kept its key after an epoch change", n.ID)
			}
		}
	})
}

// TestUnobservableChanges: names, output paths and comments keep every key.
func TestUnobservableChanges(t *testing.T) {
	dir := workspace(t, map[string]string{"m.yaml": baseManifest})
	path := filepath.Join(dir, "m.yaml")
	before := keys(compile(t, path))
	after := compile(t, path, "name=renamed", "outputs[1].path=other.squashfs", "description=hello")
	for _, n := range after.Nodes {
		id := strings.Replace(n.ID, "other.squashfs", "root.squashfs", 1)
		if before[id] != n.Key {
			t.Errorf("node %s changed its key", n.ID)
		}
	}
}

// TestVariantsSharePrefix: two variants of one base share every key up to
// the first node where they differ.
func TestVariantsSharePrefix(t *testing.T) {
	dir := workspace(t, map[string]string{
		"base.yaml": baseManifest,
		"web.yaml": `apiVersion: imgplan/v1
name: web
extends: base.yaml
files:
  - {dest: /etc/motd, content: "web\n"}
`,
		"db.yaml": `apiVersion: imgplan/v1
name: db
extends: base.yaml
packages:
  install: [postgresql]
`,
	})
	base := compile(t, filepath.Join(dir, "base.yaml"))
	web := compile(t, filepath.Join(dir, "web.yaml"))
	db := compile(t, filepath.Join(dir, "db.yaml"))
	assertChangedFrom(t, base, web, "files")
	assertChangedFrom(t, base, db, "packages")
	assertChangedFrom(t, web, db, "packages")
}

package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	iexec "github.com/imgplan/imgplan/pkg/exec"
)

// TestDiskFull: a store on a small filesystem. The apply fails with a
// clear "no space" error naming the stage, leaves no partial object, no
// scratch area and no mount, and succeeds once space is freed, reusing
// what was committed before.
func TestDiskFull(t *testing.T) {
	fsDir := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "imgplan-e2e-full", fsDir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", fsDir).Run() })
	small := filepath.Join(fsDir, "store")

	dir := copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	big := make([]byte, 40<<20) // random: no filesystem makes it smaller
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "full.yaml")
	write(t, m, "apiVersion: imgplan/v1\nname: e2e-full\nextends: tiny.yaml\nfiles:\n  - {dest: /big.bin, src: big.bin}\n")
	out := t.TempDir()
	outputs := "outputs=[{type: tar, path: rootfs.tar}]"

	r := imgplanStore(t, small, "apply", m, "--out", out, "--set", outputs)
	if r.code != 1 {
		t.Fatalf("apply on a full store: exit %d, want 1\n%s", r.code, r.err)
	}
	t.Logf("the full store:\n%s", r.err)
	if !strings.Contains(r.err, "no space left on device") || !strings.Contains(r.err, "files") {
		t.Errorf("the error does not say no space in the files stage:\n%s", r.err)
	}
	if m := mountsUnder(small); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if left, _ := os.ReadDir(filepath.Join(small, "v1/tmp")); len(left) != 0 {
		t.Errorf("scratch areas left: %v", left)
	}
	verifyStore(t, small)

	if b, err := exec.Command("mount", "-o", "remount,size=256m", fsDir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, b)
	}
	rep := applyStore(t, small, m, out, "--set", outputs)
	st := statuses(rep)
	if st["bootstrap"] != "cached" || st["files"] != "built" {
		t.Errorf("after freeing space: bootstrap %s, files %s; want cached, built", st["bootstrap"], st["files"])
	}
	if !tarHas(t, filepath.Join(out, "rootfs.tar"), "big.bin", int64(len(big))) {
		t.Error("big.bin is not in the tar with its size")
	}
}

// TestSecretsStayOut: a password_file's hash is in the image's /etc/shadow
// and nowhere else: not in the plan, the progress output, the build logs,
// the store's metadata and records, the report, or any other file of the
// layers and outputs.
func TestSecretsStayOut(t *testing.T) {
	salt := make([]byte, 8)
	rand.Read(salt)
	secret := "$6$" + hex.EncodeToString(salt) + "$imgplanSecretHash" + hex.EncodeToString(salt) + strings.Repeat("Q", 40)
	dir := variants(t, "users:\n  - {name: secretuser, shell: /bin/sh, password_file: secret.hash}\n", "sec")
	write(t, filepath.Join(dir, "secret.hash"), secret+"\n")
	m := filepath.Join(dir, "sec.yaml")

	plan := imgplan(t, "", "plan", m, "--format", "json")
	if plan.code != 0 {
		t.Fatalf("plan: exit %d\n%s", plan.code, plan.err)
	}
	if strings.Contains(plan.out, secret) {
		t.Error("the hash is in the plan's JSON")
	}
	out := t.TempDir()
	r := imgplan(t, out, "apply", m, "-v")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.err)
	}
	if strings.Contains(r.out+r.err, secret) {
		t.Error("the hash is in apply's output")
	}

	// The store: metadata, records, logs of this plan's nodes, and every
	// file of their payloads but /etc/shadow.
	s, err := iexec.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	inShadow := false
	for _, n := range r.report.Nodes {
		obj, err := s.Get(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		objDir := filepath.Dir(obj.Data())
		if strings.HasPrefix(n.ID, "output:") {
			// An artifact holds the image's /etc/shadow: its members are
			// checked below, in the copy delivered to the output directory.
			objDir = filepath.Join(objDir, "meta.json")
		}
		for _, p := range grepTree(t, objDir, secret) {
			rel, _ := filepath.Rel(obj.Data(), p)
			if rel == "etc/shadow" {
				inShadow = true
				continue
			}
			t.Errorf("the hash is in %s's object: %s", n.ID, p)
		}
	}
	if !inShadow {
		t.Error("the hash is in no layer's /etc/shadow")
	}
	for _, d := range []string{"v1/logs", "v1/records"} {
		for _, p := range grepTree(t, filepath.Join(store, d), secret) {
			t.Errorf("the hash is in %s", p)
		}
	}
	// The outputs: the report, and the tar's members other than etc/shadow.
	for _, p := range grepTree(t, out, secret) {
		if filepath.Base(p) != "rootfs.tar" {
			t.Errorf("the hash is in %s", p)
		}
	}
	f, err := os.Open(filepath.Join(out, "rootfs.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if bytes.Contains(b, []byte(secret)) || strings.Contains(fmt.Sprint(h.PAXRecords), secret) {
			if strings.TrimPrefix(h.Name, "./") == "etc/shadow" {
				found = true
				if !bytes.Contains(b, []byte("secretuser:"+secret+":")) {
					t.Error("/etc/shadow does not give secretuser the hash")
				}
			} else {
				t.Errorf("the hash is in the tar's %s", h.Name)
			}
		}
	}
	if !found {
		t.Error("the hash is not in the image's /etc/shadow")
	}
}

// TestFourConcurrentVariants: four applies of four variants of a new base,
// started together on one store: every shared node is built exactly once,
// all four succeed, and each output holds its own variant.
func TestFourConcurrentVariants(t *testing.T) {
	names := []string{"ca", "cb", "cc", "cd"}
	dir := variants(t, fmt.Sprintf("epoch: %d\n", time.Now().UnixNano()%1e9), names...)
	var wg sync.WaitGroup
	reps := make([]*iexec.Report, len(names))
	outs := make([]string, len(names))
	for i, n := range names {
		outs[i] = t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i] = apply(t, filepath.Join(dir, n+".yaml"), outs[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range []string{"bootstrap", "packages", "system", "users"} {
		built := 0
		for _, r := range reps {
			if statuses(r)[id] == "built" {
				built++
			}
		}
		if built != 1 {
			t.Errorf("%s built %d times, want once", id, built)
		}
	}
	for i, n := range names {
		if s := statuses(reps[i])["output:rootfs.tar"]; s != "built" {
			t.Errorf("variant %s: output %s", n, s)
		}
		b := tarFile(t, filepath.Join(outs[i], "rootfs.tar"), "etc/variant")
		if !strings.HasPrefix(string(b), n+" ") {
			t.Errorf("variant %s: /etc/variant is %q", n, b)
		}
	}
}

// applyStore is apply with another store.
func applyStore(t *testing.T, storeDir, manifest, out string, extra ...string) *iexec.Report {
	t.Helper()
	r := imgplanStore(t, storeDir, append([]string{"apply", manifest, "--out", out}, extra...)...)
	if r.code != 0 {
		t.Fatalf("imgplan apply %s: exit %d\n%s", manifest, r.code, r.err)
	}
	return r.report
}

// verifyStore runs imgplan cache verify on a store: every object's payload
// must have the content digest recorded at commit.
func verifyStore(t *testing.T, storeDir string) {
	t.Helper()
	r := imgplanStore(t, storeDir, "cache", "verify", "--cache-dir", storeDir)
	if r.code != 0 || !strings.Contains(r.out+r.err, " 0 altered") {
		t.Fatalf("imgplan cache verify: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// grepTree lists the regular files under dir that contain s.
func grepTree(t *testing.T, dir, s string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}

// tarFile returns the content of a member of a tar file.
func tarFile(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s: no member %s", path, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}

// tarHas reports whether a tar file has a regular member of that size.
func tarHas(t *testing.T, path, name string, size int64) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return h.Typeflag == tar.TypeReg && h.Size == size
		}
	}
}

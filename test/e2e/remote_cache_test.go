package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	iexec "github.com/imgplan/imgplan/pkg/exec"
)

const registryBin = "/usr/bin/docker-registry"

// startRegistry runs Debian's docker-registry (distribution v2) on a free
// loopback port with its storage in a temporary directory, and returns
// its address and storage directory. extra is added to its configuration.
func startRegistry(t *testing.T, extra string) (addr, storage string) {
	t.Helper()
	if _, err := os.Stat(registryBin); err != nil {
		if testing.Short() {
			t.Skipf("needs %s (Debian package docker-registry; scripts/deps.sh installs it)", registryBin)
		}
		t.Fatalf("needs %s: install the Debian package docker-registry (scripts/deps.sh)", registryBin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	dir := t.TempDir()
	storage = filepath.Join(dir, "storage")
	config := filepath.Join(dir, "config.yml")
	write(t, config, fmt.Sprintf(`version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http:
  addr: %s
%s`, storage, addr, extra))
	cmd := exec.Command(registryBin, "serve", config)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return addr, storage
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("registry did not come up on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tinyVariants writes two variants of examples/tiny.yaml that share its
// bootstrap, system and files stages and differ from fstab on.
func tinyVariants(t *testing.T) (dir string) {
	t.Helper()
	dir = copyExample(t, "examples/tiny.yaml", "examples/tiny-rootfs", "examples/files")
	for _, v := range []string{"v1", "v2"} {
		write(t, filepath.Join(dir, v+".yaml"), fmt.Sprintf(`apiVersion: imgplan/v1
name: e2e-remote-%s
extends: tiny.yaml
fstab:
  add:
    - {spec: LABEL=%s, file: /srv/%s, type: ext4, options: defaults, pass: 2}
`, v, v, v))
	}
	return dir
}

// applyIn runs imgplan apply with its own store and fails unless it
// succeeds.
func applyIn(t *testing.T, storeDir, manifest, out string, extra ...string) result {
	t.Helper()
	start := time.Now()
	r := imgplanStore(t, storeDir, append([]string{"apply", manifest, "--out", out}, extra...)...)
	if r.code != 0 {
		t.Fatalf("apply %s: exit %d\n%s", filepath.Base(manifest), r.code, r.err)
	}
	t.Logf("apply %s (%s) in %.1fs:\n%s", filepath.Base(manifest), strings.Join(extra, " "), time.Since(start).Seconds(), r.err)
	return r
}

func keysOfReport(r *iexec.Report) map[string]bool {
	out := map[string]bool{}
	for _, n := range r.Nodes {
		out[string(n.Key)] = true
	}
	return out
}

// assertSameOutputs compares every output file of two reports' directories
// byte for byte.
func assertSameOutputs(t *testing.T, r *iexec.Report, a, b string) {
	t.Helper()
	n := 0
	for _, o := range r.Outputs {
		fi, err := os.Stat(filepath.Join(a, o.Path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.IsDir() {
			continue
		}
		assertSameBytes(t, a, b, o.Path)
		n++
	}
	if n == 0 {
		t.Fatal("no output files compared")
	}
}

// TestRemoteCacheThroughRegistry: host A builds variant 1 and pushes it to
// a real registry; host B, with an empty store, applies variant 2 with
// --cache-from and builds none of the stages the variants share; B's
// outputs equal a from-scratch build of variant 2 bit for bit. Then a
// corrupted layer blob in the registry is detected on pull and its stage
// is built locally with a warning.
func TestRemoteCacheThroughRegistry(t *testing.T) {
	addr, storage := startRegistry(t, "")
	ref := "http://" + addr + "/imgplan/cache"
	dir := tinyVariants(t)
	hostA, hostB, scratch := t.TempDir(), t.TempDir(), t.TempDir()

	a := applyIn(t, hostA, filepath.Join(dir, "v1.yaml"), t.TempDir(), "--cache-to", ref)
	if a.report.Pushed != len(a.report.Nodes) {
		t.Fatalf("host A pushed %d objects, want all %d", a.report.Pushed, len(a.report.Nodes))
	}
	shared := keysOfReport(a.report)

	outB := t.TempDir()
	b := applyIn(t, hostB, filepath.Join(dir, "v2.yaml"), outB, "--cache-from", ref)
	pulled := 0
	for _, n := range b.report.Nodes {
		switch {
		case shared[string(n.Key)] && n.Status != "pulled":
			t.Errorf("host B: shared stage %s was %s, want pulled", n.ID, n.Status)
		case shared[string(n.Key)]:
			pulled++
		case n.Status != "built":
			t.Errorf("host B: its own stage %s was %s, want built", n.ID, n.Status)
		}
	}
	for _, id := range []string{"bootstrap", "system", "files"} {
		if nr := b.report.Node(id); nr == nil || nr.Status != "pulled" {
			t.Errorf("host B: base stage %s not pulled: %+v", id, nr)
		}
	}
	if pulled != b.report.Pulled || pulled < 3 || len(b.report.Warnings) > 0 {
		t.Errorf("host B: %d shared stages pulled, report says %d; warnings %q", pulled, b.report.Pulled, b.report.Warnings)
	}

	outScratch := t.TempDir()
	c := applyIn(t, scratch, filepath.Join(dir, "v2.yaml"), outScratch)
	if c.report.Built != len(c.report.Nodes) {
		t.Fatalf("the from-scratch build built %d of %d nodes", c.report.Built, len(c.report.Nodes))
	}
	assertSameOutputs(t, c.report, outB, outScratch)

	// Corrupt the bootstrap's layer blob where the registry keeps it.
	boot := a.report.Node("bootstrap")
	blob := registryLayerBlob(t, addr, storage, "imgplan/cache", boot.Key.Hex())
	corruptMiddle(t, blob)
	hostD := t.TempDir()
	outD := t.TempDir()
	d := applyIn(t, hostD, filepath.Join(dir, "v2.yaml"), outD, "--cache-from", ref)
	if nr := d.report.Node("bootstrap"); nr.Status != "built" {
		t.Errorf("corrupt bootstrap blob: bootstrap was %s, want built", nr.Status)
	}
	if len(d.report.Warnings) != 1 || !strings.Contains(d.report.Warnings[0], "bootstrap") || !strings.Contains(d.report.Warnings[0], "corrupt") {
		t.Errorf("want one warning about the corrupt bootstrap, got %q", d.report.Warnings)
	}
	if !strings.Contains(d.err, "WARN") || !strings.Contains(d.err, "corrupt") {
		t.Errorf("no warning on stderr:\n%s", d.err)
	}
	// The stages above it are still taken from the registry.
	if nr := d.report.Node("system"); nr.Status != "pulled" {
		t.Errorf("after the corrupt bootstrap, system was %s, want pulled", nr.Status)
	}
	assertSameOutputs(t, c.report, outD, outScratch)
	assertNoLeftovers(t, hostB, hostD)
}

// registryLayerBlob returns the file where the registry stores the layer
// blob of the artifact tagged tag.
func registryLayerBlob(t *testing.T, addr, storage, repoName, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repoName+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest of %s: %v %+v", tag, err, m)
	}
	if m.ArtifactType != iexec.ArtifactType || m.Layers[0].MediaType != iexec.LayerMediaType {
		t.Errorf("artifact %s: type %q, layer %q", tag, m.ArtifactType, m.Layers[0].MediaType)
	}
	hex := strings.TrimPrefix(m.Layers[0].Digest, "sha256:")
	p := filepath.Join(storage, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func corruptMiddle(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertNoLeftovers: no scratch areas, no mounts under the stores.
func assertNoLeftovers(t *testing.T, stores ...string) {
	t.Helper()
	for _, s := range stores {
		if m := mountsUnder(s); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", s, m)
		}
		tmp, _ := os.ReadDir(filepath.Join(s, "v1/tmp"))
		for _, e := range tmp {
			t.Errorf("left in %s/v1/tmp: %s", s, e.Name())
		}
	}
}

// TestCacheVerifyExportImport: an object altered in the store is found by
// `cache verify`, quarantined, and rebuilt by the next apply; a store
// exported to a file and imported into an empty store serves a whole
// apply from it.
func TestCacheVerifyExportImport(t *testing.T) {
	dir := tinyVariants(t)
	m := filepath.Join(dir, "v1.yaml")
	st := t.TempDir()
	a := applyIn(t, st, m, t.TempDir())

	files := a.report.Node("files")
	motd := filepath.Join(st, "v1/objects", files.Key.Hex(), "data/etc/motd")
	write(t, motd, "tampered\n")
	v := imgplanStore(t, st, "cache", "verify", "--cache-dir", st)
	if v.code != 1 || !strings.Contains(v.out, "ALTERED") || !strings.Contains(v.out, files.Key.Short()) || strings.Count(v.out, "ALTERED") != 1 {
		t.Fatalf("cache verify: exit %d, want 1 naming %s only\n%s%s", v.code, files.Key.Short(), v.out, v.err)
	}
	b := applyIn(t, st, m, t.TempDir())
	if nr := b.report.Node("files"); nr.Status != "built" {
		t.Errorf("after verify, files was %s, want built", nr.Status)
	}
	if nr := b.report.Node("fstab"); nr.Status != "cached" {
		t.Errorf("after verify, fstab was %s, want cached", nr.Status)
	}
	if v := imgplanStore(t, st, "cache", "verify", "--cache-dir", st); v.code != 0 {
		t.Errorf("second verify: exit %d\n%s%s", v.code, v.out, v.err)
	}

	archive := filepath.Join(t.TempDir(), "cache.tar")
	if r := imgplanStore(t, st, "cache", "export", archive, "--cache-dir", st); r.code != 0 {
		t.Fatalf("export: exit %d\n%s", r.code, r.err)
	}
	other := t.TempDir()
	r := imgplanStore(t, other, "cache", "import", archive, "--cache-dir", other)
	if r.code != 0 || !strings.Contains(r.err, fmt.Sprintf("imported %d objects", len(b.report.Nodes))) {
		t.Fatalf("import: exit %d\n%s", r.code, r.err)
	}
	c := applyIn(t, other, m, t.TempDir())
	if c.report.Built != 0 {
		t.Errorf("after import, apply built %d nodes, want 0", c.report.Built)
	}
	ls := imgplanStore(t, other, "cache", "ls", "--cache-dir", other)
	if ls.code != 0 || !strings.Contains(ls.out, "e2e-remote-v1") || !strings.Contains(ls.out, files.Key.Short()) {
		t.Errorf("cache ls: exit %d\n%s%s", ls.code, ls.out, ls.err)
	}
}

// TestRemoteCacheAuth: a registry that wants a password. Without
// credentials the push fails with a warning and the build still
// succeeds; with them in a docker config file (DOCKER_CONFIG), host A
// pushes and host B pulls.
func TestRemoteCacheAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "htpasswd"), "builder:"+string(hash)+"\n")
	addr, _ := startRegistry(t, fmt.Sprintf("auth:\n  htpasswd: {realm: imgplan, path: %s}\n", filepath.Join(dir, "htpasswd")))
	ref := "http://" + addr + "/team/cache"
	m := filepath.Join(tinyVariants(t), "v1.yaml")

	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "nobody"))
	a := applyIn(t, t.TempDir(), m, t.TempDir(), "--cache-to", ref)
	if a.report.Pushed != 0 || len(a.report.Warnings) != 1 || !strings.Contains(a.report.Warnings[0], "credential") {
		t.Fatalf("without credentials: pushed %d, warnings %q", a.report.Pushed, a.report.Warnings)
	}

	conf := filepath.Join(dir, "docker")
	write(t, filepath.Join(conf, "config.json"), fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
		addr, base64.StdEncoding.EncodeToString([]byte("builder:s3cret"))))
	t.Setenv("DOCKER_CONFIG", conf)
	a = applyIn(t, t.TempDir(), m, t.TempDir(), "--cache-to", ref)
	if a.report.Pushed != len(a.report.Nodes) || len(a.report.Warnings) > 0 {
		t.Fatalf("with credentials: pushed %d of %d, warnings %q", a.report.Pushed, len(a.report.Nodes), a.report.Warnings)
	}
	b := applyIn(t, t.TempDir(), m, t.TempDir(), "--cache-from", ref)
	if b.report.Pulled != len(b.report.Nodes) {
		t.Errorf("with credentials: host B pulled %d of %d", b.report.Pulled, len(b.report.Nodes))
	}

	// Without them, a pull fails once, with one warning, and everything
	// is built.
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "nobody"))
	c := applyIn(t, t.TempDir(), m, t.TempDir(), "--cache-from", ref)
	if c.report.Built != len(c.report.Nodes) || len(c.report.Warnings) != 1 {
		t.Errorf("pull without credentials: built %d of %d, warnings %q", c.report.Built, len(c.report.Nodes), c.report.Warnings)
	}
}

// TestRemoteCacheDebian: the Debian base (bootstrap, packages: hardlinks,
// whiteouts, opaque directories, capabilities) pushed from the shared
// store and pulled into an empty one gives a variant whose tar is
// identical, byte for byte, to the same variant built on the store where
// the base was built.
func TestRemoteCacheDebian(t *testing.T) {
	addr, _ := startRegistry(t, "")
	ref := "http://" + addr + "/imgplan/debian"
	dir := variants(t, "", "ra", "rb")
	a := apply(t, filepath.Join(dir, "ra.yaml"), t.TempDir(), "--cache-to", ref)
	if a.Pushed != len(a.Nodes) {
		t.Fatalf("host A pushed %d of %d; warnings %q", a.Pushed, len(a.Nodes), a.Warnings)
	}
	outB := t.TempDir()
	b := applyIn(t, t.TempDir(), filepath.Join(dir, "rb.yaml"), outB, "--cache-from", ref)
	for _, id := range []string{"bootstrap", "packages"} {
		if nr := b.report.Node(id); nr == nil || nr.Status != "pulled" {
			t.Errorf("host B: %s not pulled: %+v", id, nr)
		}
	}
	if len(b.report.Warnings) > 0 {
		t.Errorf("host B: warnings %q", b.report.Warnings)
	}
	outLocal := t.TempDir()
	local := apply(t, filepath.Join(dir, "rb.yaml"), outLocal)
	assertSameOutputs(t, local, outB, outLocal)
}

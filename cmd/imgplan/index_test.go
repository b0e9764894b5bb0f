package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imgplan/imgplan/pkg/plan"
)

// TestIndexDigestsInKeys: plan fetches each repository's InRelease (here
// from a loopback server); an archive update changes the keys of the
// bootstrap and packages and of everything after them; --offline uses the
// digest last fetched and says so.
func TestIndexDigestsInKeys(t *testing.T) {
	var release atomic.Value
	release.Store("Origin: Test\nSuite: bookworm\nDate: 1\n")
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debian/dists/bookworm/InRelease" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		fmt.Fprint(w, release.Load())
	}))
	defer srv.Close()

	dir := t.TempDir()
	manifest := filepath.Join(dir, "m.yaml")
	os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: imgplan/v1
name: index-test
bootstrap: {distro: debian, release: bookworm, mirror: %s/debian}
packages: {install: [less]}
hostname: x
outputs: [{type: tar}]
`, srv.URL)), 0o644)
	cache := t.TempDir()
	planJSON := func(extra ...string) *plan.Plan {
		t.Helper()
		out, errOut, code := runCLI(t, append([]string{"plan", manifest, "--format", "json", "--cache-dir", cache}, extra...)...)
		if code != 0 {
			t.Fatalf("plan: exit %d: %s", code, errOut)
		}
		var p plan.Plan
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	p1 := planJSON()
	if fetches.Load() == 0 {
		t.Fatal("the index was not fetched")
	}
	for _, id := range []string{"bootstrap", "packages"} {
		found := false
		for _, in := range p1.Node(id).Inputs {
			found = found || in.Role == "index "+srv.URL+"/debian/dists/bookworm/InRelease"
		}
		if !found {
			t.Errorf("%s has no index input: %+v", id, p1.Node(id).Inputs)
		}
	}

	release.Store("Origin: Test\nSuite: bookworm\nDate: 2\n") // the archive moved on
	p2 := planJSON()
	for _, n := range p2.Nodes {
		if n.Key == p1.Node(n.ID).Key {
			t.Errorf("%s kept its key after the archive changed", n.ID)
		}
	}

	before := fetches.Load()
	p3 := planJSON("--offline")
	if fetches.Load() != before {
		t.Error("--offline fetched the index")
	}
	for _, n := range p3.Nodes {
		if n.Key != p2.Node(n.ID).Key {
			t.Errorf("offline, %s has another key than the last online plan", n.ID)
		}
	}
	if !strings.Contains(strings.Join(p3.Notes, "\n"), "offline") {
		t.Errorf("the offline plan does not say so: %q", p3.Notes)
	}
}

package stages

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/continuity"
	pb "github.com/containerd/continuity/proto"
	"google.golang.org/protobuf/proto"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// Tree is the finished tree that outputs read: its object holds the
// package list (packages.json) and the content manifest (content.pb, a
// continuity manifest) of the merged layers, which outputs place beside
// themselves and diffs compare.
var Tree = register(&Kind{Name: KindTree, Version: 1, Describe: describeTree, Build: buildTree})

// TreeParams is empty: a tree is defined by its parent.
type TreeParams struct{}

func describeTree(*manifest.Manifest, *Context) (*Description, error) {
	return &Description{Params: &TreeParams{}, Summary: "merged tree, content and package manifests"}, nil
}

// Files a tree object holds.
const (
	PackagesFile = "packages.json"
	ContentFile  = "content.pb"
)

// PackageList is the installed packages of an image.
type PackageList struct {
	Format   string    `json:"format"`
	Manager  string    `json:"manager"` // dpkg, rpm, or none
	Packages []Package `json:"packages"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

func buildTree(ctx context.Context, env Env, _ json.RawMessage) error {
	pl, err := installedPackages(ctx, env)
	if err != nil {
		return fmt.Errorf("package list: %w", err)
	}
	b, err := json.MarshalIndent(pl, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(env.Out(), PackagesFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	cctx, err := continuity.NewContext(env.Root().Dir())
	if err != nil {
		return err
	}
	m, err := continuity.BuildManifest(cctx)
	if err != nil {
		return fmt.Errorf("content manifest: %w", err)
	}
	pb, err := marshalManifest(m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(env.Out(), ContentFile), pb, 0o644)
}

// marshalManifest encodes a continuity manifest deterministically:
// continuity.Marshal leaves protobuf's map order (xattrs) random.
func marshalManifest(m *continuity.Manifest) ([]byte, error) {
	b, err := continuity.Marshal(m)
	if err != nil {
		return nil, err
	}
	var pm pb.Manifest
	if err := proto.Unmarshal(b, &pm); err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(&pm)
}

func installedPackages(ctx context.Context, env Env) (*PackageList, error) {
	r := env.Root()
	pl := &PackageList{Format: "imgplan.packages.v1", Manager: "none", Packages: []Package{}}
	status, err := r.ReadFile("/var/lib/dpkg/status")
	switch {
	case err == nil:
		pl.Manager = "dpkg"
		pl.Packages = parseDpkgStatus(status)
		return pl, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if firstExisting(r, "/var/lib/rpm") != "" {
		var out bytes.Buffer
		err := env.RunHost(ctx, []string{"rpm", "--root", r.Dir(), "--dbpath", "/var/lib/rpm", "-qa", "--qf", `%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n`}, RunOptions{Stdout: &out})
		if err != nil {
			return nil, err
		}
		pl.Manager = "rpm"
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			f := strings.Split(l, "\t")
			if len(f) == 3 {
				pl.Packages = append(pl.Packages, Package{Name: f[0], Version: strings.TrimPrefix(f[1], "0:"), Arch: f[2]})
			}
		}
		sortPackages(pl.Packages)
	}
	return pl, nil
}

// ParseDpkgStatus lists the installed packages of a dpkg status file.
func ParseDpkgStatus(b []byte) []Package { return parseDpkgStatus(b) }

// parseDpkgStatus lists the installed packages of a dpkg status file.
func parseDpkgStatus(b []byte) []Package {
	out := []Package{}
	var cur Package
	installed := false
	flush := func() {
		if cur.Name != "" && installed {
			out = append(out, cur)
		}
		cur, installed = Package{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Arch = v
		case "Status":
			installed = strings.HasSuffix(v, " installed")
		}
	}
	flush()
	sortPackages(out)
	return out
}

func sortPackages(p []Package) {
	sort.Slice(p, func(i, j int) bool {
		if p[i].Name != p[j].Name {
			return p[i].Name < p[j].Name
		}
		return p[i].Arch < p[j].Arch
	})
}

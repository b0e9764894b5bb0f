package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/plan"
)

const (
	variants  = 50
	baseFiles = 200
)

// writeVariants writes a base manifest overlaying baseFiles config files
// and `variants` manifests extending it, each with its own package, file
// and hostname. It returns the variants' paths.
func writeVariants(b *testing.B) []string {
	b.Helper()
	dir := b.TempDir()
	base := "apiVersion: imgplan/v1\nname: base\nbootstrap: {distro: debian, release: bookworm, arch: amd64}\n" +
		"packages:\n  install: [openssh-server, vim-tiny, cron]\nfiles:\n"
	for i := 0; i < baseFiles; i++ {
		name := fmt.Sprintf("conf/base/file%03d.conf", i)
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		content := fmt.Sprintf("# config %d\nkey%d = %d\n%0512d\n", i, i, i*i, i)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		base += fmt.Sprintf("  - {src: %s, dest: /etc/app/file%03d.conf, mode: \"0640\"}\n", name, i)
	}
	base += "outputs:\n  - {type: tar, path: rootfs.tar.zst}\n  - {type: ext4, size: 2GiB}\n"
	if err := os.WriteFile(filepath.Join(dir, "base.yaml"), []byte(base), 0o644); err != nil {
		b.Fatal(err)
	}
	var paths []string
	for v := 0; v < variants; v++ {
		m := fmt.Sprintf("apiVersion: imgplan/v1\nname: variant%02d\nextends: base.yaml\nhostname: host%02d\n"+
			"packages:\n  install: [pkg%02d]\nfiles:\n  - {dest: /etc/motd, content: \"variant %d\\n\"}\n", v, v, v, v)
		p := filepath.Join(dir, fmt.Sprintf("variant%02d.yaml", v))
		if err := os.WriteFile(p, []byte(m), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func planAll(b *testing.B, paths []string, files func() *digest.Files) {
	for _, p := range paths {
		m, err := manifest.Load(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := plan.Compile(m, plan.WithFiles(files())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan50Variants plans 50 variants of a base with 200 overlaid
// files; one op is all 50 (target: under 1s). "shared" keeps one digest
// cache across variants, as one imgplan process planning them does;
// "cold" starts every variant with an empty cache, as 50 separate
// invocations would.
func BenchmarkPlan50Variants(b *testing.B) {
	paths := writeVariants(b)
	b.Run("shared", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			shared := digest.NewFiles()
			planAll(b, paths, func() *digest.Files { return shared })
		}
	})
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			planAll(b, paths, digest.NewFiles)
		}
	})
}

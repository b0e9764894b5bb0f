package stages

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// debBootstrap runs mmdebstrap into the empty tree, with the store's
// shared .deb and index list caches staged for this build and bound over
// /var/cache/apt/archives and /var/lib/apt/lists while apt runs.
func debBootstrap(ctx context.Context, env Env, p *BootstrapParams) error {
	r := env.Root()
	debs, lists, err := aptCaches(env, p.Distro, p.Arch.Deb())
	if err != nil {
		return err
	}
	argv := []string{
		"mmdebstrap", "--mode=root", "--format=directory",
		"--variant=" + p.Variant,
		"--arch=" + p.Arch.Deb(),
		"--components=" + strings.Join(p.Components, ","),
		// Keep every .deb, the essential ones included, for the cache.
		"--skip=download/empty", "--skip=essential/unlink",
	}
	// The caches are bound before apt first runs and unbound before
	// mmdebstrap cleans up, so the image keeps neither.
	for _, c := range []struct{ dir, at string }{{debs, "/var/cache/apt/archives"}, {lists, "/var/lib/apt/lists"}} {
		argv = append(argv,
			"--setup-hook=mkdir -p \"$1"+c.at+"\" && mount --bind "+shellQuote(c.dir)+" \"$1"+c.at+"\"",
			"--customize-hook=umount \"$1"+c.at+"\"")
	}
	if len(p.Packages) > 0 {
		argv = append(argv, "--include="+strings.Join(p.Packages, ","))
	}
	for _, in := range bootstrapKeys(p) {
		path, err := env.Input(in)
		if err != nil {
			return err
		}
		argv = append(argv, "--keyring="+path)
	}
	argv = append(argv, p.Release, r.Dir())
	for _, s := range p.Sources {
		argv = append(argv, s.Line(p.Arch.Deb()))
	}
	if err := env.RunHost(ctx, argv, RunOptions{}); err != nil {
		return fmt.Errorf("mmdebstrap: %w", err)
	}
	return unleakHost(env)
}

// bootstrapKeys lists the input roles of the bootstrap's key files.
func bootstrapKeys(p *BootstrapParams) []string {
	roles := append([]string(nil), p.Keys...)
	for _, r := range p.Repos {
		if r.GPGKey != "" {
			roles = append(roles, r.GPGKey)
		}
	}
	return roles
}

// unleakHost removes what bootstrap tools copy from the build host into the
// image: its resolv.conf (the image gets an empty one, as after a plain
// install) and its hostname (the image gets "localhost" unless the
// manifest names one).
func unleakHost(env Env) error {
	r := env.Root()
	for _, f := range []struct{ path, replacement string }{
		{"/etc/resolv.conf", ""},
		{"/etc/hostname", "localhost\n"},
	} {
		host, err := os.ReadFile(f.path)
		if err != nil || len(host) == 0 {
			continue
		}
		img, err := r.ReadFile(f.path)
		if err != nil || string(img) != string(host) {
			continue
		}
		if err := writeText(r, f.path, f.replacement); err != nil {
			return err
		}
	}
	return nil
}

// aptCaches stages this build's .deb and index list directories from the
// store's shared caches for distro and arch.
func aptCaches(env Env, distro, arch string) (debs, lists string, err error) {
	if debs, err = env.Downloads("apt/" + distro + "/" + arch); err != nil {
		return "", "", err
	}
	lists, err = env.Downloads("apt-lists/" + distro + "/" + arch)
	return debs, lists, err
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

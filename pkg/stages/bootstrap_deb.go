package stages

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// debootstrapVariants are the variants debootstrap knows ("important" is
// its default, which it has no name for).
var debootstrapVariants = []string{"minbase", "buildd", "important"}

// debBootstrap runs mmdebstrap into the empty tree, with the store's
// shared .deb and index list caches staged for this build and bound over
// /var/cache/apt/archives and /var/lib/apt/lists while apt runs.
func debBootstrap(ctx context.Context, env Env, p *BootstrapParams) error {
	if p.Tool == "debootstrap" {
		return debootstrap(ctx, env, p)
	}
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
	keys, err := keyringArgs(env, p)
	if err != nil {
		return err
	}
	argv = append(append(argv, keys...), p.Release, r.Dir())
	for _, s := range p.Sources {
		argv = append(argv, s.Line(p.Arch.Deb()))
	}
	if err := env.RunHost(ctx, argv, RunOptions{}); err != nil {
		return fmt.Errorf("mmdebstrap: %w", err)
	}
	return unleakHost(env)
}

// keyringArgs gives both bootstrappers the archive keys the manifest
// names, the bootstrap's own and its repositories'.
func keyringArgs(env Env, p *BootstrapParams) ([]string, error) {
	roles := append([]string(nil), p.Keys...)
	for _, r := range p.Repos {
		if r.GPGKey != "" {
			roles = append(roles, r.GPGKey)
		}
	}
	var args []string
	for _, role := range roles {
		path, err := env.Input(role)
		if err != nil {
			return nil, err
		}
		args = append(args, "--keyring="+path)
	}
	return args, nil
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

// debootstrap is the fallback where mmdebstrap is missing: one mirror and
// no hooks, so the .debs are cached through its --cache-dir, and the full
// list of sources is written into the image afterwards.
func debootstrap(ctx context.Context, env Env, p *BootstrapParams) error {
	debs, err := env.Downloads("apt/" + p.Distro + "/" + p.Arch.Deb())
	if err != nil {
		return err
	}
	argv := []string{"debootstrap", "--arch=" + p.Arch.Deb(), "--components=" + strings.Join(p.Components, ","), "--cache-dir=" + debs}
	if p.Variant != "important" {
		argv = append(argv, "--variant="+p.Variant)
	}
	if len(p.Packages) > 0 {
		argv = append(argv, "--include="+strings.Join(p.Packages, ","))
	}
	keys, err := keyringArgs(env, p)
	if err != nil {
		return err
	}
	argv = append(append(argv, keys...), p.Release, env.Root().Dir())
	if len(p.Sources) > 0 {
		argv = append(argv, p.Sources[0].URI)
	}
	if err := env.RunHost(ctx, argv, RunOptions{}); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	if len(p.Sources) > 0 {
		var lines []string
		for _, s := range p.Sources {
			lines = append(lines, s.Line(p.Arch.Deb()))
		}
		if err := writeText(env.Root(), "/etc/apt/sources.list", strings.Join(lines, "\n")+"\n"); err != nil {
			return err
		}
	}
	if err := removeMatching(env.Root(), "/var/cache/apt/archives", "*.deb"); err != nil {
		return err
	}
	return unleakHost(env)
}

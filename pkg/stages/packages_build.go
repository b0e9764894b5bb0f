package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

func init() { Packages.Build, Packages.API = buildPackages, true }

func buildPackages(ctx context.Context, env Env, raw json.RawMessage) error {
	var p PackagesParams
	if err := decode(raw, &p); err != nil {
		return err
	}
	switch p.Family {
	case "deb":
		return aptPackages(ctx, env, &p)
	}
	return fmt.Errorf("packages for the %s family are not supported yet", p.Family)
}

// aptPackages installs without recommends and purges, with the download
// directory of this build bound over /var/cache/apt/archives so .debs are
// shared between builds and never stay in the image.
func aptPackages(ctx context.Context, env Env, p *PackagesParams) error {
	arch, err := output(ctx, env, "dpkg", "--print-architecture")
	if err != nil {
		return err
	}
	distro := "debian"
	if osr, err := env.Root().ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(osr), "\n") {
			if v, ok := strings.CutPrefix(l, "ID="); ok {
				distro = strings.Trim(v, `"`)
			}
		}
	}
	dl, err := env.Downloads(aptCache(distro, strings.TrimSpace(arch)))
	if err != nil {
		return err
	}
	if err := env.Bind(dl, "/var/cache/apt/archives", false); err != nil {
		return err
	}
	apt := func(args ...string) error {
		argv := append([]string{"apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", "-o", "APT::Install-Recommends=false"}, args...)
		return env.Run(ctx, argv, RunOptions{})
	}
	if err := apt("update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	if len(p.Install) > 0 {
		if err := apt(append([]string{"install"}, p.Install...)...); err != nil {
			return fmt.Errorf("apt-get install: %w", err)
		}
	}
	if len(p.Remove) > 0 {
		if err := apt(append([]string{"purge"}, p.Remove...)...); err != nil {
			return fmt.Errorf("apt-get purge: %w", err)
		}
	}
	return nil
}

package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/imgplan/imgplan/pkg/digest"
)

func init() { Packages.Build, Packages.API = buildPackages, true }

func buildPackages(ctx context.Context, env Env, raw json.RawMessage) error {
	var p PackagesParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	switch p.Family {
	case "deb":
		return aptPackages(ctx, env, &p)
	case "rpm":
		return rpmPackages(ctx, env, &p)
	}
	return fmt.Errorf("packages for the %s family are not supported yet", p.Family)
}

// aptPackages installs without recommends and purges, with this build's
// staged .deb and index list caches bound over /var/cache/apt/archives and
// /var/lib/apt/lists, so downloads are shared between builds and neither
// enters the layer.
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
	debs, lists, err := aptCaches(env, distro, strings.TrimSpace(arch))
	if err != nil {
		return err
	}
	if err := env.Bind(debs, "/var/cache/apt/archives", false); err != nil {
		return err
	}
	if err := env.Bind(lists, "/var/lib/apt/lists", false); err != nil {
		return err
	}
	apt := func(args ...string) error {
		argv := append([]string{"apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", "-o", "APT::Install-Recommends=false"}, args...)
		return env.Run(ctx, argv, RunOptions{})
	}
	if !listsCurrent(lists, env.Indexes()) {
		if err := apt("update"); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
	}
	if lock, err := env.Input(LockRole); err == nil {
		if err := aptLocked(lock, lists, debs, apt); err != nil {
			return err
		}
	} else if len(p.Install) > 0 {
		if err := apt(append([]string{"install"}, p.Install...)...); err != nil {
			return fmt.Errorf("apt-get install: %w", err)
		}
	}
	if len(p.Remove) > 0 {
		if err := apt(append([]string{"purge"}, p.Remove...)...); err != nil {
			return fmt.Errorf("apt-get purge: %w", err)
		}
	}
	// apt's binary caches are rebuilt from the lists when needed; keeping
	// them would put tens of MiB into this layer.
	return removeMatching(env.Root(), "/var/cache/apt", "*.bin")
}

// listsCurrent reports whether the cached index lists hold exactly the
// signed indexes the plan fetched, so apt-get update has nothing to do.
func listsCurrent(lists string, indexes []Input) bool {
	if len(indexes) == 0 {
		return false
	}
	files := digest.NewFiles()
	for _, in := range indexes {
		url, ok := strings.CutPrefix(in.Role, "index ")
		if !ok {
			return false
		}
		d, err := files.File(filepath.Join(lists, aptListName(url)))
		if err != nil || d != in.Digest {
			return false
		}
	}
	return true
}

// aptListName is the name apt gives a downloaded index in its lists
// directory (apt's URItoFileName): the URL without its scheme and
// credentials, some characters %-escaped, slashes turned into _.
func aptListName(url string) string {
	if _, rest, ok := strings.Cut(url, "://"); ok {
		url = rest
	}
	if at := strings.Index(url, "@"); at >= 0 && at < strings.Index(url+"/", "/") {
		url = url[at+1:]
	}
	var b strings.Builder
	for i := 0; i < len(url); i++ {
		c := url[i]
		switch {
		case c == '/':
			b.WriteByte('_')
		case strings.IndexByte("\\|{}[]<>\"^~_=!@#$%^&*", c) >= 0 || c <= 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "%%%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

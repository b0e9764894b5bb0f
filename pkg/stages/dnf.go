package stages

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// RPMSetup is what the host's dnf needs to install into an RPM-family
// image: the distribution's repositories and its install rules. The
// bootstrap and packages stages both carry it, so a change of mirror,
// repository or exclude rebuilds both.
type RPMSetup struct {
	Distro   string       `json:"distro"`
	Release  string       `json:"release"`
	Arch     string       `json:"arch"`
	Mirror   string       `json:"mirror"`
	GPGCheck bool         `json:"gpgcheck,omitempty"`
	Keys     []string     `json:"keys,omitempty"`
	Exclude  []string     `json:"exclude,omitempty"`
	Repos    []RepoParams `json:"repos,omitempty"`
}

// rpmSetup is the dnf setup of an RPM-family bootstrap.
func (p *BootstrapParams) rpmSetup() *RPMSetup {
	return &RPMSetup{
		Distro: p.Distro, Release: p.Release, Arch: p.Arch.RPM(), Mirror: p.Mirror,
		GPGCheck: p.GPGCheck, Keys: p.Keys, Exclude: p.Exclude, Repos: p.Repos,
	}
}

// repomdURLs are the signed-index equivalents of an RPM setup: each
// repository's repodata/repomd.xml, whose digest goes into the keys.
func (s *RPMSetup) repomdURLs() []string {
	urls := []string{s.expand(s.Mirror)}
	for _, r := range s.Repos {
		urls = append(urls, s.expand(r.URL))
	}
	for i, u := range urls {
		urls[i] = strings.TrimSuffix(u, "/") + "/repodata/repomd.xml"
	}
	return urls
}

// expand substitutes dnf's $releasever and $basearch as dnf will.
func (s *RPMSetup) expand(u string) string {
	return strings.NewReplacer("$releasever", s.Release, "${releasever}", s.Release, "$basearch", s.Arch, "${basearch}", s.Arch).Replace(u)
}

// hostDBBackend is the rpmdb format the host's rpm (and so its dnf)
// writes. Debian 12's rpm 4.18 writes sqlite and reads Berkeley DB only
// through its read-only bdb_ro backend.
const hostDBBackend = "sqlite"

// dnf drives the host's dnf with --installroot against one image. Nothing
// of the host's dnf or rpm configuration is used: the repositories come
// from a generated dnf.conf (--config) and an empty reposdir, dnf's
// variables from an empty varsdir, and rpm's database path is pinned to
// /var/lib/rpm by a generated ~/.rpmmacros (Debian's rpm defaults it to
// ~/.rpmdb). dnf keeps its cache inside the install root, so the store's
// shared RPM download cache is bound over /var/cache/dnf in the image for
// the stage, and is not part of the layer.
type dnf struct {
	env   Env
	s     *RPMSetup
	tmp   string
	conf  string
	repos string
}

func newDNF(env Env, s *RPMSetup) (*dnf, func(), error) {
	if s.Mirror == "" {
		return nil, nil, fmt.Errorf("no mirror: RPM distros need bootstrap.mirror")
	}
	tmp, err := os.MkdirTemp("", "imgplan-dnf-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	d := &dnf{env: env, s: s, tmp: tmp, conf: filepath.Join(tmp, "dnf.conf"), repos: filepath.Join(tmp, "repos.d")}
	fail := func(err error) (*dnf, func(), error) { cleanup(); return nil, nil, err }
	for _, dir := range []string{d.repos, filepath.Join(tmp, "vars")} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fail(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".rpmmacros"), []byte("%_dbpath /var/lib/rpm\n"), 0o644); err != nil {
		return fail(err)
	}
	conf, err := d.config()
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		return fail(err)
	}
	cache, err := env.Downloads("dnf/" + s.Distro + "/" + s.Arch)
	if err != nil {
		return fail(err)
	}
	// /var/cache is made first: the bind removes the directories it
	// created, which would take the whole /var of a new tree with it.
	if err := env.Root().MkdirAll("/var/cache", 0o755); err != nil {
		return fail(err)
	}
	if err := env.Bind(cache, "/var/cache/dnf", false); err != nil {
		return fail(err)
	}
	return d, cleanup, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// config is the generated dnf.conf: main options, then the mirror as the
// repository named after the distro, then the manifest's extra repos.
func (d *dnf) config() (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "[main]\ngpgcheck=%d\ninstallonly_limit=0\ninstall_weak_deps=False\nkeepcache=True\n", boolInt(d.s.GPGCheck))
	fmt.Fprintf(&b, "cachedir=/var/cache/dnf\nmetadata_expire=0\nplugins=False\nskip_if_unavailable=False\n")
	fmt.Fprintf(&b, "group_package_types=mandatory,default\nreposdir=%s\nvarsdir=%s\n", d.repos, filepath.Join(d.tmp, "vars"))
	if len(d.s.Exclude) > 0 {
		fmt.Fprintf(&b, "excludepkgs=%s\n", strings.Join(d.s.Exclude, ","))
	}
	keys := func(roles []string) (string, error) {
		var urls []string
		for _, role := range roles {
			p, err := d.env.Input(role)
			if err != nil {
				return "", err
			}
			urls = append(urls, "file://"+p)
		}
		return strings.Join(urls, " "), nil
	}
	k, err := keys(d.s.Keys)
	if err != nil {
		return "", err
	}
	repo := func(id, url string, gpg bool, key string) {
		fmt.Fprintf(&b, "\n[%s]\nname=%s\nbaseurl=%s\nenabled=1\ngpgcheck=%d\n", id, id, url, boolInt(gpg))
		if key != "" {
			fmt.Fprintf(&b, "gpgkey=%s\n", key)
		}
	}
	repo(d.s.Distro, d.s.Mirror, d.s.GPGCheck, k)
	for _, r := range d.s.Repos {
		var roles []string
		if r.GPGKey != "" {
			roles = []string{r.GPGKey}
		}
		k, err := keys(roles)
		if err != nil {
			return "", err
		}
		repo(r.Name, r.URL, r.GPGCheck, k)
	}
	return b.String(), nil
}

// run runs one dnf command against the image.
func (d *dnf) run(ctx context.Context, args ...string) error {
	// --refresh: dnf takes cached metadata younger than metadata_expire
	// (0: one second) as current, but the key names the repomd.xml the
	// plan fetched, so dnf must read it again.
	argv := []string{"dnf", "-y", "--refresh", "--installroot=" + d.env.Root().Dir(), "--config=" + d.conf,
		"--setopt=reposdir=" + d.repos, "--releasever=" + d.s.Release, "--forcearch=" + d.s.Arch}
	argv = append(argv, args...)
	// dnf's own "Error: ..." lines join the error: its buffered standard
	// output lands in the build log after them, so the log's tail may not
	// show them.
	var stderr bytes.Buffer
	o := d.hostOpts(nil)
	o.Stderr = io.MultiWriter(os.Stderr, &stderr)
	if err := d.env.RunHost(ctx, argv, o); err != nil {
		var why []string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, "Error") || strings.Contains(l, "GPG") || strings.HasPrefix(l, "No match") || strings.HasPrefix(l, " Problem") {
				why = append(why, strings.TrimSpace(l))
			}
		}
		if len(why) > 10 {
			why = why[len(why)-10:]
		}
		if len(why) > 0 {
			return fmt.Errorf("dnf %s: %w: %s", args[0], err, strings.Join(why, "; "))
		}
		return fmt.Errorf("dnf %s: %w", args[0], err)
	}
	return d.cleanLogs()
}

// rpm runs the host's rpm on the image's database (in the host's format).
func (d *dnf) rpm(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	argv := append([]string{"rpm", "--root", d.env.Root().Dir(), "--dbpath", "/var/lib/rpm"}, args...)
	err := d.env.RunHost(ctx, argv, d.hostOpts(&out))
	return out.String(), err
}

func (d *dnf) hostOpts(out *bytes.Buffer) RunOptions {
	o := RunOptions{Env: []string{"HOME=" + d.tmp}}
	if out != nil {
		o.Stdout = out
	}
	return o
}

// cleanLogs removes the host dnf's logs from the image: they are the
// build's, with its times, not the image's.
func (d *dnf) cleanLogs() error {
	r := d.env.Root()
	for _, f := range []string{"dnf.log", "dnf.librepo.log", "dnf.rpm.log", "hawkey.log"} {
		if err := r.RemoveAll("/var/log/" + f); err != nil {
			return err
		}
	}
	// dnf's history belongs to images that have dnf; EL7 and older images
	// have yum, to which it means nothing.
	if firstExisting(r, "/usr/bin/dnf", "/usr/bin/dnf-3") == "" {
		return r.RemoveAll("/var/lib/dnf")
	}
	return nil
}

// installed lists the image's packages (NEVRA, with gpg-pubkey entries)
// from the host-format database.
func (d *dnf) installed(ctx context.Context) (map[string]bool, error) {
	set := map[string]bool{}
	if firstExisting(d.env.Root(), "/var/lib/rpm") == "" {
		return set, nil
	}
	out, err := d.rpm(ctx, "-qa", "--qf", `%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n`)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Fields(out) {
		set[l] = true
	}
	return set, nil
}

package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/imgplan/imgplan/pkg/manifest"
)

// RPM lock files.
//
// `imgplan lock` builds the packages stage as usual, then reads the rpm
// databases of the bootstrap's tree and of the packages stage's tree: every
// package the stage installed or changed is pinned, with the location and
// checksum the repository's primary metadata gives it (read from dnf's
// cache of that repository in the store), or the SHA-256 of the cached
// package when the metadata has another checksum type. A locked apply has
// dnf download exactly those NEVRAs, checks each download against the
// lock, and installs the checked files; a transaction that pulls in a
// package the lock does not pin fails.

// LockManager is the package manager whose locks a family uses.
func LockManager(f manifest.Family) string {
	if f == manifest.FamilyRPM {
		return "dnf"
	}
	return "apt"
}

// RPMPackage is one entry of an rpm database.
type RPMPackage struct {
	Name, Epoch, Version, Release, Arch string
}

// EVR is [epoch:]version-release, the epoch left out when it is 0.
func (p RPMPackage) EVR() string {
	if p.Epoch != "" && p.Epoch != "0" {
		return p.Epoch + ":" + p.Version + "-" + p.Release
	}
	return p.Version + "-" + p.Release
}

// NEVRA is name-[epoch:]version-release.arch, as dnf takes it.
func (p RPMPackage) NEVRA() string { return p.Name + "-" + p.EVR() + "." + p.Arch }

// nvra is name-version-release.arch, as dnf.installed lists packages.
func (p RPMPackage) nvra() string { return p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch }

// lockedRPM is the RPMPackage a dnf lock entry names.
func lockedRPM(l LockedPackage) RPMPackage {
	p := RPMPackage{Name: l.Name, Arch: l.Arch, Epoch: "0"}
	evr := l.Version
	if e, rest, ok := strings.Cut(evr, ":"); ok {
		p.Epoch, evr = e, rest
	}
	p.Version, p.Release = evr, ""
	if i := strings.LastIndex(evr, "-"); i >= 0 {
		p.Version, p.Release = evr[:i], evr[i+1:]
	}
	return p
}

// HasRPMDB says whether dir holds an rpm database: the host rpm's sqlite
// one, or the Berkeley DB one of an image whose own rpm is older (the
// host's rpm reads it read-only).
func HasRPMDB(dir string) bool {
	for _, f := range []string{"rpmdb.sqlite", "Packages"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// ListRPMDB lists the packages of the rpm database in dir (an image's
// /var/lib/rpm, left untouched: rpm reads a copy, since it writes its lock
// file beside the database) with the host's rpm. gpg-pubkey entries
// (imported keys) are left out.
func ListRPMDB(ctx context.Context, dir string) ([]RPMPackage, error) {
	dbdir, err := os.MkdirTemp("", "imgplan-rpmdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dbdir)
	if err := copyDir(dir, dbdir); err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "rpm", "--dbpath", dbdir, "-qa", "--qf", `%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n`)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rpm -qa on %s: %w: %s", dbdir, err, strings.TrimSpace(errb.String()))
	}
	var pkgs []RPMPackage
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 5 || f[0] == "gpg-pubkey" {
			continue
		}
		pkgs = append(pkgs, RPMPackage{Name: f[0], Epoch: f[1], Version: f[2], Release: f[3], Arch: f[4]})
	}
	return pkgs, nil
}

// repoEntry is what a repository's primary metadata says of one package.
type repoEntry struct {
	repo, href, sumType, sum string
}

// ResolveRPMLock pins every package of after (the packages stage's rpm
// database) that before (the bootstrap's) does not have at the same
// version. s is the packages stage's dnf setup and cache the store's dnf
// download cache for it.
func ResolveRPMLock(m *manifest.Manifest, s *RPMSetup, before, after []RPMPackage, cache string) (*Lock, error) {
	had := map[string]bool{}
	for _, p := range before {
		had[p.NEVRA()] = true
	}
	type repo struct{ id, dir string }
	var repos []repo
	var index []map[string]repoEntry
	ids := []string{s.Distro}
	urls := []string{s.Mirror}
	for _, r := range s.Repos {
		ids, urls = append(ids, r.Name), append(urls, r.URL)
	}
	for i, id := range ids {
		dir := dnfRepoCache(cache, id, s.expand(urls[i]), urls[i])
		if dir == "" {
			return nil, fmt.Errorf("dnf's cache of repository %s (%s) is not in the store: build the manifest's packages stage again (imgplan lock with an empty --cache-dir)", id, urls[i])
		}
		ix, err := readPrimary(dir, id)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", id, err)
		}
		repos, index = append(repos, repo{id, dir}), append(index, ix)
	}
	l := &Lock{Format: LockFormat, Manager: "dnf", Inputs: LockInputs(m), Packages: []LockedPackage{}}
	var missing []string
	for _, p := range after {
		if had[p.NEVRA()] {
			continue
		}
		var e repoEntry
		var dir string
		for i, ix := range index {
			if x, ok := ix[p.NEVRA()]; ok {
				e, dir = x, repos[i].dir
				break
			}
		}
		if e.href == "" {
			missing = append(missing, p.NEVRA())
			continue
		}
		lp := LockedPackage{Name: p.Name, Version: p.EVR(), Arch: p.Arch, Filename: e.href, Repo: e.repo}
		if e.sumType == "sha256" {
			lp.SHA256 = e.sum
		} else if sum, err := fileSHA256(filepath.Join(dir, "packages", path.Base(e.href))); err == nil {
			lp.SHA256 = sum
		} else {
			missing = append(missing, p.NEVRA()+" (no sha256 in the metadata, no download in the cache)")
			continue
		}
		l.Packages = append(l.Packages, lp)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the repositories' metadata does not have %s", strings.Join(missing, ", "))
	}
	sort.Slice(l.Packages, func(i, j int) bool {
		a, b := l.Packages[i], l.Packages[j]
		return a.Name < b.Name || a.Name == b.Name && a.Arch < b.Arch
	})
	return l, nil
}

// dnfRepoCache is the directory dnf caches a repository in under cache:
// <id>-<the first 16 hex digits of the SHA-256 of its base URL>. The URL
// is tried as dnf expanded it, then as written.
func dnfRepoCache(cache, id string, urls ...string) string {
	for _, u := range urls {
		sum := sha256.Sum256([]byte(u))
		dir := filepath.Join(cache, id+"-"+hex.EncodeToString(sum[:])[:16])
		if _, err := os.Stat(filepath.Join(dir, "repodata", "repomd.xml")); err == nil {
			return dir
		}
	}
	return ""
}

// readPrimary indexes a cached repository's primary metadata by NEVRA.
func readPrimary(dir, id string) (map[string]repoEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		return nil, err
	}
	var md struct {
		Data []struct {
			Type     string `xml:"type,attr"`
			Location struct {
				Href string `xml:"href,attr"`
			} `xml:"location"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("repomd.xml: %w", err)
	}
	href := ""
	for _, d := range md.Data {
		if d.Type == "primary" {
			href = d.Location.Href
		}
	}
	if href == "" {
		return nil, fmt.Errorf("repomd.xml names no primary metadata")
	}
	f, err := os.Open(filepath.Join(dir, "repodata", path.Base(href)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := decompress(f, compressionOf(href))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Base(href), err)
	}
	defer r.Close()
	ix, err := parsePrimary(r, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path.Base(href), err)
	}
	return ix, nil
}

// compressionOf names the compression of a metadata file by its suffix.
func compressionOf(name string) string {
	for suffix, c := range map[string]string{".gz": "gzip", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2"} {
		if strings.HasSuffix(name, suffix) {
			return c
		}
	}
	return "none"
}

// parsePrimary reads primary.xml's packages one at a time.
func parsePrimary(r io.Reader, id string) (map[string]repoEntry, error) {
	type pkg struct {
		Name    string `xml:"name"`
		Arch    string `xml:"arch"`
		Version struct {
			Epoch string `xml:"epoch,attr"`
			Ver   string `xml:"ver,attr"`
			Rel   string `xml:"rel,attr"`
		} `xml:"version"`
		Checksum struct {
			Type string `xml:"type,attr"`
			Sum  string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	}
	out := map[string]repoEntry{}
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p pkg
		if err := dec.DecodeElement(&p, &se); err != nil {
			return nil, err
		}
		epoch := p.Version.Epoch
		if epoch == "" {
			epoch = "0"
		}
		rp := RPMPackage{Name: p.Name, Epoch: epoch, Version: p.Version.Ver, Release: p.Version.Rel, Arch: p.Arch}
		out[rp.NEVRA()] = repoEntry{repo: id, href: p.Location.Href, sumType: p.Checksum.Type, sum: strings.TrimSpace(p.Checksum.Sum)}
	}
}

// noMatch finds the arguments dnf matched no package to: on standard
// error, "Error: Unable to find a match: a b".
var noMatch = regexp.MustCompile(`(?:Unable to find a match|No match for argument): ([^;]+)`)

// dnfLocked installs exactly the locked packages: dnf downloads each
// NEVRA the image does not have yet, every download is checked against
// the lock's SHA-256, and dnf installs those files. A NEVRA the
// repositories no longer have fails before the image is touched; a
// transaction that would also install a package the lock does not pin
// fails after it (the stage, and so the image, is not committed).
func dnfLocked(ctx context.Context, d *dnf, lockPath string, before map[string]bool) error {
	l, err := ReadLock(lockPath)
	if err != nil {
		return err
	}
	name := filepath.Base(lockPath)
	if l.Manager != "dnf" {
		return fmt.Errorf("%s: a %s lock, but the image is installed with dnf", name, l.Manager)
	}
	dest := filepath.Join(d.tmp, "locked")
	pinned := map[string]bool{}
	var specs, files []string
	var need []LockedPackage
	for _, lp := range l.Packages {
		p := lockedRPM(lp)
		pinned[p.nvra()] = true
		if before[p.nvra()] {
			continue // the bootstrap installed it at the pinned version
		}
		specs = append(specs, p.NEVRA())
		need = append(need, lp)
		files = append(files, filepath.Join(dest, path.Base(lp.Filename)))
	}
	if len(specs) == 0 {
		return nil
	}
	if err := d.run(ctx, append([]string{"install", "--downloadonly", "--destdir=" + dest}, specs...)...); err != nil {
		var gone []string
		seen := map[string]bool{}
		for _, m := range noMatch.FindAllStringSubmatch(err.Error(), -1) {
			for _, a := range strings.Fields(m[1]) {
				if !seen[a] {
					seen[a] = true
					gone = append(gone, a)
				}
			}
		}
		if len(gone) > 0 {
			return fmt.Errorf("%s: the repositories no longer have %s; run imgplan lock to resolve current versions", name, strings.Join(gone, ", "))
		}
		return fmt.Errorf("%s: downloading the pinned packages: %w", name, err)
	}
	for i, lp := range need {
		sum, err := fileSHA256(files[i])
		if err != nil {
			return fmt.Errorf("%s: downloaded %s: %w", name, lockedRPM(lp).NEVRA(), err)
		}
		if sum != lp.SHA256 {
			return fmt.Errorf("%s: downloaded %s has sha256 %s, the lock says %s", name, lockedRPM(lp).NEVRA(), sum, lp.SHA256)
		}
	}
	if err := d.run(ctx, append([]string{"install"}, files...)...); err != nil {
		return fmt.Errorf("%s: installing the pinned packages: %w", name, err)
	}
	after, err := d.installed(ctx)
	if err != nil {
		return err
	}
	var extra []string
	for p := range after {
		if !before[p] && !pinned[p] && !strings.HasPrefix(p, "gpg-pubkey-") {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%s: dnf also installed %s, which the lock does not pin; run imgplan lock", name, strings.Join(extra, ", "))
	}
	return nil
}

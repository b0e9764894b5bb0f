package stages

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
)

// LockFormat versions lock files.
const LockFormat = "imgplan.lock.v1"

// LockRole is the role of the lock file among the packages node's
// inputs: its digest is part of the key, and the build reads it.
const LockRole = "lock"

// ErrStaleLock marks a lock written for other package inputs than the
// manifest's.
var ErrStaleLock = errors.New("lock is stale")

// Lock pins every package the packages stage installs: the packages the
// manifest names and every dependency the bootstrap does not already
// have, each at one version with the checksum of its .deb.
type Lock struct {
	Format  string `yaml:"format"`
	Manager string `yaml:"manager"`
	// Inputs is the digest of what the lock was resolved from (see
	// LockInputs); when the manifest's no longer matches, the lock is
	// stale.
	Inputs   digest.Digest   `yaml:"inputs"`
	Packages []LockedPackage `yaml:"packages"`
}

// LockedPackage is one pinned package. Filename is its path in the
// archive (as in the archive's Packages index, or an RPM repository's
// primary metadata), relative to the repository's base URL, which comes
// from the manifest's sources and is not written here. Repo is the RPM
// repository's id (the distro's name for the bootstrap mirror). An RPM
// package's version is [epoch:]version-release.
type LockedPackage struct {
	Name     string `yaml:"name"`
	Version  string `yaml:"version"`
	Arch     string `yaml:"arch"`
	SHA256   string `yaml:"sha256"`
	Filename string `yaml:"filename,omitempty"`
	Repo     string `yaml:"repo,omitempty"`
}

// LockPath is where the lock of the manifest at path lives: x.yaml's is
// x.lock.yaml beside it.
func LockPath(manifestPath string) string {
	ext := filepath.Ext(manifestPath)
	return strings.TrimSuffix(manifestPath, ext) + ".lock" + ext
}

// LockInputs is the digest of the parts of a manifest that decide which
// packages the packages stage installs: the distribution, its sources as
// written, the bootstrap's packages (and, for RPM, groups and excludes)
// and the install and remove lists.
// The host's default sources are left out, so a lock is not stale on
// another host.
func LockInputs(m *manifest.Manifest) digest.Digest {
	b := m.Bootstrap
	v := struct {
		Distro, Release, Arch, Mirror, Variant string
		Components, BootstrapPackages          []string
		Repos                                  []string
		Install, Remove                        []string
		// RPM only; left out when empty, so apt locks keep their digest.
		Groups  []string `json:",omitempty"`
		Exclude []string `json:",omitempty"`
	}{
		Distro: b.Distro, Release: b.Release, Arch: string(b.Arch), Mirror: b.Mirror, Variant: b.Variant,
		Components: b.Components, BootstrapPackages: sortedCopy(b.Packages),
		Install: sortedCopy(m.Packages.Install), Remove: sortedCopy(m.Packages.Remove),
		Groups: sortedCopy(b.Groups), Exclude: sortedCopy(b.Exclude),
	}
	for _, r := range b.Repos {
		v.Repos = append(v.Repos, strings.Join(append([]string{r.Name, r.URL, r.Suite}, r.Components...), " "))
	}
	j, _ := json.Marshal(v)
	return digest.FromBytes(append([]byte("imgplan.lock-inputs.v1\n"), j...))
}

// ReadLock reads a lock file.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var l Lock
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Format != LockFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, l.Format, LockFormat)
	}
	if l.Manager != "apt" && l.Manager != "dnf" {
		return nil, fmt.Errorf("%s: manager %q: want apt or dnf", path, l.Manager)
	}
	for i, p := range l.Packages {
		if p.Name == "" || p.Version == "" || len(p.SHA256) != 64 {
			return nil, fmt.Errorf("%s: package %d: name, version and a sha256 of 64 hex digits are required", path, i+1)
		}
		if l.Manager == "dnf" && (p.Arch == "" || p.Filename == "") {
			return nil, fmt.Errorf("%s: package %d (%s): a dnf lock needs its arch and filename", path, i+1, p.Name)
		}
	}
	return &l, nil
}

// Write writes the lock with a header saying what it is.
func (l *Lock) Write(path string) error {
	b, err := yaml.Marshal(l)
	if err != nil {
		return err
	}
	head := "# Written by imgplan lock: the exact packages imgplan apply installs for\n" +
		"# " + filepath.Base(strings.TrimSuffix(path, ".lock"+filepath.Ext(path))+filepath.Ext(path)) + ". Regenerate it with imgplan lock; do not edit.\n"
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append([]byte(head), b...), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// CheckLock reports ErrStaleLock when l was resolved from other inputs
// than m's.
func CheckLock(l *Lock, m *manifest.Manifest, path string) error {
	if want := LockManager(m.Bootstrap.Family()); l.Manager != want {
		return fmt.Errorf("%s is a %s lock; %s installs with %s", path, l.Manager, m.Path, want)
	}
	if l.Inputs != LockInputs(m) {
		return fmt.Errorf("%w: %s was written for another package list or sources than %s has now; run imgplan lock", ErrStaleLock, path, m.Path)
	}
	return nil
}

// ResolveLock builds a lock from the dpkg status of the bootstrap tree and
// of the tree after the packages stage: every package the packages stage
// installed or changed, with the checksum and archive path from the apt
// index lists (or, for a version the lists no longer have, the checksum
// of the cached .deb).
func ResolveLock(m *manifest.Manifest, bootstrapStatus, packagesStatus []byte, lists, debs string) (*Lock, error) {
	before := map[string]string{}
	for _, p := range parseDpkgStatus(bootstrapStatus) {
		before[p.Name+":"+p.Arch] = p.Version
	}
	index, err := readAptIndexes(lists)
	if err != nil {
		return nil, err
	}
	l := &Lock{Format: LockFormat, Manager: "apt", Inputs: LockInputs(m), Packages: []LockedPackage{}}
	var missing []string
	for _, p := range parseDpkgStatus(packagesStatus) {
		if before[p.Name+":"+p.Arch] == p.Version {
			continue
		}
		lp := LockedPackage{Name: p.Name, Version: p.Version, Arch: p.Arch}
		if e, ok := index[indexKey(p.Name, p.Version, p.Arch)]; ok {
			lp.SHA256, lp.Filename = e.sha256, e.filename
		} else if sum, err := fileSHA256(filepath.Join(debs, debFileName(p.Name, p.Version, p.Arch))); err == nil {
			lp.SHA256 = sum
		} else {
			missing = append(missing, p.Name+"="+p.Version)
			continue
		}
		l.Packages = append(l.Packages, lp)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no checksum for %s: neither the apt lists nor the download cache have them", strings.Join(missing, ", "))
	}
	sort.Slice(l.Packages, func(i, j int) bool { return l.Packages[i].Name < l.Packages[j].Name })
	return l, nil
}

// indexEntry is what an apt Packages index says of one .deb.
type indexEntry struct{ sha256, filename string }

func indexKey(name, version, arch string) string { return name + " " + version + " " + arch }

// readAptIndexes reads every Packages index in an apt lists directory.
func readAptIndexes(lists string) (map[string]indexEntry, error) {
	files, err := filepath.Glob(filepath.Join(lists, "*_Packages"))
	if err != nil {
		return nil, err
	}
	out := map[string]indexEntry{}
	for _, f := range files {
		if err := readPackagesIndex(f, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readPackagesIndex(file string, out map[string]indexEntry) error {
	fh, err := os.Open(file)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var name, version, arch string
	var e indexEntry
	flush := func() {
		if name != "" && version != "" && e.sha256 != "" {
			out[indexKey(name, strings.TrimPrefix(version, "0:"), arch)] = e
		}
		name, version, arch, e = "", "", "", indexEntry{}
	}
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
			name = v
		case "Version":
			version = v
		case "Architecture":
			arch = v
		case "SHA256":
			e.sha256 = v
		case "Filename":
			e.filename = v
		}
	}
	flush()
	return sc.Err()
}

// debFileName is the name apt gives a downloaded .deb (an epoch's colon
// escaped).
func debFileName(name, version, arch string) string {
	return fmt.Sprintf("%s_%s_%s.deb", name, strings.ReplaceAll(version, ":", "%3a"), arch)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// aptLocked installs exactly the locked packages. Before apt runs, every
// one must be in the index at its version with the lock's checksum (apt
// then checks each download against the index); after the download, the
// .debs are checked against the lock again. A version the archive no
// longer has fails here, before the image is touched.
func aptLocked(lockPath, lists, debs string, apt func(args ...string) error) error {
	l, err := ReadLock(lockPath)
	if err != nil {
		return err
	}
	index, err := readAptIndexes(lists)
	if err != nil {
		return err
	}
	var gone, differ []string
	args := []string{"install", "--allow-downgrades"}
	for _, p := range l.Packages {
		e, ok := index[indexKey(p.Name, p.Version, p.Arch)]
		switch {
		case !ok:
			gone = append(gone, fmt.Sprintf("%s=%s (%s)", p.Name, p.Version, p.Arch))
		case e.sha256 != p.SHA256:
			differ = append(differ, fmt.Sprintf("%s=%s: archive %s, lock %s", p.Name, p.Version, e.sha256, p.SHA256))
		}
		args = append(args, p.Name+"="+p.Version)
	}
	name := filepath.Base(lockPath)
	if len(gone) > 0 {
		return fmt.Errorf("%s: the archive no longer has %s; run imgplan lock to resolve current versions", name, strings.Join(gone, ", "))
	}
	if len(differ) > 0 {
		return fmt.Errorf("%s: checksum mismatch: %s", name, strings.Join(differ, "; "))
	}
	if len(l.Packages) == 0 {
		return nil
	}
	if err := apt(append([]string{"--download-only"}, args...)...); err != nil {
		return fmt.Errorf("apt-get install --download-only (locked): %w", err)
	}
	for _, p := range l.Packages {
		sum, err := fileSHA256(filepath.Join(debs, debFileName(p.Name, p.Version, p.Arch)))
		if err != nil {
			return fmt.Errorf("%s: downloaded %s=%s: %w", name, p.Name, p.Version, err)
		}
		if sum != p.SHA256 {
			return fmt.Errorf("%s: downloaded %s=%s has sha256 %s, the lock says %s", name, p.Name, p.Version, sum, p.SHA256)
		}
	}
	if err := apt(args...); err != nil {
		return fmt.Errorf("apt-get install (locked): %w", err)
	}
	return nil
}

// lockInput is the lock file as an input of the packages node.
func lockInput(c *Context) (Input, error) {
	d, err := c.Files.Path(c.LockFile)
	if err != nil {
		return Input{}, fmt.Errorf("lock file: %w", err)
	}
	return Input{Role: LockRole, Path: c.LockFile, Digest: d}, nil
}

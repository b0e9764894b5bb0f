package stages

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The image's rpm database.
//
// The host's rpm writes its own database format (sqlite). An image whose
// own rpm expects another format — EL6 and EL7's rpm 4.8–4.11 read only
// Berkeley DB — gets its database written by that rpm, inside the chroot:
// after each dnf transaction the image's database from before it is put
// back, and the image's rpm records the transaction's changes with
// --justdb (erase what dnf removed, install the package files dnf
// installed, --nodeps --noscripts: dnf already ran the scriptlets and put
// the files in place). Before the next transaction the host's rpm reads
// that database through its read-only Berkeley DB backend and converts it
// to its own format with --rebuilddb. An image without its own rpm keeps
// the host's format, which rpm 4.16 and later read.

// imageDB says whether the image has its own rpm and which database
// backend it expects; "" means it has none.
func imageDB(ctx context.Context, env Env) (string, error) {
	if firstExisting(env.Root(), "/bin/rpm", "/usr/bin/rpm") == "" {
		return "", nil
	}
	out, err := output(ctx, env, "rpm", "--eval", "%{?_db_backend}")
	if err != nil {
		return "", fmt.Errorf("the image's rpm: %w", err)
	}
	b := strings.TrimSpace(out)
	if b == "" || strings.Contains(b, "%") {
		b = "bdb" // rpm before 4.16 knows only Berkeley DB
	}
	return b, nil
}

// rpmdbState is the image's database before a transaction.
type rpmdbState struct {
	backend string          // the image rpm's, "" when it has none
	saved   string          // copy of the image-format database, if converted
	before  map[string]bool // NEVRAs installed before
}

// prepareRPMDB makes the image's database readable and writable by the
// host's dnf, remembering what to restore afterwards.
func prepareRPMDB(ctx context.Context, d *dnf) (*rpmdbState, error) {
	st := &rpmdbState{}
	var err error
	if st.before, err = d.installed(ctx); err != nil {
		return nil, err
	}
	if st.backend, err = imageDB(ctx, d.env); err != nil || st.backend == "" || st.backend == hostDBBackend {
		return st, err
	}
	r := d.env.Root()
	if firstExisting(r, "/var/lib/rpm/rpmdb.sqlite") != "" {
		return st, nil // still in the host's format (an older layer)
	}
	st.saved = filepath.Join(d.tmp, "image-rpmdb")
	if err := copyDir(filepath.Join(r.Dir(), "var/lib/rpm"), st.saved); err != nil {
		return nil, err
	}
	if _, err := d.rpm(ctx, "--rebuilddb"); err != nil {
		return nil, fmt.Errorf("convert the image's %s rpm database for the host's rpm: %w", st.backend, err)
	}
	return st, nil
}

// finishRPMDB gives the image back a database in its own rpm's format,
// changed by what the transaction installed and removed. The image's rpm
// may be new (the bootstrap installed it), so it is looked for again.
func finishRPMDB(ctx context.Context, d *dnf, st *rpmdbState) error {
	backend, err := imageDB(ctx, d.env)
	if err != nil {
		return err
	}
	if backend == "" {
		d.env.Log().Info("the image has no rpm of its own: its package database stays in the host rpm's format", "format", hostDBBackend)
		return nil
	}
	if backend == hostDBBackend {
		return nil
	}
	after, err := d.installed(ctx)
	if err != nil {
		return err
	}
	// Changes are recorded on the image-format database from before the
	// transaction; without one, a new database records everything.
	base := st.before
	restore := st.saved != "" && st.backend == backend
	if !restore {
		base = map[string]bool{}
	}
	added, removed, keys := rpmdbChanges(base, after)
	files, err := d.packageFiles(ctx, added)
	if err != nil {
		return err
	}
	// The armoured keys, from the host-format database, before it goes.
	var armoured []string
	for _, k := range keys {
		out, err := d.rpm(ctx, "-q", "--qf", "%{DESCRIPTION}", strings.TrimSuffix(k, ".(none)"))
		if err != nil {
			return err
		}
		armoured = append(armoured, out)
	}
	r := d.env.Root()
	if err := r.RemoveAll("/var/lib/rpm"); err != nil {
		return err
	}
	if restore {
		if err := copyDir(st.saved, filepath.Join(r.Dir(), "var/lib/rpm")); err != nil {
			return err
		}
	} else {
		// A new database: everything installed is added.
		if err := r.MkdirAll("/var/lib/rpm", 0o755); err != nil {
			return err
		}
		if err := d.env.Run(ctx, []string{"rpm", "--initdb"}, RunOptions{}); err != nil {
			return fmt.Errorf("the image's rpm --initdb: %w", err)
		}
	}
	justdb := []string{"--justdb", "--nodeps", "--noscripts", "--notriggers"}
	if len(removed) > 0 {
		if err := d.env.Run(ctx, append(append([]string{"rpm", "-e", "--allmatches"}, justdb...), removed...), RunOptions{}); err != nil {
			return fmt.Errorf("record removals in the image's rpm database: %w", err)
		}
	}
	if len(files) > 0 {
		if err := d.env.Run(ctx, append(append([]string{"rpm", "-i", "--ignoresize", "--ignorearch"}, justdb...), files...), RunOptions{}); err != nil {
			return fmt.Errorf("record installs in the image's rpm database: %w", err)
		}
	}
	for i, a := range armoured {
		f := fmt.Sprintf("/tmp/imgplan-key-%d.asc", i)
		if err := writeText(r, f, a); err != nil {
			return err
		}
		err := d.env.Run(ctx, []string{"rpm", "--import", f}, RunOptions{})
		r.RemoveAll(f)
		if err != nil {
			return fmt.Errorf("import key into the image's rpm database: %w", err)
		}
	}
	return nil
}

// rpmdbChanges is what the image's rpm must record on a database holding
// base for it to hold after: packages to add and to erase (NEVRAs,
// sorted), and keys to import. Keys are never erased: rpm has no package
// file for them, and dnf removes none.
func rpmdbChanges(base, after map[string]bool) (added, removed, keys []string) {
	for p := range after {
		if base[p] {
			continue
		}
		if strings.HasPrefix(p, "gpg-pubkey-") {
			keys = append(keys, p)
		} else {
			added = append(added, p)
		}
	}
	for p := range base {
		if !after[p] && !strings.HasPrefix(p, "gpg-pubkey-") {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(keys)
	return added, removed, keys
}

// packageFiles finds the package file of each NEVRA in dnf's cache (bound
// at /var/cache/dnf), as paths in the image.
func (d *dnf) packageFiles(ctx context.Context, nevras []string) ([]string, error) {
	if len(nevras) == 0 {
		return nil, nil
	}
	root := d.env.Root().Dir()
	var rpms []string
	filepath.WalkDir(filepath.Join(root, "var/cache/dnf"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && strings.HasSuffix(p, ".rpm") {
			rpms = append(rpms, p)
		}
		return nil
	})
	byNEVRA := map[string]string{}
	if len(rpms) > 0 {
		var out strings.Builder
		argv := append([]string{"rpm", "-qp", "--nosignature", "--nodigest", "--qf", `%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n`}, rpms...)
		o := d.hostOpts(nil)
		o.Stdout = &out
		if err := d.env.RunHost(ctx, argv, o); err != nil {
			return nil, err
		}
		for i, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if i < len(rpms) {
				byNEVRA[l] = "/" + strings.TrimPrefix(rpms[i], root+"/")
			}
		}
	}
	var files, missing []string
	for _, n := range nevras {
		f, ok := byNEVRA[n]
		if !ok {
			missing = append(missing, n)
		}
		files = append(files, f)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the image's rpm database needs the package files of %s, which are not in the download cache", strings.Join(missing, ", "))
	}
	return files, nil
}

// copyDir copies the regular files of a flat directory (an rpm database).
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), "__db.") {
			continue // Berkeley DB environment files are recreated
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

package manifest

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Validate checks a loaded manifest and returns every problem, or nil.
// It does not modify m. Load already calls it.
func Validate(m *Manifest) error {
	ps := &problems{}
	validate(m, ps)
	return ps.err()
}

type validator struct {
	ps *problems
	m  *Manifest
}

func validate(m *Manifest, ps *problems) {
	v := &validator{ps: ps, m: m}
	v.required(reflect.ValueOf(m).Elem())
	if m.Name != "" && !nameRe.MatchString(m.Name) {
		v.at(m.Meta, "name", "invalid name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", m.Name)
	}
	if m.Epoch != nil && *m.Epoch < 0 {
		v.at(m.Meta, "epoch", "must not be negative")
	}
	v.bootstrap(&m.Bootstrap)
	v.packages(&m.Packages)
	v.system(m)
	v.files(m.Files)
	v.fstab(&m.Fstab)
	v.accounts(m)
	v.services(&m.Services)
	v.hooks(m.Run)
	if m.Layout != nil {
		v.layout(m.Layout)
	}
	v.outputs(m)
}

// at records a problem at the value of key in the mapping meta describes,
// labelled with the key's path in its file ("files[2].dest: ...").
func (v *validator) at(meta Meta, key, format string, args ...any) {
	v.ps.add(meta.At(key), "%s: %s", joinPath(meta.Path(), key), fmt.Sprintf(format, args...))
}

// item records a problem at a scalar item of the list under key.
func (v *validator) item(meta Meta, key, value, format string, args ...any) {
	v.ps.add(meta.Item(key, value), "%s: %s", joinPath(meta.Path(), key), fmt.Sprintf(format, args...))
}

// here records a problem at the mapping itself.
func (v *validator) here(meta Meta, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if meta.Path() != "" {
		msg = meta.Path() + ": " + msg
	}
	v.ps.add(meta.Pos(), "%s", msg)
}

// where names another position for a message about p: "line 3, column 5"
// in the same file, else the full position.
func where(other, p Position) string {
	if other.File == p.File {
		return fmt.Sprintf("line %d, column %d", other.Line, other.Col)
	}
	return other.String()
}

var (
	nameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	pkgRe      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+:=~*@^/-]*$`)
	globRe     = regexp.MustCompile(`^[A-Za-z0-9_*?\[\]][A-Za-z0-9_.+*?\[\]-]*$`)
	accountRe  = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)
	ownerRe    = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10})$`)
	serviceRe  = regexp.MustCompile(`^[A-Za-z0-9@._:\\-]+$`)
	labelRe    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	timezoneRe = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	localeRe   = regexp.MustCompile(`^(C|POSIX|C\.[A-Za-z0-9-]+|[a-z]{2,3}(_[A-Z]{2})?(\.[A-Za-z0-9-]+)?(@[a-z]+)?)$`)
	releaseRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	repoNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	cryptRe    = regexp.MustCompile(`^(!|\*|!!)?(\$[0-9a-z]+\$[./A-Za-z0-9$=,+-]+|[./A-Za-z0-9]{13})?$`)
	uuidRe     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	vfatIDRe   = regexp.MustCompile(`^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$`)
	mbrTypeRe  = regexp.MustCompile(`^0x[0-9a-fA-F]{2}$`)
	macRe      = regexp.MustCompile(`^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$`)
	fsTypeRe   = regexp.MustCompile(`^[a-z0-9._+-]+$`)
)

// required reports fields tagged required:"true" that were not written,
// walking every struct, list and output option set in v.
func (v *validator) required(rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !rv.IsNil() {
			v.required(rv.Elem())
		}
	case reflect.Slice:
		for i := 0; i < rv.Len(); i++ {
			v.required(rv.Index(i))
		}
	case reflect.Struct:
		var meta Meta
		if hm, ok := rv.Addr().Interface().(hasMeta); ok {
			meta = *hm.meta()
		}
		if !meta.written() {
			return // missing (reported by its parent) or not a mapping
		}
		t := rv.Type()
		si := infoOf(t)
		for _, name := range si.names {
			f := si.fields[name]
			sf := t.FieldByIndex(f.index)
			fv := rv.FieldByIndex(f.index)
			// apiVersion is checked in each file as it is read.
			if sf.Tag.Get("required") == "true" && !meta.Has(f.name) && fv.IsZero() && name != "apiVersion" {
				where := "missing required field %q"
				if meta.Path() != "" {
					where = meta.Path() + ": " + where
				}
				v.ps.add(meta.Pos(), where, f.name)
			}
			v.required(fv)
		}
		if o, ok := rv.Addr().Interface().(*Output); ok && o.Options != nil {
			v.required(reflect.ValueOf(o.Options))
		}
	}
}

func (v *validator) bootstrap(b *Bootstrap) {
	if b.Distro == "" {
		return // reported as missing
	}
	d, ok := Distros[b.Distro]
	if !ok {
		v.at(b.Meta, "distro", "unknown distro %q (known: %s)", b.Distro, strings.Join(DistroNames(), ", "))
		return
	}
	si := infoOf(reflect.TypeOf(*b))
	for _, key := range si.names {
		if key != "distro" && b.Has(key) && !slices.Contains(d.Fields, key) {
			v.at(b.Meta, key, "not used by distro %q", b.Distro)
		}
	}
	for _, key := range d.Required {
		if reflect.ValueOf(*b).FieldByIndex(si.fields[key].index).IsZero() {
			v.here(b.Meta, "distro %q needs %q", b.Distro, key)
		}
	}
	if b.Release != "" && !releaseRe.MatchString(b.Release) {
		v.at(b.Meta, "release", "invalid release %q", b.Release)
	}
	if b.Mirror != "" {
		v.url(b.Meta, "mirror", b.Mirror, "http", "https", "file")
	}
	if b.Variant != "" && !slices.Contains(debVariants, b.Variant) {
		v.at(b.Meta, "variant", "unknown variant %q (known: %s)", b.Variant, strings.Join(debVariants, ", "))
	}
	for _, c := range b.Components {
		if !releaseRe.MatchString(c) {
			v.item(b.Meta, "components", c, "invalid component %q", c)
		}
	}
	v.pkgNames(b.Meta, "packages", b.Packages)
	for _, g := range b.Groups {
		if strings.TrimSpace(g) == "" || strings.HasPrefix(g, "-") {
			v.item(b.Meta, "groups", g, "invalid group %q", g)
		}
	}
	for _, g := range b.Exclude {
		if !globRe.MatchString(g) {
			v.item(b.Meta, "exclude", g, "invalid package glob %q", g)
		}
	}
	for _, k := range b.GPGKeys {
		v.localFile(b.Meta, "gpgkeys", k)
	}
	seen := map[string]Position{}
	for _, r := range b.Repos {
		if r.Name != "" && !repoNameRe.MatchString(r.Name) {
			v.at(r.Meta, "name", "invalid repository name %q", r.Name)
		}
		if first, dup := seen[r.Name]; dup && r.Name != "" {
			v.at(r.Meta, "name", "repository %q is already defined at %s", r.Name, where(first, r.At("name")))
		}
		seen[r.Name] = r.At("name")
		if r.URL != "" {
			v.url(r.Meta, "url", r.URL, "http", "https", "file")
		}
		if !r.GPGKey.IsZero() {
			v.localFile(r.Meta, "gpgkey", r.GPGKey)
		}
		switch d.Family {
		case FamilyDeb:
			if r.Has("gpgcheck") {
				v.at(r.Meta, "gpgcheck", "not used by apt repositories (give a gpgkey)")
			}
		case FamilyRPM:
			for _, k := range []string{"suite", "components"} {
				if r.Has(k) {
					v.at(r.Meta, k, "not used by RPM repositories")
				}
			}
		}
	}
	switch d.Family {
	case FamilyTarball:
		if !b.Source.IsZero() && v.localFile(b.Meta, "source", b.Source) && TarballCompression(b.Source.Raw) == "" {
			v.at(b.Meta, "source", "%q: not a recognised archive (.tar, .tar.gz, .tgz, .tar.xz, .txz, .tar.zst)", b.Source.Raw)
		}
	case FamilyDirectory:
		if !b.Source.IsZero() {
			v.localDir(b.Meta, "source", b.Source)
		}
	}
}

// TarballCompression names the compression of a bootstrap tarball from its
// name: none, gzip, xz or zstd; "" when the name is not an archive's.
func TarballCompression(name string) string {
	switch {
	case strings.HasSuffix(name, ".tar"):
		return "none"
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		return "gzip"
	case strings.HasSuffix(name, ".tar.xz"), strings.HasSuffix(name, ".txz"):
		return "xz"
	case strings.HasSuffix(name, ".tar.zst"), strings.HasSuffix(name, ".tar.zstd"):
		return "zstd"
	}
	return ""
}

func (v *validator) url(meta Meta, key, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.at(meta, key, "invalid URL %q", raw)
	case !slices.Contains(schemes, u.Scheme):
		v.at(meta, key, "URL %q: scheme must be %s", raw, orList(schemes))
	case u.Scheme != "file" && u.Host == "":
		v.at(meta, key, "URL %q has no host", raw)
	case u.Scheme == "file" && u.Path == "":
		v.at(meta, key, "URL %q has no path", raw)
	}
}

// localFile checks that a local path (the value under key, or an item of
// that list) is a regular file.
func (v *validator) localFile(meta Meta, key string, p LocalPath) bool {
	return v.local(meta, key, p, func(fi os.FileInfo) string {
		if fi.IsDir() {
			return "is a directory" + map[bool]string{true: " (use tree)"}[key == "src"]
		}
		if !fi.Mode().IsRegular() {
			return "not a regular file"
		}
		return ""
	})
}

func (v *validator) localDir(meta Meta, key string, p LocalPath) bool {
	return v.local(meta, key, p, func(fi os.FileInfo) string {
		if !fi.IsDir() {
			return "not a directory"
		}
		return ""
	})
}

func (v *validator) local(meta Meta, key string, p LocalPath, check func(os.FileInfo) string) bool {
	var msg string
	if fi, err := os.Stat(p.Path); err != nil {
		msg = unwrapPathErr(err).Error()
	} else if check != nil {
		msg = check(fi)
	}
	if msg == "" {
		return true
	}
	v.item(meta, key, p.Raw, "%q: %s", p.Raw, msg)
	return false
}

func (v *validator) pkgNames(meta Meta, key string, names []string) {
	seen := map[string]bool{}
	for _, n := range names {
		if !pkgRe.MatchString(n) {
			v.item(meta, key, n, "invalid package name %q", n)
		}
		if seen[n] {
			v.item(meta, key, n, "package %q is listed twice", n)
		}
		seen[n] = true
	}
}

func (v *validator) packages(p *Packages) {
	v.pkgNames(p.Meta, "install", p.Install)
	v.pkgNames(p.Meta, "remove", p.Remove)
	for _, n := range p.Remove {
		if slices.Contains(p.Install, n) {
			v.item(p.Meta, "remove", n, "%q is both installed and removed", n)
		}
	}
}

func (v *validator) system(m *Manifest) {
	if h := m.Hostname; h != "" {
		ok := len(h) <= 253
		for _, l := range strings.Split(h, ".") {
			ok = ok && labelRe.MatchString(strings.ToLower(l))
		}
		if !ok {
			v.at(m.Meta, "hostname", "invalid hostname %q: dot-separated labels of letters, digits and '-'", h)
		}
	}
	if z := m.Timezone; z != "" && (!timezoneRe.MatchString(z) || strings.Contains(z, "..")) {
		v.at(m.Meta, "timezone", "invalid timezone %q: an Olson name like Europe/Berlin or UTC", z)
	}
	if l := m.Locale; l != "" && !localeRe.MatchString(l) {
		v.at(m.Meta, "locale", "invalid locale %q: like en_US.UTF-8 or C.UTF-8", l)
	}
}

// imagePath checks an absolute path inside the image: no "..", no empty or
// "." components, no trailing slash. It returns what is wrong, or "".
func imagePath(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q must be an absolute path in the image", p)
	case strings.ContainsRune(p, 0):
		return fmt.Sprintf("%q contains a NUL byte", p)
	}
	for _, c := range strings.Split(p, "/")[1:] {
		if c == ".." {
			return fmt.Sprintf("%q must not contain \"..\"", p)
		}
	}
	if p != "/" && path.Clean(p) != p {
		return fmt.Sprintf("%q is not clean (write %q)", p, path.Clean(p))
	}
	return ""
}

// FileKinds are the keys that say what a files entry is; exactly one is
// written.
var FileKinds = []string{"src", "content", "symlink", "tree", "directory", "remove"}

// Kind says what the entry is: one of FileKinds ("" when invalid).
func (f File) Kind() string {
	var kind string
	for _, k := range FileKinds {
		if f.Has(k) {
			if kind != "" {
				return ""
			}
			kind = k
		}
	}
	return kind
}

func (v *validator) files(files []File) {
	for _, f := range files {
		var kinds []string
		for _, k := range FileKinds {
			if f.Has(k) {
				kinds = append(kinds, k)
			}
		}
		switch len(kinds) {
		case 0:
			v.here(f.Meta, "write one of %s", strings.Join(FileKinds, ", "))
			continue
		case 1:
		default:
			v.at(f.Meta, kinds[1], "%s and %s cannot be combined; write one entry for each", kinds[0], kinds[1])
			continue
		}
		kind := kinds[0]
		switch {
		case f.Dest == "" && kind != "tree":
			v.here(f.Meta, "missing required field \"dest\"")
		case f.Dest != "":
			if msg := imagePath(f.Dest); msg != "" {
				v.at(f.Meta, "dest", "%s", msg)
			} else if f.Dest == "/" && kind != "tree" && kind != "directory" {
				v.at(f.Meta, "dest", "%s cannot target /", kind)
			}
		}
		switch kind {
		case "src":
			v.localFile(f.Meta, "src", f.Src)
		case "tree":
			v.localDir(f.Meta, "tree", f.Tree)
		case "symlink":
			if f.Symlink == "" || strings.ContainsRune(f.Symlink, 0) {
				v.at(f.Meta, "symlink", "needs a target")
			}
		case "directory", "remove":
			if !(f.Directory || f.Remove) {
				v.at(f.Meta, kind, "only true is meaningful; leave the entry out instead")
			}
		}
		if kind == "symlink" || kind == "remove" {
			for _, k := range []string{"mode", "owner", "group"} {
				if f.Has(k) {
					v.at(f.Meta, k, "does not apply to %s", kind)
				}
			}
		}
		if kind == "tree" && f.Has("mode") {
			v.at(f.Meta, "mode", "does not apply to tree: entries keep their own modes (add an entry after the tree to change one)")
		}
		for _, o := range []struct{ key, val string }{{"owner", f.Owner}, {"group", f.Group}} {
			if o.val != "" && !ownerRe.MatchString(o.val) {
				v.at(f.Meta, o.key, "invalid %s %q: a name or a number", o.key, o.val)
			}
		}
		if f.Content != nil && len(*f.Content) > 1<<20 {
			v.at(f.Meta, "content", "inline content over 1MiB; use src")
		}
	}
}

func (v *validator) fstab(f *Fstab) {
	for _, r := range f.Remove {
		if r == "" || strings.ContainsAny(r, " \t") {
			v.item(f.Meta, "remove", r, "invalid entry %q: a mount point (/data) or a filesystem type (swap)", r)
		}
	}
	seen := map[string]Position{}
	for _, e := range f.Add {
		if e.Spec != "" && strings.ContainsAny(e.Spec, " \t\n") {
			v.at(e.Meta, "spec", "must not contain white space (write \\040)")
		}
		mountPoint := e.File != "" && e.File != "none" && e.File != "swap"
		if mountPoint {
			if msg := imagePath(e.File); msg != "" {
				v.at(e.Meta, "file", "%s", msg)
			}
			if first, dup := seen[e.File]; dup {
				v.at(e.Meta, "file", "mount point %s is already added at %s", e.File, where(first, e.At("file")))
			}
			seen[e.File] = e.At("file")
		}
		if e.Type != "" && !fsTypeRe.MatchString(e.Type) {
			v.at(e.Meta, "type", "invalid filesystem type %q", e.Type)
		}
		if strings.ContainsAny(e.Options, " \t\n") {
			v.at(e.Meta, "options", "must not contain white space")
		}
		if e.Dump < 0 || e.Dump > 1 {
			v.at(e.Meta, "dump", "must be 0 or 1")
		}
		if e.Pass < 0 || e.Pass > 2 {
			v.at(e.Meta, "pass", "must be 0, 1 or 2")
		}
	}
}

const maxID = 1<<32 - 2

func (v *validator) accounts(m *Manifest) {
	groups := map[string]Position{}
	for _, g := range m.Groups {
		if g.Name != "" && !accountRe.MatchString(g.Name) {
			v.at(g.Meta, "name", "invalid group name %q", g.Name)
		}
		if first, dup := groups[g.Name]; dup && g.Name != "" {
			v.at(g.Meta, "name", "group %q is already defined at %s", g.Name, where(first, g.At("name")))
		}
		groups[g.Name] = g.At("name")
		if g.GID != nil && (*g.GID < 0 || *g.GID > maxID) {
			v.at(g.Meta, "gid", "must be from 0 to %d", maxID)
		}
		for _, u := range g.Members {
			if !accountRe.MatchString(u) {
				v.item(g.Meta, "members", u, "invalid user name %q", u)
			}
		}
	}
	users := map[string]Position{}
	for _, u := range m.Users {
		if u.Name != "" && !accountRe.MatchString(u.Name) {
			v.at(u.Meta, "name", "invalid user name %q", u.Name)
		}
		if first, dup := users[u.Name]; dup && u.Name != "" {
			v.at(u.Meta, "name", "user %q is already defined at %s", u.Name, where(first, u.At("name")))
		}
		users[u.Name] = u.At("name")
		if u.UID != nil && (*u.UID < 0 || *u.UID > maxID) {
			v.at(u.Meta, "uid", "must be from 0 to %d", maxID)
		}
		if u.Group != "" && !accountRe.MatchString(u.Group) {
			v.at(u.Meta, "group", "invalid group name %q", u.Group)
		}
		for _, g := range u.Groups {
			if !accountRe.MatchString(g) {
				v.item(u.Meta, "groups", g, "invalid group name %q", g)
			}
		}
		for _, k := range []struct{ key, val string }{{"shell", u.Shell}, {"home", u.Home}} {
			if k.val != "" {
				if msg := imagePath(k.val); msg != "" {
					v.at(u.Meta, k.key, "%s", msg)
				}
			}
		}
		if strings.ContainsAny(u.Comment, ":\n") {
			v.at(u.Meta, "comment", "must not contain ':' or a newline")
		}
		if u.PasswordHash != "" && !u.PasswordFile.IsZero() {
			v.at(u.Meta, "password_file", "give password_hash or password_file, not both")
		}
		if u.Has("password_hash") && !cryptRe.MatchString(u.PasswordHash) {
			// The value is never echoed: it may be a real password.
			v.at(u.Meta, "password_hash", "not a crypt(3) hash; write a hash (mkpasswd -m sha-512), never a plain password")
		}
		if !u.PasswordFile.IsZero() {
			v.localFile(u.Meta, "password_file", u.PasswordFile)
		}
	}
}

func (v *validator) services(s *Services) {
	for _, l := range []struct {
		key   string
		names []string
	}{{"enable", s.Enable}, {"disable", s.Disable}} {
		for _, n := range l.names {
			if !serviceRe.MatchString(n) {
				v.item(s.Meta, l.key, n, "invalid service name %q", n)
			}
		}
	}
	for _, n := range s.Disable {
		if slices.Contains(s.Enable, n) {
			v.item(s.Meta, "disable", n, "%q is both enabled and disabled", n)
		}
	}
}

func (v *validator) hooks(hooks []Hook) {
	phases := Phases()
	for _, h := range hooks {
		if h.Phase != "" && !slices.Contains(phases, h.Phase) {
			v.at(h.Meta, "phase", "unknown phase %q (known: %s)", h.Phase, strings.Join(phases, ", "))
		}
		switch {
		case h.Script.IsZero() && h.Inline == "":
			v.here(h.Meta, "write script or inline")
		case !h.Script.IsZero() && h.Inline != "":
			v.at(h.Meta, "inline", "script and inline cannot be combined")
		case !h.Script.IsZero():
			v.localFile(h.Meta, "script", h.Script)
		}
		for _, in := range h.Inputs {
			v.local(h.Meta, "inputs", in, nil)
		}
	}
}

// orList joins names for a message: "a", "a or b", "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

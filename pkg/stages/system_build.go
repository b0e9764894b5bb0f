package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgplan/imgplan/pkg/fsroot"
)

func init() { System.Build, System.API = buildSystem, true }

func buildSystem(ctx context.Context, env Env, raw json.RawMessage) error {
	var p SystemParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	if p.Hostname != "" {
		if err := setHostname(r, p.Hostname); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if p.Timezone != "" {
		if err := setTimezone(r, p.Timezone); err != nil {
			return fmt.Errorf("timezone: %w", err)
		}
	}
	if p.Locale != "" {
		if err := setLocale(ctx, env, p.Locale); err != nil {
			return fmt.Errorf("locale: %w", err)
		}
	}
	return nil
}

func writeText(r *fsroot.Root, p, text string) error {
	perm := fs.FileMode(0o644)
	if fi, err := r.Stat(p); err == nil {
		perm = fi.Mode().Perm()
	}
	return r.WriteFile(p, strings.NewReader(text), fsroot.WriteOptions{Perm: perm, FollowSymlink: true, MkdirParents: true})
}

func readText(r *fsroot.Root, p string) (string, error) {
	b, err := r.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

func setHostname(r *fsroot.Root, name string) error {
	if err := writeText(r, "/etc/hostname", name+"\n"); err != nil {
		return err
	}
	// Debian's convention: the host's own name on 127.0.1.1.
	hosts, err := readText(r, "/etc/hosts")
	if err != nil {
		return err
	}
	short, _, _ := strings.Cut(name, ".")
	entry := "127.0.1.1\t" + name
	if short != name {
		entry += " " + short
	}
	lines := strings.Split(strings.TrimSuffix(hosts, "\n"), "\n")
	found := false
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" {
			lines[i], found = entry, true
		}
	}
	if !found && exists(r, "/etc/debian_version") {
		lines = append(lines, entry)
	}
	if err := writeText(r, "/etc/hosts", strings.TrimLeft(strings.Join(lines, "\n")+"\n", "\n")); err != nil {
		return err
	}
	// RHEL 6 and older read the name from /etc/sysconfig/network.
	if text, err := readText(r, "/etc/sysconfig/network"); err == nil && text != "" {
		return writeText(r, "/etc/sysconfig/network", setVar(text, "HOSTNAME", name))
	}
	return nil
}

func setTimezone(r *fsroot.Root, zone string) error {
	zonefile := "/usr/share/zoneinfo/" + zone
	fi, err := r.Stat(zonefile)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not in the image (install tzdata)", zonefile)
	}
	systemd := firstExisting(r, "/usr/bin/systemctl", "/bin/systemctl") != ""
	if systemd || exists(r, "/etc/debian_version") {
		if err := r.RemoveAll("/etc/localtime"); err != nil {
			return err
		}
		if err := r.Symlink("../usr/share/zoneinfo/"+zone, "/etc/localtime"); err != nil {
			return err
		}
	} else {
		// sysvinit RHEL copies the zone file, as the seed's script did.
		data, err := r.ReadFile(zonefile)
		if err != nil {
			return err
		}
		if err := r.RemoveAll("/etc/localtime"); err != nil {
			return err
		}
		if err := writeText(r, "/etc/localtime", string(data)); err != nil {
			return err
		}
	}
	if exists(r, "/etc/debian_version") {
		if err := writeText(r, "/etc/timezone", zone+"\n"); err != nil {
			return err
		}
	}
	if text, err := readText(r, "/etc/sysconfig/clock"); err == nil && (text != "" || !systemd && exists(r, "/etc/sysconfig")) {
		return writeText(r, "/etc/sysconfig/clock", setVar(text, "ZONE", fmt.Sprintf("%q", zone)))
	}
	return nil
}

func setLocale(ctx context.Context, env Env, locale string) error {
	r := env.Root()
	lang := fmt.Sprintf("LANG=%s\n", locale)
	switch {
	case exists(r, "/etc/debian_version"):
		if gen, err := readText(r, "/etc/locale.gen"); err == nil && !strings.HasPrefix(locale, "C.") && locale != "C" && locale != "POSIX" {
			if firstExisting(r, "/usr/sbin/locale-gen") == "" {
				return fmt.Errorf("%s needs locale-gen: install the locales package", locale)
			}
			charset := "UTF-8"
			if _, cs, ok := strings.Cut(locale, "."); ok {
				charset = strings.ToUpper(strings.ReplaceAll(cs, "utf8", "UTF-8"))
			}
			want := locale + " " + charset
			var lines []string
			found := false
			for _, l := range strings.Split(strings.TrimSuffix(gen, "\n"), "\n") {
				if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#")) == want {
					l, found = want, true
				}
				lines = append(lines, l)
			}
			if !found {
				lines = append(lines, want)
			}
			if err := writeText(r, "/etc/locale.gen", strings.Join(lines, "\n")+"\n"); err != nil {
				return err
			}
			if err := env.Run(ctx, []string{"locale-gen"}, RunOptions{}); err != nil {
				return err
			}
		}
		return writeText(r, "/etc/default/locale", lang)
	case exists(r, "/etc/sysconfig/i18n"):
		text, err := readText(r, "/etc/sysconfig/i18n")
		if err != nil {
			return err
		}
		return writeText(r, "/etc/sysconfig/i18n", setVar(text, "LANG", fmt.Sprintf("%q", locale)))
	default:
		return writeText(r, "/etc/locale.conf", lang)
	}
}

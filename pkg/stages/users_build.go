package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func init() { Users.Build, Users.API = buildUsers, true }

// buildUsers creates and changes groups, then users, with the image's own
// shadow tools (groupadd, useradd, usermod, chpasswd), so each
// distribution's defaults (id ranges, home skeletons) apply.
func buildUsers(ctx context.Context, env Env, raw json.RawMessage) error {
	var p UsersParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	if firstExisting(r, "/usr/sbin/useradd", "/sbin/useradd") == "" {
		return fmt.Errorf("the image has no useradd (install the passwd or shadow-utils package)")
	}
	run := func(argv ...string) error { return env.Run(ctx, argv, RunOptions{}) }
	for _, g := range p.Groups {
		_, err := r.LookupGroup(g.Name)
		switch {
		case err != nil: // new group
			argv := []string{"groupadd"}
			if g.GID != nil {
				argv = append(argv, "-g", strconv.FormatInt(*g.GID, 10))
			}
			if g.System {
				argv = append(argv, "-r")
			}
			if err := run(append(argv, g.Name)...); err != nil {
				return fmt.Errorf("group %s: %w", g.Name, err)
			}
		case g.GID != nil:
			if err := run("groupmod", "-g", strconv.FormatInt(*g.GID, 10), g.Name); err != nil {
				return fmt.Errorf("group %s: %w", g.Name, err)
			}
		}
	}
	for _, u := range p.Users {
		if err := buildUser(ctx, env, run, u); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	for _, g := range p.Groups {
		for _, m := range g.Members {
			if err := run("usermod", "-a", "-G", g.Name, m); err != nil {
				return fmt.Errorf("group %s: member %s: %w", g.Name, m, err)
			}
		}
	}
	return nil
}

func buildUser(ctx context.Context, env Env, run func(...string) error, u UserParams) error {
	_, _, err := env.Root().LookupUser(u.Name)
	existing := err == nil
	var argv []string
	if existing {
		argv = []string{"usermod"}
		if u.Home != "" {
			argv = append(argv, "-d", u.Home)
		}
		if len(u.Groups) > 0 {
			argv = append(argv, "-a", "-G", strings.Join(u.Groups, ","))
		}
	} else {
		argv = []string{"useradd"}
		if u.System {
			argv = append(argv, "-r")
		}
		if u.Home != "" {
			argv = append(argv, "-d", u.Home)
		}
		createHome := !u.System
		if u.CreateHome != nil {
			createHome = *u.CreateHome
		}
		if createHome {
			argv = append(argv, "-m")
		} else {
			argv = append(argv, "-M")
		}
		if u.Group == "" {
			argv = append(argv, "-U") // a group named after the user
		}
		if len(u.Groups) > 0 {
			argv = append(argv, "-G", strings.Join(u.Groups, ","))
		}
	}
	if u.UID != nil {
		argv = append(argv, "-u", strconv.FormatInt(*u.UID, 10))
	}
	if u.Group != "" {
		argv = append(argv, "-g", u.Group)
	}
	if u.Shell != "" {
		argv = append(argv, "-s", u.Shell)
	}
	if u.Comment != "" {
		argv = append(argv, "-c", u.Comment)
	}
	if !existing || len(argv) > 1 {
		if err := run(append(argv, u.Name)...); err != nil {
			return err
		}
	}
	hash := u.PasswordHash
	if u.PasswordFile != "" {
		p, err := env.Input(u.PasswordFile)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		hash = strings.TrimSpace(string(b))
		if strings.ContainsAny(hash, ":\n") {
			return fmt.Errorf("password_file holds more than one crypt(3) hash")
		}
	}
	if hash != "" {
		// On stdin, never on a command line or in a log.
		return env.Run(ctx, []string{"chpasswd", "-e"}, RunOptions{Stdin: strings.NewReader(u.Name + ":" + hash + "\n")})
	}
	return nil
}

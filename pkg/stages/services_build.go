package stages

import (
	"context"
	"encoding/json"
	"fmt"
)

func init() { Services.Build, Services.API = buildServices, true }

// buildServices uses what the image has: systemctl (which works offline in
// a chroot), else chkconfig (RHEL sysvinit), else update-rc.d (Debian
// sysvinit).
func buildServices(ctx context.Context, env Env, raw json.RawMessage) error {
	var p ServicesParams
	if err := DecodeParams(raw, &p); err != nil {
		return err
	}
	r := env.Root()
	run := func(argv ...string) error { return env.Run(ctx, argv, RunOptions{}) }
	switch {
	case firstExisting(r, "/usr/bin/systemctl", "/bin/systemctl") != "":
		if len(p.Enable) > 0 {
			if err := run(append([]string{"systemctl", "enable"}, p.Enable...)...); err != nil {
				return fmt.Errorf("enable: %w", err)
			}
		}
		if len(p.Disable) > 0 {
			if err := run(append([]string{"systemctl", "disable"}, p.Disable...)...); err != nil {
				return fmt.Errorf("disable: %w", err)
			}
		}
	case firstExisting(r, "/sbin/chkconfig", "/usr/sbin/chkconfig") != "":
		for _, s := range p.Enable {
			if err := run("chkconfig", s, "on"); err != nil {
				return fmt.Errorf("enable %s: %w", s, err)
			}
		}
		for _, s := range p.Disable {
			if err := run("chkconfig", s, "off"); err != nil {
				return fmt.Errorf("disable %s: %w", s, err)
			}
		}
	case firstExisting(r, "/usr/sbin/update-rc.d") != "":
		for _, s := range p.Enable {
			if err := run("update-rc.d", s, "enable"); err != nil {
				return fmt.Errorf("enable %s: %w", s, err)
			}
		}
		for _, s := range p.Disable {
			if err := run("update-rc.d", s, "disable"); err != nil {
				return fmt.Errorf("disable %s: %w", s, err)
			}
		}
	default:
		return fmt.Errorf("the image has no systemctl, chkconfig or update-rc.d")
	}
	return nil
}

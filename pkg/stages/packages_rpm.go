package stages

import (
	"context"
	"fmt"
)

// rpmPackages installs and removes with the host's dnf, as the bootstrap
// did: the image's own yum (EL6, EL7) may need a Python the host cannot
// run, and one code path serves every RPM release.
func rpmPackages(ctx context.Context, env Env, p *PackagesParams) error {
	if p.RPM == nil {
		return fmt.Errorf("parameters: no rpm setup")
	}
	d, cleanup, err := newDNF(env, p.RPM)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := prepareRPMDB(ctx, d)
	if err != nil {
		return err
	}
	if lock, err := env.Input(LockRole); err == nil {
		if err := dnfLocked(ctx, d, lock, st.before); err != nil {
			return err
		}
	} else if len(p.Install) > 0 {
		if err := d.run(ctx, append([]string{"install"}, p.Install...)...); err != nil {
			return err
		}
	}
	if len(p.Remove) > 0 {
		if err := d.run(ctx, append([]string{"remove"}, p.Remove...)...); err != nil {
			return err
		}
	}
	return finishRPMDB(ctx, d, st)
}

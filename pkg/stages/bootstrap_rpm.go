package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// rpmBootstrap installs the manifest's groups and packages into the empty
// tree with the host's dnf, then gives the image a package database its
// own rpm reads (see rpmdb.go).
func rpmBootstrap(ctx context.Context, env Env, p *BootstrapParams) error {
	var specs []string
	for _, g := range p.Groups {
		specs = append(specs, "@"+g)
	}
	specs = append(specs, p.Packages...)
	if len(specs) == 0 {
		return fmt.Errorf("an RPM bootstrap needs groups or packages")
	}
	d, cleanup, err := newDNF(env, p.rpmSetup())
	if err != nil {
		return err
	}
	defer cleanup()
	// Scriptlets run chrooted in the tree before any /dev exists there: a
	// private /dev with the usual character devices, gone after the stage.
	dev := filepath.Join(d.tmp, "dev")
	if err := makeDev(dev); err != nil {
		return err
	}
	// Made first, so that it stays in the image when the bind goes.
	if err := env.Root().MkdirAll("/dev", 0o755); err != nil {
		return err
	}
	if err := env.Bind(dev, "/dev", false); err != nil {
		return err
	}
	if err := d.run(ctx, append([]string{"install"}, specs...)...); err != nil {
		return err
	}
	if err := finishRPMDB(ctx, d, &rpmdbState{before: map[string]bool{}}); err != nil {
		return err
	}
	return unleakHost(env)
}

// makeDev creates the device nodes scriptlets expect in dir.
func makeDev(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		p := filepath.Join(dir, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil && !os.IsExist(err) {
			return fmt.Errorf("mknod %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			return err
		}
	}
	return nil
}

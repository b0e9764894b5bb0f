package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoOverlay wraps every reason OverlaySupported gives for not using
// overlayfs.
var ErrNoOverlay = errors.New("overlayfs unusable")

// OverlaySupported probes, in the caller's mount namespace, whether overlayfs
// works with dirs under tmpdir and writes layers in the layer format: it
// mounts a tiny overlay, writes a file, deletes a lower file (a whiteout) and
// replaces a lower directory (an opaque directory, which needs trusted xattrs
// on tmpdir's filesystem), unmounts and checks the upper dir. nil means yes;
// otherwise the error wraps ErrNoOverlay.
func OverlaySupported(tmpdir string) (err error) {
	dir, err := os.MkdirTemp(tmpdir, "overlay-probe-")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoOverlay, err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("%w: clean up probe: %w", ErrNoOverlay, rerr)
		}
	}()
	if err := probe(dir); err != nil {
		return fmt.Errorf("%w: probe in %s: %w", ErrNoOverlay, tmpdir, err)
	}
	return nil
}

func probe(dir string) (err error) {
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"),
		filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, filepath.Join(lower, "d"), upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{filepath.Join(lower, "gone"), filepath.Join(lower, "d", "old")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return err
		}
	}

	if err := MountOverlay([]string{lower}, upper, work, merged); err != nil {
		return err
	}
	mounted := true
	defer func() {
		if mounted {
			if uerr := Unmount(merged); uerr != nil && err == nil {
				err = uerr
			}
		}
	}()
	if err := os.WriteFile(filepath.Join(merged, "new"), []byte("x"), 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(merged, "gone")); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(merged, "d")); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(merged, "d"), 0o755); err != nil {
		return err
	}
	mounted = false
	if err := Unmount(merged); err != nil {
		return err
	}

	if _, err := os.Lstat(filepath.Join(upper, "new")); err != nil {
		return fmt.Errorf("write did not reach the upper dir: %w", err)
	}
	if st, err := lstat(filepath.Join(upper, "gone")); err != nil || !isWhiteout(st) {
		return fmt.Errorf("deleting a lower file left no whiteout (%v)", err)
	}
	if v, err := getXattr(filepath.Join(upper, "d"), opaqueXattr); err != nil || string(v) != "y" {
		return fmt.Errorf("replacing a lower directory left no opaque directory (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "d", "old")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("opaque directory holds a lower entry (%v)", err)
	}
	return nil
}

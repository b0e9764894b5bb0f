package snapshot

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsupportedLayer marks a layer that uses an overlayfs feature outside the
// layer format (redirects, metacopy, xattr whiteouts): it cannot be read
// without the lowers it was built on, so the copy fallback refuses it.
var ErrUnsupportedLayer = errors.New("layer uses overlayfs features outside the layer format")

// overlayBookkeeping are the trusted.overlay.* xattrs overlayfs writes for
// its own use (inode numbers, NFS export, fileattr emulation). They change
// nothing about what a layer contains, so a layer drops them.
var overlayBookkeeping = map[string]bool{
	"trusted.overlay.origin":   true,
	"trusted.overlay.impure":   true,
	"trusted.overlay.nlink":    true,
	"trusted.overlay.upper":    true,
	"trusted.overlay.uuid":     true,
	"trusted.overlay.protattr": true,
}

// layerXattrs reads the xattrs of a layer entry: the entry's own ones, and
// whether it is an opaque directory. Overlay xattrs that would change meaning
// are an ErrUnsupportedLayer.
func layerXattrs(path string, st *unix.Stat_t) (plain map[string][]byte, opaque bool, err error) {
	plain, err = readXattrs(path)
	if err != nil {
		return nil, false, err
	}
	for k, v := range plain {
		if !strings.HasPrefix(k, overlayXattrPrefix) {
			continue
		}
		delete(plain, k)
		switch {
		case overlayBookkeeping[k]:
		case k == opaqueXattr && isDir(st) && string(v) == "y":
			opaque = true
		default:
			return nil, false, fmt.Errorf("%s: xattr %s=%q: %w", path, k, v, ErrUnsupportedLayer)
		}
	}
	return plain, opaque, nil
}

// ApplyLayer applies one layer onto target: whiteouts delete, opaque
// directories clear what is below, everything else is copied with mode,
// owner, times, xattrs other than trusted.overlay.*, device numbers, and
// hardlinks within the layer kept as hardlinks. The layer's root metadata
// becomes target's.
func ApplyLayer(layer, target string) error {
	lst, err := lstat(layer)
	if err != nil {
		return fmt.Errorf("apply layer: %w", err)
	}
	tst, err := lstat(target)
	if err != nil {
		return fmt.Errorf("apply layer: %w", err)
	}
	if !isDir(lst) || !isDir(tst) {
		return fmt.Errorf("apply layer %s to %s: both must be directories", layer, target)
	}
	// overlayfs takes the merged root from the topmost layer and ignores an
	// opaque mark on a layer root.
	xattrs, _, err := layerXattrs(layer, lst)
	if err != nil {
		return fmt.Errorf("apply layer: %w", err)
	}
	a := applier{copier: newCopier()}
	if err := setMeta(target, lst, xattrs); err != nil {
		return fmt.Errorf("apply layer %s: %w", layer, err)
	}
	if err := a.dir(layer, target); err != nil {
		return fmt.Errorf("apply layer %s to %s: %w", layer, target, err)
	}
	if err := setTimes(target, lst); err != nil {
		return fmt.Errorf("apply layer %s: %w", layer, err)
	}
	return nil
}

type applier struct {
	copier
}

// dir applies the layer directory src onto the target directory dst, top
// down: every parent of a path written is a directory examined or created
// just before, so no symlink in the target is ever followed.
func (a *applier) dir(src, dst string) error {
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		s, d := filepath.Join(src, n), filepath.Join(dst, n)
		st, err := lstat(s)
		if err != nil {
			return err
		}
		if isWhiteout(st) {
			if err := removeAll(d); err != nil {
				return err
			}
			continue
		}
		xattrs, opaque, err := layerXattrs(s, st)
		if err != nil {
			return err
		}
		dstSt, err := lstat(d)
		exists := err == nil
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		if !isDir(st) {
			if exists {
				if err := removeAll(d); err != nil {
					return err
				}
			}
			if err := a.copyNonDir(s, d, st, xattrs); err != nil {
				return err
			}
			continue
		}
		// A directory merges with a directory below it unless opaque; it
		// replaces anything else.
		if exists && (!isDir(dstSt) || opaque) {
			if err := removeAll(d); err != nil {
				return err
			}
			exists = false
		}
		if exists {
			err = setMeta(d, st, xattrs)
		} else {
			err = makeDir(d, st, xattrs)
		}
		if err != nil {
			return err
		}
		if err := a.dir(s, d); err != nil {
			return err
		}
		if err := setTimes(d, st); err != nil {
			return err
		}
	}
	return nil
}

// Normalize removes from a layer built by overlayfs the xattrs overlayfs
// keeps for its own bookkeeping (origin file handles, impure marks), so that
// it holds only what the layer format allows and the same stage yields the
// same layer on any filesystem. It fails with ErrUnsupportedLayer on
// redirects, metacopy or xattr whiteouts. Call it on an upper dir after
// Unmount, before committing it.
func Normalize(layer string) error {
	st, err := lstat(layer)
	if err != nil {
		return fmt.Errorf("normalize layer: %w", err)
	}
	if !isDir(st) {
		return fmt.Errorf("normalize layer %s: not a directory", layer)
	}
	if err := normalize(layer, st); err != nil {
		return fmt.Errorf("normalize layer %s: %w", layer, err)
	}
	return nil
}

func normalize(path string, st *unix.Stat_t) error {
	if isWhiteout(st) {
		return nil
	}
	names, err := listXattrs(path)
	if err != nil {
		return err
	}
	for _, k := range names {
		if !strings.HasPrefix(k, overlayXattrPrefix) {
			continue
		}
		if overlayBookkeeping[k] {
			if err := unix.Lremovexattr(path, k); err != nil && !errors.Is(err, unix.ENODATA) {
				return fmt.Errorf("lremovexattr %s %s: %w", k, path, err)
			}
			continue
		}
		v, err := getXattr(path, k)
		if err != nil {
			return err
		}
		if k != opaqueXattr || !isDir(st) || string(v) != "y" {
			return fmt.Errorf("%s: xattr %s=%q: %w", path, k, v, ErrUnsupportedLayer)
		}
	}
	if !isDir(st) {
		return nil
	}
	children, err := readDirNames(path)
	if err != nil {
		return err
	}
	for _, n := range children {
		p := filepath.Join(path, n)
		cst, err := lstat(p)
		if err != nil {
			return err
		}
		if err := normalize(p, cst); err != nil {
			return err
		}
	}
	return nil
}

// InitUpper gives the empty upper dir of a stage the metadata (owner, mode,
// xattrs, times) of the merged root, that of the topmost lower's root.
// overlayfs shows the upper dir itself as the merged root, so without this a
// stage would silently turn the image's / into whatever mode its scratch dir
// was created with (0700 from os.MkdirTemp). Materialize needs no such step:
// it applies every layer's root.
func InitUpper(lowers []string, upper string) error {
	if len(lowers) == 0 {
		return nil
	}
	st, err := lstat(lowers[0])
	if err != nil {
		return fmt.Errorf("init upper: %w", err)
	}
	xattrs, _, err := layerXattrs(lowers[0], st)
	if err != nil {
		return fmt.Errorf("init upper: %w", err)
	}
	if err := setMeta(upper, st, xattrs); err != nil {
		return fmt.Errorf("init upper %s: %w", upper, err)
	}
	if err := setTimes(upper, st); err != nil {
		return fmt.Errorf("init upper %s: %w", upper, err)
	}
	return nil
}

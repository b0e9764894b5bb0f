package snapshot

import (
	"fmt"
	"path"
	"path/filepath"
)

// Diff writes into the empty directory upper the layer that turns the
// baseline state of target into its current state — the layer overlayfs
// would have left in its upper dir:
//
//   - new and changed entries (content or any metadata; see [Baseline]) are
//     copied;
//   - deleted paths become whiteouts;
//   - a directory that was removed and recreated (a new inode where the
//     baseline had an entry) becomes an opaque directory with all its
//     content; a directory at a path the baseline did not have is copied
//     whole, not opaque;
//   - unchanged parent directories of changed entries are recreated in upper
//     with target's metadata;
//   - hardlinks stay hardlinks when both names are in the layer: a change to
//     an inode changes the ctime all its names show, so all are in it. A
//     name added or removed changes the link count, and with it the ctime,
//     of the remaining names, which are therefore copied too;
//   - upper's root gets target root's metadata.
//
// Mounts inside target are an error: unmount before diffing.
func Diff(target string, base *Baseline, upper string) error {
	if base == nil {
		return fmt.Errorf("diff %s: no baseline", target)
	}
	names, err := readDirNames(upper)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	if len(names) > 0 {
		return fmt.Errorf("diff into %s: directory not empty", upper)
	}
	rs, err := stampOf(target)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	if !rs.sameInode(base.entries[""].stamp) {
		return fmt.Errorf("diff %s: not the tree the baseline was taken of", target)
	}
	d := differ{
		copier: newCopier(),
		target: target,
		upper:  upper,
		base:   base,
		made:   map[string]bool{"": true},
	}
	if err := d.dir(""); err != nil {
		return fmt.Errorf("diff %s: %w", target, err)
	}
	rst, err := lstat(target)
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	xattrs, err := readXattrs(target)
	if err != nil {
		return fmt.Errorf("diff %s: %w", target, err)
	}
	if err := setMeta(upper, rst, withoutOverlayXattrs(xattrs)); err != nil {
		return fmt.Errorf("diff %s: %w", target, err)
	}
	if err := setTimes(upper, rst); err != nil {
		return fmt.Errorf("diff %s: %w", target, err)
	}
	return nil
}

type differ struct {
	copier
	target, upper string
	base          *Baseline
	made          map[string]bool // directories created in upper, by relative path
}

func (d *differ) src(rel string) string { return filepath.Join(d.target, rel) }
func (d *differ) dst(rel string) string { return filepath.Join(d.upper, rel) }

// dir diffs the target directory rel, which is the same inode the baseline
// recorded at rel.
func (d *differ) dir(rel string) error {
	names, err := readDirNames(d.src(rel))
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
		crel := path.Join(rel, n)
		cs, err := stampOf(d.src(crel))
		if err != nil {
			return err
		}
		if cs.dev != d.base.entries[""].dev {
			return fmt.Errorf("%s: a mount point inside the tree", d.src(crel))
		}
		b, inBase := d.base.entries[crel]
		same := inBase && b.sameInode(cs)
		changed := !same || b.ctime != cs.ctime

		switch {
		case same && cs.isDir():
			if changed {
				if err := d.ensure(crel); err != nil {
					return err
				}
			}
			if err := d.dir(crel); err != nil {
				return err
			}
		case !changed:
		default:
			if err := d.ensure(rel); err != nil {
				return err
			}
			if err := d.copy(crel, inBase); err != nil {
				return err
			}
		}
	}
	for _, n := range d.base.entries[rel].names {
		if present[n] {
			continue
		}
		if err := d.ensure(rel); err != nil {
			return err
		}
		if err := makeWhiteout(d.dst(path.Join(rel, n))); err != nil {
			return err
		}
	}
	if rel == "" || !d.made[rel] {
		return nil
	}
	st, err := lstat(d.src(rel))
	if err != nil {
		return err
	}
	return setTimes(d.dst(rel), st)
}

// copy copies the new or changed entry rel into upper. A directory new here
// is new with everything below it; where the baseline had something, the
// lowers' entries must stay hidden, so it is opaque.
func (d *differ) copy(rel string, inBase bool) error {
	st, err := lstat(d.src(rel))
	if err != nil {
		return err
	}
	xattrs, err := readXattrs(d.src(rel))
	if err != nil {
		return err
	}
	xattrs = withoutOverlayXattrs(xattrs)
	if !isDir(st) {
		return d.copyNonDir(d.src(rel), d.dst(rel), st, xattrs)
	}
	if inBase {
		xattrs[opaqueXattr] = []byte("y")
	}
	return d.copyTree(d.src(rel), d.dst(rel), st, xattrs)
}

// ensure creates directory rel in upper, and its parents, with target's
// metadata; dir sets its times once its entries are written.
func (d *differ) ensure(rel string) error {
	if d.made[rel] {
		return nil
	}
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	if err := d.ensure(parent); err != nil {
		return err
	}
	st, err := lstat(d.src(rel))
	if err != nil {
		return err
	}
	xattrs, err := readXattrs(d.src(rel))
	if err != nil {
		return err
	}
	if err := makeDir(d.dst(rel), st, withoutOverlayXattrs(xattrs)); err != nil {
		return err
	}
	d.made[rel] = true
	return nil
}

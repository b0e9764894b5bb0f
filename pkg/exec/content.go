package exec

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/containerd/continuity"

	"github.com/imgplan/imgplan/pkg/digest"
)

// ContentDigest is the digest of a directory's content as a continuity
// manifest sees it — every path with its type, permission bits, owner,
// size, content digest, link target, device numbers, xattrs and hardlinks,
// but not times — encoded canonically (continuity's own proto encoding
// does not order xattr maps). It also returns the disk usage in bytes.
func ContentDigest(dir string) (digest.Digest, int64, error) {
	ctx, err := continuity.NewContext(dir)
	if err != nil {
		return "", 0, err
	}
	m, err := continuity.BuildManifest(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("content manifest of %s: %w", dir, err)
	}
	h := sha256.New()
	fmt.Fprintln(h, "imgplan.content.v1")
	for _, r := range m.Resources {
		writeResource(h, r)
	}
	size, err := diskUsage(dir)
	if err != nil {
		return "", 0, err
	}
	return digest.FromHash(h), size, nil
}

func writeResource(w io.Writer, r continuity.Resource) {
	fmt.Fprintf(w, "%q %o %d %d", r.Path(), uint32(r.Mode()), r.UID(), r.GID())
	switch v := r.(type) {
	case continuity.RegularFile:
		fmt.Fprintf(w, " file %d %v", v.Size(), v.Digests())
	case continuity.SymLink:
		fmt.Fprintf(w, " link %q", v.Target())
	case continuity.Device:
		fmt.Fprintf(w, " dev %d:%d", v.Major(), v.Minor())
	}
	if hl, ok := r.(continuity.Hardlinkable); ok && len(hl.Paths()) > 1 {
		fmt.Fprintf(w, " paths %q", hl.Paths())
	}
	if xa, ok := r.(continuity.XAttrer); ok {
		x := xa.XAttrs()
		names := make([]string, 0, len(x))
		for k := range x {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, " xattr %q=%q", k, x[k])
		}
	}
	fmt.Fprintln(w)
}

// diskUsage is the space dir takes on disk, counting hardlinked inodes once.
func diskUsage(dir string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if st.Nlink > 1 && !fi.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// layerStats counts what a layer holds.
type layerStats struct{ entries, whiteouts, opaques, hardlinked int }

func statLayer(t *testing.T, root string) layerStats {
	t.Helper()
	var s layerStats
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		st := mustLstat(t, p)
		s.entries++
		switch {
		case isWhiteout(st):
			s.whiteouts++
		case isDir(st):
			if v, err := getXattr(p, opaqueXattr); err == nil && string(v) == "y" {
				s.opaques++
			}
		case st.Nlink > 1:
			s.hardlinked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// buildLowers makes three layers, topmost first: a random tree, then two
// layers built by random operations on overlayfs (so they hold real
// whiteouts and opaque directories).
func buildLowers(t *testing.T, dir string, g *gen) []string {
	t.Helper()
	l1 := filepath.Join(dir, "l1")
	mkdirs(t, l1)
	g.genTree(t, l1, 3)
	g.randomMeta(t, l1) // the image root: InitUpper must carry it up
	lowers := []string{l1}
	for i := 2; i <= 3; i++ {
		li, work, merged := filepath.Join(dir, fmt.Sprint("l", i)), filepath.Join(dir, fmt.Sprint("w", i)), filepath.Join(dir, fmt.Sprint("m", i))
		mkdirs(t, li, work, merged)
		if err := os.Chmod(li, 0o700); err != nil { // as os.MkdirTemp makes it
			t.Fatal(err)
		}
		if err := InitUpper(lowers, li); err != nil {
			t.Fatal(err)
		}
		mustMount(t, lowers, li, work, merged)
		g.root = merged
		g.run(t, 30)
		mustUnmount(t, merged)
		if err := Normalize(li); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{li}, lowers...)
	}
	return lowers
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

// TestCopyFallbackEquivalence runs one sequence of random operations on an
// overlay mount (layer A) and on a materialized tree diffed against its
// baseline (layer B), and requires the two layers to give the same tree.
func TestCopyFallbackEquivalence(t *testing.T) {
	var total struct {
		layerStats
		dirRenames int
	}
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			privateNS(t)
			dir := testDir(t)
			g := newGen(seed, "")
			lowers := buildLowers(t, dir, g) // topmost first
			bottomFirst := reversed(lowers)
			mA, mB := filepath.Join(dir, "mA"), filepath.Join(dir, "mB")
			upperA, workA, upperB, tB := filepath.Join(dir, "upperA"), filepath.Join(dir, "workA"),
				filepath.Join(dir, "upperB"), filepath.Join(dir, "treeB")
			mkdirs(t, mA, mB, upperA, workA, upperB, tB)
			for _, d := range []string{upperA, upperB, tB} {
				if err := os.Chmod(d, 0o700); err != nil { // as os.MkdirTemp makes it
					t.Fatal(err)
				}
			}

			// (a) overlayfs.
			if err := InitUpper(lowers, upperA); err != nil {
				t.Fatal(err)
			}
			mustMount(t, lowers, upperA, workA, mA)
			gA := newGen(seed<<32|1, mA)
			gA.seq = g.seq
			gA.noteLowerLinks(t)
			ops, errs := gA.run(t, 80)
			mustUnmount(t, mA)
			if err := Normalize(upperA); err != nil {
				t.Fatal(err)
			}
			// No operation touches the root's owner or mode: every layer's
			// root must still have the image root's.
			img := mustLstat(t, lowers[len(lowers)-1])
			for _, l := range append([]string{upperA}, lowers...) {
				if st := mustLstat(t, l); st.Mode != img.Mode || st.Uid != img.Uid || st.Gid != img.Gid {
					t.Errorf("%s: root %#o %d:%d, want the image root's %#o %d:%d", l, st.Mode, st.Uid, st.Gid, img.Mode, img.Uid, img.Gid)
				}
			}

			// (b) the copy fallback; first, Materialize must equal the
			// read-only overlay of the same lowers.
			base, err := Materialize(bottomFirst, tB)
			if err != nil {
				t.Fatal(err)
			}
			mustMount(t, lowers, "", "", mB)
			compareManifests(t, mB, tB)
			compareMeta(t, mB, tB, nil)
			mustUnmount(t, mB)
			replay(t, tB, ops, errs)
			if err := Diff(tB, base, upperB); err != nil {
				t.Fatal(err)
			}

			// The two layers give the same tree, and layer B gives exactly
			// the tree it was diffed from.
			mustMount(t, append([]string{upperA}, lowers...), "", "", mA)
			mustMount(t, append([]string{upperB}, lowers...), "", "", mB)
			compareManifests(t, mA, mB)
			compareMeta(t, mA, mB, gA.timeDirty)
			compareMeta(t, mB, tB, nil)
			mustUnmount(t, mB)

			// The copy fallback reads the overlay-built layer right.
			tA := filepath.Join(dir, "treeA")
			mkdirs(t, tA)
			if _, err := Materialize(append(bottomFirst, upperA), tA); err != nil {
				t.Fatal(err)
			}
			compareManifests(t, mA, tA)
			compareMeta(t, mA, tA, nil)
			mustUnmount(t, mA)

			sa, sb := statLayer(t, upperA), statLayer(t, upperB)
			t.Logf("%d ops (%d directory renames); layer A %+v; layer B %+v", len(ops), gA.dirRenames, sa, sb)
			total.entries += sa.entries
			total.whiteouts += sa.whiteouts
			total.opaques += sa.opaques
			total.hardlinked += sa.hardlinked
			total.dirRenames += gA.dirRenames
		})
	}
	// The seeds must exercise what the layer format is about.
	if total.whiteouts == 0 || total.opaques == 0 || total.hardlinked == 0 || total.dirRenames == 0 {
		t.Errorf("seeds exercise too little: %+v", total)
	}
}

// TestMaterializeDiffTiming measures the copy fallback on a tree of a few
// thousand files.
func TestMaterializeDiffTiming(t *testing.T) {
	privateNS(t) // not needed, but keeps every test's setup alike
	dir := testDir(t)
	base := filepath.Join(dir, "base")
	const dirs, files = 60, 50
	for d := range dirs {
		for f := range files {
			writeFile(t, filepath.Join(base, fmt.Sprint("d", d), fmt.Sprint("f", f)), fmt.Sprintf("%0*d", 1000+f, d))
		}
	}
	tree, upper := filepath.Join(dir, "tree"), filepath.Join(dir, "upper")
	mkdirs(t, tree, upper)

	start := time.Now()
	b, err := Materialize([]string{base}, tree)
	if err != nil {
		t.Fatal(err)
	}
	materialize := time.Since(start)
	for d := range dirs {
		writeFile(t, filepath.Join(tree, fmt.Sprint("d", d), "f0"), "changed")
		if err := os.Remove(filepath.Join(tree, fmt.Sprint("d", d), "f1")); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	if err := Diff(tree, b, upper); err != nil {
		t.Fatal(err)
	}
	diff := time.Since(start)
	s := statLayer(t, upper)
	t.Logf("%d entries: Materialize %v, Diff %v (layer: %+v)", b.Len(), materialize, diff, s)
	if want := dirs * 3; s.entries != want || s.whiteouts != dirs {
		t.Errorf("layer has %+v, want %d entries, %d whiteouts", s, want, dirs)
	}
}

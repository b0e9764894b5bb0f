package exec

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/digest"
)

// commitObject commits an object of about size bytes, last used at used.
func commitObject(t *testing.T, s *Store, name string, size int, used time.Time) *Object {
	t.Helper()
	key := digest.FromString(name)
	sc, err := s.NewScratch(key)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(sc.Data(), "payload"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err := sc.Commit(Meta{Kind: "files", Code: "files/1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(obj.dir, "used"), used, used); err != nil {
		t.Fatal(err)
	}
	return obj
}

func storeSize(t *testing.T, s *Store) int64 {
	t.Helper()
	entries, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		n += e.Meta.Size
	}
	return n
}

// TestGCMaxSize: a store over its bound shrinks to under it, least
// recently used first; an object an apply holds (a lease) and one a build
// holds (its lock) survive even though they are the oldest.
func TestGCMaxSize(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	var objs []*Object
	for i := range 8 { // obj-0 the least recently used
		objs = append(objs, commitObject(t, s, fmt.Sprintf("obj-%d", i), 64<<10, now.Add(time.Duration(i-8)*time.Hour)))
	}
	total := storeSize(t, s)
	bound := total / 2

	// An apply reading obj-0, and a build holding obj-1's lock.
	obj0, lease, err := s.acquire(ctx, objs[0].Meta.Key, nil)
	if err != nil || obj0 == nil {
		t.Fatalf("lease: %v %v", obj0, err)
	}
	defer lease.Release()
	building, err := s.Lock(ctx, objs[1].Meta.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer building()

	res, err := s.GC(now, GCOptions{MaxSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	if after := storeSize(t, s); after > bound || after != res.Size {
		t.Errorf("after GC the store takes %d (result says %d), bound %d", after, res.Size, bound)
	}
	if len(res.Busy) != 2 {
		t.Errorf("busy: %d objects, want 2 (the leased and the locked)", len(res.Busy))
	}
	for _, o := range objs[:2] {
		if !s.Has(o.Meta.Key) {
			t.Errorf("%s, in use, was removed", o.Meta.Key.Short())
		}
	}
	// The removed ones are the least recently used of the rest: a prefix.
	kept := false
	for i, o := range objs[2:] {
		has := s.Has(o.Meta.Key)
		if kept && !has {
			t.Errorf("obj-%d removed though an older one was kept", i+2)
		}
		kept = kept || has
	}
	if !s.Has(objs[7].Meta.Key) || !s.Has(objs[6].Meta.Key) {
		t.Error("the most recently used objects were removed")
	}
	if len(res.Removed) == 0 {
		t.Error("nothing removed")
	}
	// Released, the leased object goes too on the next collection.
	lease.Release()
	building()
	if _, err := s.GC(now, GCOptions{MaxSize: 1}); err != nil {
		t.Fatal(err)
	}
	if n := storeSize(t, s); n != 0 {
		t.Errorf("with a bound of 1 byte and nothing in use, %d bytes remain", n)
	}
	// No removal left anything in tmp/.
	if e, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(e) > 0 {
		t.Errorf("tmp/ holds %d entries after GC", len(e))
	}
}

// TestGCKeepDuration removes objects unused for longer than the duration
// and keeps the rest, whatever the size.
func TestGCKeepDuration(t *testing.T) {
	s := newStore(t)
	now := time.Now()
	old := commitObject(t, s, "old", 4096, now.Add(-48*time.Hour))
	recent := commitObject(t, s, "recent", 4096, now.Add(-1*time.Hour))
	res, err := s.GC(now, GCOptions{KeepDuration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if s.Has(old.Meta.Key) || !s.Has(recent.Meta.Key) || len(res.Removed) != 1 {
		t.Errorf("keep 24h: old kept=%v, recent kept=%v, removed %d", s.Has(old.Meta.Key), s.Has(recent.Meta.Key), len(res.Removed))
	}
}

// TestGCWhileApplyWaits: an apply waiting for a key another build holds
// gets the object once it is committed, under a lease GC respects.
func TestLeaseAfterBuild(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	key := digest.FromString("built")
	obj, lease, err := s.acquire(ctx, key, nil)
	if err != nil || obj != nil {
		t.Fatalf("acquire a missing key: %v %v", obj, err)
	}
	sc, _ := s.NewScratch(key)
	os.WriteFile(filepath.Join(sc.Data(), "f"), []byte("x"), 0o644)
	if _, err := sc.Commit(Meta{Kind: "files"}); err != nil {
		t.Fatal(err)
	}
	if err := lease.downgrade(); err != nil {
		t.Fatal(err)
	}
	// A second reader shares the lease.
	obj2, lease2, err := s.acquire(ctx, key, nil)
	if err != nil || obj2 == nil {
		t.Fatalf("second reader: %v %v", obj2, err)
	}
	if res, _ := s.GC(time.Now(), GCOptions{MaxSize: 1}); len(res.Busy) != 1 || !s.Has(key) {
		t.Errorf("GC removed a leased object: %+v", res)
	}
	if err := s.Remove(key); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of a leased object: %v", err)
	}
	lease.Release()
	lease2.Release()
	if err := s.Remove(key); err != nil || s.Has(key) {
		t.Errorf("Remove after release: %v", err)
	}
}

// TestRemoteRoundTrip pushes a layer with every kind of file to an OCI
// layout and pulls it into another store: same content digest. An object
// whose recorded content digest does not match its payload is refused.
func TestRemoteRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: device nodes, owners and trusted xattrs")
	}
	ctx := context.Background()
	a, b := newStore(t), newStore(t)
	key := digest.FromString("layer")
	sc, _ := s0(t, a, key)
	d := sc.Data()
	must(t, os.MkdirAll(filepath.Join(d, "etc/deep"), 0o750))
	must(t, os.WriteFile(filepath.Join(d, "etc/file"), []byte("content\n"), 0o640))
	must(t, os.Chown(filepath.Join(d, "etc/file"), 1234, 5678))
	must(t, os.Link(filepath.Join(d, "etc/file"), filepath.Join(d, "etc/deep/hardlink")))
	must(t, os.Symlink("../file", filepath.Join(d, "etc/deep/sym")))
	must(t, unix.Mknod(filepath.Join(d, "whiteout"), unix.S_IFCHR, 0))
	must(t, unix.Setxattr(filepath.Join(d, "etc/deep"), "trusted.overlay.opaque", []byte("y"), 0))
	must(t, unix.Chmod(filepath.Join(d, "etc"), 0o1777))
	f, _ := os.Create(filepath.Join(d, "sparse"))
	f.Truncate(8 << 20)
	f.WriteAt([]byte("end"), 8<<20-3)
	f.Close()
	obj, err := sc.Commit(Meta{Kind: "files", Code: "files/1"})
	must(t, err)

	layout, err := OpenLayout(t.TempDir())
	must(t, err)
	if pushed, err := layout.Push(ctx, a, obj); err != nil || !pushed {
		t.Fatalf("push: %v %v", pushed, err)
	}
	if pushed, err := layout.Push(ctx, a, obj); err != nil || pushed {
		t.Fatalf("second push: %v %v, want nothing pushed", pushed, err)
	}
	got, err := layout.Pull(ctx, b, key, nil)
	must(t, err)
	if got.Meta.Content != obj.Meta.Content {
		t.Errorf("pulled content %s, pushed %s", got.Meta.Content.Short(), obj.Meta.Content.Short())
	}
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(got.Data(), "sparse"), &st))
	if st.Blocks*512 > 1<<20 {
		t.Errorf("the pulled 8 MiB file with 3 bytes of data takes %d bytes on disk", st.Blocks*512)
	}
	if _, err := layout.Pull(ctx, b, digest.FromString("absent"), nil); !errors.Is(err, ErrRemoteMiss) {
		t.Errorf("pull of an absent key: %v", err)
	}

	// An object whose meta records another content digest.
	bad := digest.FromString("bad")
	sc2, _ := s0(t, a, bad)
	must(t, os.WriteFile(filepath.Join(sc2.Data(), "f"), []byte("x"), 0o644))
	badObj, err := sc2.Commit(Meta{Kind: "files"})
	must(t, err)
	badObj.Meta.Content = obj.Meta.Content
	if _, err := layout.Push(ctx, a, badObj); err != nil {
		t.Fatal(err)
	}
	if _, err := layout.Pull(ctx, b, bad, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("pull of an object that does not match its content digest: %v", err)
	}
	if b.Has(bad) {
		t.Error("a corrupt object was committed")
	}
}

func s0(t *testing.T, s *Store, key digest.Digest) (*Scratch, error) {
	t.Helper()
	sc, err := s.NewScratch(key)
	must(t, err)
	return sc, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

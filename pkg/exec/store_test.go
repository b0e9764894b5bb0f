package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgplan/imgplan/pkg/digest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCommitAndGet(t *testing.T) {
	s := newStore(t)
	key := digest.FromString("node")
	if s.Has(key) {
		t.Fatal("empty store has the key")
	}
	if _, err := s.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on an empty store: %v", err)
	}
	sc, err := s.NewScratch(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sc.Data(), "f"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(sc.Dir(), "work"), 0o755); err != nil { // scratch-only
		t.Fatal(err)
	}
	if s.Has(key) {
		t.Fatal("the object exists before commit")
	}
	obj, err := sc.Commit(Meta{Kind: "files", Code: "files/1"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(key) || obj.Meta.Content == "" || obj.Meta.Size == 0 {
		t.Fatalf("after commit: has=%v meta=%+v", s.Has(key), obj.Meta)
	}
	got, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.Content != obj.Meta.Content || got.Meta.Kind != "files" {
		t.Errorf("Get: %+v", got.Meta)
	}
	if b, err := os.ReadFile(filepath.Join(got.Data(), "f")); err != nil || string(b) != "hello" {
		t.Errorf("payload: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.objectDir(key), "work")); !os.IsNotExist(err) {
		t.Errorf("scratch-only content was committed")
	}
	if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) != 0 {
		t.Errorf("scratch areas left after commit: %v", left)
	}
}

// TestStaleFormatReplaced: an object written by an imgplan with another
// object format is not found, and the next commit of its key replaces it.
func TestStaleFormatReplaced(t *testing.T) {
	s := newStore(t)
	key := digest.FromString("stale")
	commit := func(content string) {
		t.Helper()
		sc, err := s.NewScratch(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sc.Data(), "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Commit(Meta{Kind: "files", Code: "files/1"}); err != nil {
			t.Fatal(err)
		}
	}
	commit("old")
	meta := filepath.Join(s.objectDir(key), "meta.json")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	old := []byte(strings.Replace(string(b), ObjectFormat, "imgplan.object.v1", 1))
	if err := os.WriteFile(meta, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if s.Has(key) {
		t.Error("Has: an object of an older format counts as present")
	}
	if _, err := s.Get(key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an older format: %v, want not found", err)
	}
	commit("new")
	obj, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(obj.Data(), "f")); string(b) != "new" {
		t.Errorf("payload after the replacing commit: %q", b)
	}
	if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) != 0 {
		t.Errorf("left in tmp: %v", left)
	}
}

// TestCommitRace: two builders of one key both commit; one object results
// and both get it.
func TestCommitRace(t *testing.T) {
	s := newStore(t)
	key := digest.FromString("race")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := s.NewScratch(key)
			if err == nil {
				err = os.WriteFile(filepath.Join(sc.Data(), "f"), []byte("same"), 0o644)
			}
			if err == nil {
				_, err = sc.Commit(Meta{Kind: "k"})
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(left) != 0 {
		t.Errorf("scratch areas left: %d", len(left))
	}
}

func TestLockWaits(t *testing.T) {
	s := newStore(t)
	key := digest.FromString("lock")
	ctx := context.Background()
	unlock, err := s.Lock(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var waited atomic.Bool
	acquired := make(chan struct{})
	go func() {
		u, err := s.Lock(ctx, key, func() { waited.Store(true) })
		if err == nil {
			u()
		}
		close(acquired)
	}()
	select {
	case <-acquired:
		t.Fatal("second lock acquired while the first is held")
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	select {
	case <-acquired:
	case <-time.After(2 * time.Second):
		t.Fatal("second lock not acquired after release")
	}
	if !waited.Load() {
		t.Error("waiting callback not called")
	}
	// A cancelled wait returns the context's error.
	unlock, _ = s.Lock(ctx, key, nil)
	defer unlock()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(cctx, key, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled lock: %v", err)
	}
}

func TestCleanScratch(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	held, dead := digest.FromString("held"), digest.FromString("dead")
	unlock, err := s.Lock(ctx, held, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := s.NewScratch(held); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewScratch(dead); err != nil {
		t.Fatal(err)
	}
	n, err := s.CleanScratch(ctx)
	if err != nil || n != 1 {
		t.Fatalf("CleanScratch removed %d (%v), want 1", n, err)
	}
	left, _ := os.ReadDir(filepath.Join(s.Root(), "tmp"))
	if len(left) != 1 || filepath.Base(left[0].Name())[:8] != held.Hex()[:8] {
		t.Errorf("left: %v", left)
	}
}

func TestContentDigest(t *testing.T) {
	mk := func(mode os.FileMode, content string, mtime time.Time) digest.Digest {
		dir := t.TempDir()
		p := filepath.Join(dir, "etc", "f")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), mode)
		os.Chmod(p, mode)
		os.Chtimes(p, mtime, mtime)
		d, _, err := ContentDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t0, t1 := time.Unix(1000, 0), time.Unix(2000, 0)
	base := mk(0o644, "abc", t0)
	if mk(0o644, "abc", t1) != base {
		t.Error("mtime changed the content digest")
	}
	if mk(0o600, "abc", t0) == base {
		t.Error("mode not in the content digest")
	}
	if mk(0o644, "abd", t0) == base {
		t.Error("content not in the content digest")
	}
}

// TestContentDigestSparse: a file's digest depends on its content only: a
// sparse file and the same bytes written out in full agree; a byte
// changed anywhere, even deep in a large file, changes it.
func TestContentDigestSparse(t *testing.T) {
	const size = 9<<20 + 123 // several chunks, the last one partial
	mk := func(sparse bool, poke int64) digest.Digest {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, "img"))
		if err != nil {
			t.Fatal(err)
		}
		if sparse {
			f.Truncate(size)
		} else {
			f.Write(make([]byte, size))
		}
		f.WriteAt([]byte("data at 3 MiB"), 3<<20)
		if poke >= 0 {
			f.WriteAt([]byte{1}, poke)
		}
		f.Close()
		d, _, err := ContentDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sparse, full := mk(true, -1), mk(false, -1)
	if sparse != full {
		t.Error("holes and written zeros give different digests")
	}
	for _, off := range []int64{0, 5 << 20, size - 1} {
		if mk(true, off) == sparse {
			t.Errorf("a byte changed at %d was not seen", off)
		}
	}
}

// A payload fsynced at commit is committed with the same content digest
// and size; links and special files are left alone.
func TestCommitSyncOnCommit(t *testing.T) {
	s := newStore(t)
	var metas []Meta
	for i, sync := range []bool{false, true} {
		sc, err := s.NewScratch(digest.FromString(string(rune('a' + i))))
		if err != nil {
			t.Fatal(err)
		}
		if sync {
			sc.SyncOnCommit()
		}
		d := sc.Data()
		if err := os.WriteFile(filepath.Join(d, "artifact"), []byte(strings.Repeat("x", 3<<20)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", "f"), []byte("f"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/nonexistent", filepath.Join(d, "dangling")); err != nil {
			t.Fatal(err)
		}
		obj, err := sc.Commit(Meta{Kind: "ext4", Code: "ext4/1"})
		if err != nil {
			t.Fatalf("sync=%v: %v", sync, err)
		}
		metas = append(metas, obj.Meta)
	}
	if metas[0].Content != metas[1].Content || metas[0].Size != metas[1].Size {
		t.Errorf("without sync %s %d, with %s %d", metas[0].Content, metas[0].Size, metas[1].Content, metas[1].Size)
	}
}

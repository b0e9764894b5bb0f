package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/digest"
)

// DefaultStoreDir is where the store lives unless --cache-dir says otherwise.
const DefaultStoreDir = "/var/cache/imgplan"

// storeVersion names the on-disk layout; a new layout gets a new directory.
const storeVersion = "v1"

// ObjectFormat versions an object's meta.json and what it records (v2:
// content digests are imgplan.content.v2). An object of another format is
// stale: Get reports it not found, and the next build of its key replaces
// it.
const ObjectFormat = "imgplan.object.v2"

// ErrNotFound reports a key the store does not hold.
var ErrNotFound = errors.New("not in the store")

// Store is a content-addressed store of built nodes: one committed object
// per key. An object is built in a scratch directory and renamed into
// place only when complete, so a build killed at any point leaves no
// partial object; a per-key lock makes concurrent builds of one key wait
// for each other instead of building twice.
//
// Layout under <root>/v1:
//
//	objects/<hex>/meta.json   what the object is (Meta)
//	objects/<hex>/data/       the payload: a layer, or an output's files
//	objects/<hex>/used        its mtime is the last use
//	tmp/<hex>.<n>/            scratch areas of builds in progress
//	locks/<hex>               per-key build locks (flock)
//	locks/<hex>.lease         per-key leases: shared while an apply reads it
//	quarantine/<hex>.<n>/     objects cache verify found altered
//	downloads/                package download caches shared by builds
//	records/<name>/<id>.json  the last build of each node of each manifest
type Store struct {
	root string
}

// Meta describes a committed object.
type Meta struct {
	Format  string          `json:"format"`
	Key     digest.Digest   `json:"key"`
	Kind    string          `json:"kind"`
	Code    string          `json:"code"`
	Parents []digest.Digest `json:"parents,omitempty"`
	// Inputs are the node's inputs by role and digest (no host paths).
	Inputs []InputDigest   `json:"inputs,omitempty"`
	Params json.RawMessage `json:"params"`
	// Content is the digest of the payload (see ContentDigest).
	Content digest.Digest `json:"content"`
	Size    int64         `json:"size"`
	// Snapshotter is how a layer was made (overlay or copy); the layer
	// format is the same either way.
	Snapshotter  string    `json:"snapshotter,omitempty"`
	Created      time.Time `json:"created"`
	BuildSeconds float64   `json:"build_seconds"`
}

// InputDigest is an input as metadata records it: no host path.
type InputDigest struct {
	Role   string        `json:"role"`
	Digest digest.Digest `json:"digest"`
}

// Object is a committed object.
type Object struct {
	Meta Meta
	dir  string
}

// Data is the payload directory.
func (o *Object) Data() string { return filepath.Join(o.dir, "data") }

// OpenStore opens (creating if needed) the store at root.
func OpenStore(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{root: filepath.Join(abs, storeVersion)}
	for _, d := range []string{"objects", "tmp", "locks", "downloads", "records"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	return s, nil
}

// Root is the store's versioned directory.
func (s *Store) Root() string { return s.root }

func (s *Store) objectDir(key digest.Digest) string {
	return filepath.Join(s.root, "objects", key.Hex())
}

// Has reports whether key is committed.
func (s *Store) Has(key digest.Digest) bool {
	_, err := s.Get(key)
	return err == nil
}

// Get returns the committed object of key.
func (s *Store) Get(key digest.Digest) (*Object, error) {
	dir := s.objectDir(key)
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key.Short(), ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("object %s: bad meta.json: %w", key.Short(), err)
	}
	if m.Format != ObjectFormat {
		return nil, fmt.Errorf("object %s: %w: format %q, this imgplan writes %q", key.Short(), ErrNotFound, m.Format, ObjectFormat)
	}
	if m.Key != key {
		return nil, fmt.Errorf("object %s: meta.json is for %s", key.Short(), m.Key.Short())
	}
	return &Object{Meta: m, dir: dir}, nil
}

// Touch records a use of key now (for least-recently-used collection).
func (s *Store) Touch(key digest.Digest) {
	p := filepath.Join(s.objectDir(key), "used")
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		if f, err := os.Create(p); err == nil {
			f.Close()
		}
	}
}

// Lock takes the build lock of key, waiting while another process (or
// goroutine) holds it. waiting is called once if the lock is busy.
func (s *Store) Lock(ctx context.Context, key digest.Digest, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.root, "locks", key.Hex()), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", key.Short(), err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Scratch is a directory a build writes an object into. Holding the key's
// lock is required while a scratch area is in use.
type Scratch struct {
	store *Store
	key   digest.Digest
	dir   string
	// sync makes Commit fsync the payload's files (see SyncOnCommit).
	sync bool
}

// SyncOnCommit makes Commit fsync every regular file of the payload while
// it computes the content digest, and commit only once they are on disk.
// It is for builders that defer their tool's own fsync (mkfs.ext4 under
// libeatmydata): the flush then overlaps the hashing instead of
// preceding it, and the object is as durable as the tool made it.
func (sc *Scratch) SyncOnCommit() { sc.sync = true }

// NewScratch creates a scratch area for key; Data() is where the payload
// goes, Dir() has room for anything else the build needs (work dirs, mount
// points) and is removed with it.
func (s *Store) NewScratch(key digest.Digest) (*Scratch, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), key.Hex()+".")
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Scratch{store: s, key: key, dir: dir}, nil
}

// Dir is the scratch area.
func (sc *Scratch) Dir() string { return sc.dir }

// Data is where the payload is built.
func (sc *Scratch) Data() string { return filepath.Join(sc.dir, "data") }

// Commit computes the payload's size and content digest (which must equal
// m.Content when that is set), writes meta.json
// and renames the scratch area into the object directory. Only "data" and
// meta.json move; everything else in the scratch area is removed.
func (sc *Scratch) Commit(m Meta) (*Object, error) {
	m.Format, m.Key = ObjectFormat, sc.key
	synced := make(chan error, 1)
	if sc.sync {
		go func() { synced <- syncFiles(sc.Data()) }()
	} else {
		synced <- nil
	}
	content, size, err := ContentDigest(sc.Data())
	if serr := <-synced; serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", sc.key.Short(), err)
	}
	// A payload that arrives with a recorded digest (pulled, imported)
	// must match it.
	if m.Content != "" && m.Content != content {
		return nil, fmt.Errorf("commit %s: %w: content is %s, recorded %s", sc.key.Short(), ErrCorrupt, content.Short(), m.Content.Short())
	}
	m.Content, m.Size = content, size
	obj := filepath.Join(sc.dir, "object")
	if err := os.Mkdir(obj, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(sc.Data(), filepath.Join(obj, "data")); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(obj, "meta.json"), b, 0o644); err != nil {
		return nil, err
	}
	if f, err := os.Create(filepath.Join(obj, "used")); err == nil {
		f.Close()
	}
	// The rename is the commit point: before it the object does not exist,
	// after it it is complete.
	final := sc.store.objectDir(sc.key)
	err = os.Rename(obj, final)
	if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
		// An object of an older format is replaced (the caller holds the
		// key's lock): moved aside first, so the rename stays the commit.
		if _, gerr := sc.store.Get(sc.key); errors.Is(gerr, ErrNotFound) {
			stale := filepath.Join(sc.dir, "stale")
			if os.Rename(final, stale) == nil {
				err = os.Rename(obj, final)
			}
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			sc.Discard() // someone committed it first; theirs is as good
			return sc.store.Get(sc.key)
		}
		return nil, fmt.Errorf("commit %s: %w", sc.key.Short(), err)
	}
	sc.Discard()
	return &Object{Meta: m, dir: final}, nil
}

// syncFiles fsyncs every regular file under dir.
func syncFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		return nil
	})
}

// Discard removes the scratch area.
func (sc *Scratch) Discard() error { return os.RemoveAll(sc.dir) }

// CleanScratch removes scratch areas left by builds that died: those whose
// key's lock nobody holds. It returns how many it removed.
func (s *Store) CleanScratch(ctx context.Context) (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		hex, _, ok := strings.Cut(e.Name(), ".")
		key, perr := digest.Parse("sha256:" + hex)
		if !ok || perr != nil {
			continue
		}
		f, err := os.OpenFile(filepath.Join(s.root, "locks", key.Hex()), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return n, err
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if err := os.RemoveAll(filepath.Join(s.root, "tmp", e.Name())); err != nil {
				f.Close()
				return n, err
			}
			n++
		}
		f.Close()
	}
	return n, nil
}

// DownloadDir is a shared download cache directory (created on demand).
func (s *Store) DownloadDir(name string) (string, error) {
	d := filepath.Join(s.root, "downloads", name)
	return d, os.MkdirAll(d, 0o755)
}

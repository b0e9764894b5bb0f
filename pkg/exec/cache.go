package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/plan"
)

// Cache management: listing, leases, collection and verification.
//
// Every object has a lock file (locks/<hex>). A build holds it exclusively
// while it makes the object; an apply that reads the object holds it
// shared (a lease) until the apply ends. Collection and verification take
// it exclusively without waiting, so they never touch an object that is
// being built or read: a busy object is skipped.

// Entry is one object as `cache ls` shows it.
type Entry struct {
	Meta     Meta      `json:"meta"`
	LastUsed time.Time `json:"last_used"`
	// Manifests are the names of the manifests whose last build used it.
	Manifests []string `json:"manifests,omitempty"`
}

// List returns every committed object, least recently used first.
func (s *Store) List() ([]Entry, error) {
	dirs, err := os.ReadDir(filepath.Join(s.root, "objects"))
	if err != nil {
		return nil, err
	}
	users := s.users()
	var out []Entry
	for _, d := range dirs {
		key, err := digest.Parse("sha256:" + d.Name())
		if err != nil {
			continue
		}
		obj, err := s.Get(key)
		if err != nil {
			continue // removed meanwhile, or not an object
		}
		e := Entry{Meta: obj.Meta, LastUsed: obj.Meta.Created, Manifests: users[key]}
		if fi, err := os.Stat(filepath.Join(obj.dir, "used")); err == nil {
			e.LastUsed = fi.ModTime()
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.Before(out[j].LastUsed)
		}
		return out[i].Meta.Key < out[j].Meta.Key
	})
	return out, nil
}

// users maps each key to the manifests whose records name it.
func (s *Store) users() map[digest.Digest][]string {
	out := map[digest.Digest][]string{}
	names, _ := os.ReadDir(filepath.Join(s.root, "records"))
	for _, n := range names {
		if !n.IsDir() || n.Name() == "_index" {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(s.root, "records", n.Name()))
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(s.root, "records", n.Name(), f.Name()))
			if err != nil {
				continue
			}
			var r plan.Record
			if json.Unmarshal(b, &r) != nil {
				continue
			}
			if l := out[r.Key]; len(l) == 0 || l[len(l)-1] != n.Name() {
				out[r.Key] = append(l, n.Name())
			}
		}
	}
	return out
}

// Lease is a shared hold on an object: while it is held no collection or
// verification removes the object.
type Lease struct{ f *os.File }

// Release ends the lease.
func (l *Lease) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

func (s *Store) lockFile(key digest.Digest) (*os.File, error) {
	return os.OpenFile(filepath.Join(s.root, "locks", key.Hex()), os.O_CREATE|os.O_RDWR, 0o600)
}

// acquire returns key's object under a lease, or, when the store does not
// hold it, the key's exclusive build lock (obj nil): the caller builds or
// pulls the object and commits it, then calls lease.downgrade. waiting is
// called once if another build holds the key.
func (s *Store) acquire(ctx context.Context, key digest.Digest, waiting func()) (*Object, *Lease, error) {
	f, err := s.lockFile(key)
	if err != nil {
		return nil, nil, err
	}
	told := false
	for {
		if s.Has(key) {
			if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
				if obj, err := s.Get(key); err == nil {
					return obj, &Lease{f}, nil
				}
				unix.Flock(int(f.Fd()), unix.LOCK_UN) // removed meanwhile
			}
		} else if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if obj, err := s.Get(key); err == nil { // committed meanwhile
				if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
					f.Close()
					return nil, nil, err
				}
				return obj, &Lease{f}, nil
			}
			return nil, &Lease{f}, nil
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// downgrade turns the exclusive build lock into a lease once the object
// is committed.
func (l *Lease) downgrade() error {
	return unix.Flock(int(l.f.Fd()), unix.LOCK_SH)
}

// ErrBusy reports an object a build or an apply holds.
var ErrBusy = errors.New("in use")

// tryExclusive takes key's lock exclusively without waiting.
func (s *Store) tryExclusive(key digest.Digest) (*os.File, error) {
	f, err := s.lockFile(key)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", key.Short(), ErrBusy)
		}
		return nil, err
	}
	return f, nil
}

// removeLocked moves an object out of objects/ (the commit point of its
// removal) into dest, then deletes it there. The caller holds its lock.
func (s *Store) removeLocked(key digest.Digest, area string) error {
	dest := filepath.Join(s.root, area)
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dest, key.Hex()+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Rename(s.objectDir(key), tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if area == "tmp" {
		return os.RemoveAll(tmp)
	}
	return nil
}

// Remove deletes key's object unless it is in use.
func (s *Store) Remove(key digest.Digest) error {
	f, err := s.tryExclusive(key)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.removeLocked(key, "tmp")
}

// GCOptions bound a collection.
type GCOptions struct {
	// MaxSize: remove least recently used objects until the objects take
	// at most this many bytes (0: no bound).
	MaxSize int64
	// KeepDuration: remove objects not used for longer than this (0: keep
	// regardless of age).
	KeepDuration time.Duration
	// DryRun reports what would be removed without removing it.
	DryRun bool
}

// GCResult says what a collection did.
type GCResult struct {
	Removed []Entry `json:"removed"`
	Freed   int64   `json:"freed"`
	// Busy are objects that were due for removal but in use.
	Busy []Entry `json:"busy,omitempty"`
	// Size is what the objects take after collection.
	Size int64 `json:"size"`
}

// GC removes objects unused for longer than KeepDuration, then the least
// recently used ones while the store is over MaxSize. An object a build
// or an apply holds is never removed.
func (s *Store) GC(now time.Time, o GCOptions) (*GCResult, error) {
	entries, err := s.List()
	if err != nil {
		return nil, err
	}
	res := &GCResult{}
	for _, e := range entries {
		res.Size += e.Meta.Size
	}
	for _, e := range entries { // least recently used first
		old := o.KeepDuration > 0 && now.Sub(e.LastUsed) > o.KeepDuration
		over := o.MaxSize > 0 && res.Size > o.MaxSize
		if !old && !over {
			continue
		}
		f, err := s.tryExclusive(e.Meta.Key)
		if errors.Is(err, ErrBusy) {
			res.Busy = append(res.Busy, e)
			continue
		}
		if err != nil {
			return res, err
		}
		if !o.DryRun {
			err = s.removeLocked(e.Meta.Key, "tmp")
		}
		f.Close()
		if err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, e)
		res.Freed += e.Meta.Size
		res.Size -= e.Meta.Size
	}
	return res, nil
}

// VerifyResult is one object's verification.
type VerifyResult struct {
	Key    digest.Digest `json:"key"`
	Kind   string        `json:"kind"`
	Status string        `json:"status"` // ok, altered, busy
	Got    digest.Digest `json:"got,omitempty"`
	// Quarantine is where an altered object was moved.
	Quarantine string `json:"quarantine,omitempty"`
}

// Verify recomputes the content digest of every object not in use and
// compares it with the one recorded when it was committed. An altered
// object is moved to quarantine/ so the next apply rebuilds it. report is
// called for each object as it is checked.
func (s *Store) Verify(ctx context.Context, report func(VerifyResult)) (altered int, err error) {
	entries, err := s.List()
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return altered, err
		}
		r := VerifyResult{Key: e.Meta.Key, Kind: e.Meta.Kind}
		f, err := s.tryExclusive(e.Meta.Key)
		if errors.Is(err, ErrBusy) {
			r.Status = "busy"
			report(r)
			continue
		}
		if err != nil {
			return altered, err
		}
		got, _, err := ContentDigest(filepath.Join(s.objectDir(e.Meta.Key), "data"))
		if err != nil || got != e.Meta.Content {
			r.Status, r.Got = "altered", got
			altered++
			if err := s.removeLocked(e.Meta.Key, "quarantine"); err != nil {
				f.Close()
				return altered, err
			}
			r.Quarantine = filepath.Join(s.root, "quarantine")
		} else {
			r.Status = "ok"
		}
		f.Close()
		report(r)
	}
	return altered, nil
}

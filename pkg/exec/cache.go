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
// Every key has two lock files. locks/<hex> is the build lock: a build
// holds it exclusively while it makes the object. locks/<hex>.lease is
// the lease: an apply that reads the object holds it shared until the
// apply ends (a build takes it on what it committed before it lets go of
// the build lock). Collection and verification take both exclusively
// without waiting, so they never touch an object that is being built or
// read: a busy object is skipped.

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
// verification removes the object. It is a shared flock on
// locks/<hex>.lease, a file apart from the build lock so that a build can
// take the lease on what it committed before it lets go of the build
// lock: at no moment is the object unheld.
type Lease struct {
	lease *os.File
	build *os.File // the build lock, while the caller builds
}

// Release ends the lease (and the build lock if still held).
func (l *Lease) Release() {
	if l == nil {
		return
	}
	for _, f := range []**os.File{&l.lease, &l.build} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

func (s *Store) lockFile(key digest.Digest) (*os.File, error) {
	return os.OpenFile(filepath.Join(s.root, "locks", key.Hex()), os.O_CREATE|os.O_RDWR, 0o600)
}

func (s *Store) leaseFile(key digest.Digest) (*os.File, error) {
	return os.OpenFile(filepath.Join(s.root, "locks", key.Hex()+".lease"), os.O_CREATE|os.O_RDWR, 0o600)
}

// acquire returns key's object under a lease, or, when the store does not
// hold it, a Lease holding the key's exclusive build lock (obj nil): the
// caller builds or pulls the object, commits it, then calls
// Lease.downgrade. waiting is called once if another build holds the key.
func (s *Store) acquire(ctx context.Context, key digest.Digest, waiting func()) (*Object, *Lease, error) {
	lf, err := s.leaseFile(key)
	if err != nil {
		return nil, nil, err
	}
	bf, err := s.lockFile(key)
	if err != nil {
		lf.Close()
		return nil, nil, err
	}
	told := false
	for {
		if s.Has(key) {
			if unix.Flock(int(lf.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
				if obj, err := s.Get(key); err == nil {
					bf.Close()
					return obj, &Lease{lease: lf}, nil
				}
				unix.Flock(int(lf.Fd()), unix.LOCK_UN) // removed meanwhile
			}
			// else: being collected or verified right now; look again.
		} else if unix.Flock(int(bf.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if !s.Has(key) {
				return nil, &Lease{lease: lf, build: bf}, nil
			}
			unix.Flock(int(bf.Fd()), unix.LOCK_UN) // committed meanwhile
			continue
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			lf.Close()
			bf.Close()
			return nil, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// downgrade takes the lease on the object just committed, then lets go of
// the build lock.
func (l *Lease) downgrade() error {
	if err := unix.Flock(int(l.lease.Fd()), unix.LOCK_SH); err != nil {
		return err
	}
	if l.build != nil {
		l.build.Close()
		l.build = nil
	}
	return nil
}

// ErrBusy reports an object a build or an apply holds.
var ErrBusy = errors.New("in use")

// held is an object's build lock and lease lock, both exclusive.
type held struct{ build, lease *os.File }

func (h held) Close() {
	h.build.Close()
	h.lease.Close()
}

// tryExclusive takes key's build lock and lease lock exclusively, without
// waiting: it fails with ErrBusy while a build or any reader holds it.
func (s *Store) tryExclusive(key digest.Digest) (held, error) {
	bf, err := s.lockFile(key)
	if err != nil {
		return held{}, err
	}
	lf, err := s.leaseFile(key)
	if err != nil {
		bf.Close()
		return held{}, err
	}
	h := held{bf, lf}
	for _, f := range []*os.File{bf, lf} {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			h.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return held{}, fmt.Errorf("%s: %w", key.Short(), ErrBusy)
			}
			return held{}, err
		}
	}
	return h, nil
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

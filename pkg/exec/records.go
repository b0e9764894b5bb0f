package exec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/plan"
)

// Records of the last build of every node of every manifest, by manifest
// name and node ID, so that plans can say what changed since.

func (s *Store) recordPath(name, id string) string {
	return filepath.Join(s.root, "records", name, safeName(id)+".json")
}

// safeName makes a node ID a file name ("output:a/b.img" has both a colon
// and a slash).
func safeName(id string) string {
	return strings.NewReplacer("/", "%2F", ":", "%3A").Replace(id)
}

// SaveRecords remembers every node of p as built.
func (s *Store) SaveRecords(p *plan.Plan) error {
	dir := filepath.Join(s.root, "records", p.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range p.Nodes {
		b, err := json.Marshal(plan.RecordOf(p, n))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(s.recordPath(p.Name, n.ID), b); err != nil {
			return err
		}
	}
	return nil
}

// Record returns the last record of a node, or nil.
func (s *Store) Record(name, id string) *plan.Record {
	b, err := os.ReadFile(s.recordPath(name, id))
	if err != nil {
		return nil
	}
	var r plan.Record
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// Status implements plan.Cache: a node is cached when its key is stored;
// otherwise the reason compares it with the node's last record.
func (s *Store) Status(p *plan.Plan, n *plan.Node) (plan.Status, string) {
	if s.Has(n.Key) {
		return plan.Cached, ""
	}
	return plan.ToBuild, plan.Explain(p, n, s.Record(p.Name, n.ID))
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// indexRecord is the last digest fetched for a repository index URL.
type indexRecord struct {
	URL    string        `json:"url"`
	Digest digest.Digest `json:"digest"`
}

func (s *Store) indexPath(url string) string {
	return filepath.Join(s.root, "records", "_index", digest.FromString(url).Hex()+".json")
}

func (s *Store) saveIndex(url string, d digest.Digest) error {
	if err := os.MkdirAll(filepath.Dir(s.indexPath(url)), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(indexRecord{URL: url, Digest: d})
	return writeFileAtomic(s.indexPath(url), b)
}

func (s *Store) lastIndex(url string) (digest.Digest, error) {
	b, err := os.ReadFile(s.indexPath(url))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	var r indexRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return "", err
	}
	return r.Digest, nil
}

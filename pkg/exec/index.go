package exec

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/imgplan/imgplan/pkg/digest"
)

// Indexes fetches repository indexes (InRelease, repomd.xml) at plan time
// and returns their digests, which become inputs of the stages that
// install from those repositories. Every digest fetched is remembered in
// the store; offline, the remembered digest is used instead.
type Indexes struct {
	store   *Store
	offline bool
	client  *http.Client

	mu      sync.Mutex
	seen    map[string]digest.Digest
	unknown []string
}

// Unknown lists the indexes that, offline, were never fetched: their
// digests are not in the keys.
func (ix *Indexes) Unknown() []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return slices.Clone(ix.unknown)
}

// NewIndexes returns a fetcher; offline never touches the network.
func NewIndexes(store *Store, offline bool) *Indexes {
	return &Indexes{
		store:   store,
		offline: offline,
		client:  &http.Client{Timeout: 60 * time.Second},
		seen:    map[string]digest.Digest{},
	}
}

// Digest returns the digest of the index at rawURL ("" offline when it was
// never fetched).
func (ix *Indexes) Digest(ctx context.Context, rawURL string) (digest.Digest, error) {
	ix.mu.Lock()
	d, ok := ix.seen[rawURL]
	ix.mu.Unlock()
	if ok {
		return d, nil
	}
	if ix.offline {
		d, err := ix.store.lastIndex(rawURL)
		if errors.Is(err, ErrNotFound) {
			// Never fetched: the keys leave this index out, and say so.
			ix.mu.Lock()
			if !slices.Contains(ix.unknown, rawURL) {
				ix.unknown = append(ix.unknown, rawURL)
			}
			ix.mu.Unlock()
			return "", nil
		}
		return d, err
	}
	d, err := ix.fetch(ctx, rawURL)
	if err != nil {
		return "", err
	}
	if err := ix.store.saveIndex(rawURL, d); err != nil {
		return "", err
	}
	ix.mu.Lock()
	ix.seen[rawURL] = d
	ix.mu.Unlock()
	return d, nil
}

func (ix *Indexes) fetch(ctx context.Context, rawURL string) (digest.Digest, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	var body io.ReadCloser
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return "", err
		}
		body = f
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return "", err
		}
		resp, err := ix.client.Do(req)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return "", fmt.Errorf("HTTP %s", resp.Status)
		}
		body = resp.Body
	default:
		return "", fmt.Errorf("unsupported URL scheme %q", u.Scheme)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(body, 256<<20)); err != nil {
		return "", err
	}
	return digest.FromHash(h), nil
}

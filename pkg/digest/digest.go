// Package digest names content by its SHA-256 and hashes local inputs
// (single files and whole directory trees) with a per-process cache.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Digest is a content address, "sha256:<64 hex digits>".
type Digest string

const prefix = "sha256:"

// ErrInvalid reports a string that is not a well-formed digest.
var ErrInvalid = errors.New("invalid digest")

// FromBytes returns the digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest(prefix + hex.EncodeToString(sum[:]))
}

// FromString returns the digest of s.
func FromString(s string) Digest { return FromBytes([]byte(s)) }

// FromHash returns the digest a finished SHA-256 hash holds.
func FromHash(h hash.Hash) Digest { return Digest(prefix + hex.EncodeToString(h.Sum(nil))) }

// Parse checks s and returns it as a Digest.
func Parse(s string) (Digest, error) {
	d := Digest(s)
	if err := d.Validate(); err != nil {
		return "", err
	}
	return d, nil
}

// Validate reports whether d is well formed.
func (d Digest) Validate() error {
	h, ok := strings.CutPrefix(string(d), prefix)
	if !ok || len(h) != sha256.Size*2 {
		return fmt.Errorf("%w: %q", ErrInvalid, string(d))
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return fmt.Errorf("%w: %q", ErrInvalid, string(d))
	}
	return nil
}

// Hex is the digest without its algorithm prefix.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), prefix) }

// Short is the first 12 hex digits, enough to tell nodes apart on screen.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (d Digest) String() string { return string(d) }

// UnmarshalText accepts only well-formed digests.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// MarshalText writes the digest as its string form.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d), nil }

package exec

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/outputs"
)

// Export and import move objects between stores that share no network:
// the objects are written as an OCI image layout, the same artifacts a
// registry holds (a directory, or that directory as a tar file).

// Export writes every object of s (or those of keys, when given) to an OCI
// image layout at dest: a directory, or a tar file when asFile. It
// returns how many objects it wrote.
func (s *Store) Export(ctx context.Context, dest string, asFile bool, keys []digest.Digest) (int, error) {
	dir := dest
	if asFile {
		tmp, err := os.MkdirTemp(s.root+"/tmp", "export.")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	layout, err := OpenLayout(dir)
	if err != nil {
		return 0, err
	}
	if len(keys) == 0 {
		entries, err := s.List()
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			keys = append(keys, e.Meta.Key)
		}
	}
	n := 0
	for _, key := range keys {
		if !s.Has(key) {
			return n, fmt.Errorf("export %s: %w", key.Short(), ErrNotFound)
		}
		obj, lease, err := s.acquire(ctx, key, nil)
		if err != nil {
			return n, err
		}
		if obj == nil { // removed meanwhile
			lease.Release()
			return n, fmt.Errorf("export %s: %w", key.Short(), ErrNotFound)
		}
		pushed, err := layout.Push(ctx, s, obj)
		lease.Release()
		if err != nil {
			return n, err
		}
		if pushed {
			n++
		}
	}
	if !asFile {
		return n, nil
	}
	f, err := os.Create(dest)
	if err != nil {
		return n, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = outputs.WriteLayerTar(bw, dir)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dest)
	}
	return n, err
}

// Import commits to s every object of the OCI image layout at src (a
// directory, or a tar file) that s does not hold, each verified as a pull
// from a registry is. It returns how many objects it added.
func (s *Store) Import(ctx context.Context, src string) (int, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return 0, err
	}
	var r *Remote
	if fi.IsDir() {
		r, err = OpenLayout(src)
	} else {
		r, err = OpenLayoutTar(ctx, src)
	}
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", src, err)
	}
	keys, err := r.Keys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		obj, lease, err := s.acquire(ctx, key, nil)
		if err != nil {
			return n, err
		}
		if obj == nil {
			_, err = r.Pull(ctx, s, key, nil)
			if err == nil {
				n++
			}
		}
		lease.Release()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

package exec

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/fsroot"
	"github.com/imgplan/imgplan/pkg/outputs"
	"github.com/imgplan/imgplan/pkg/stages"
)

// Media types of an object pushed to an OCI repository: an artifact whose
// config is the object's meta.json and whose one layer is its payload as a
// zstd-compressed tar.
const (
	ArtifactType   = "application/vnd.imgplan.object.v1"
	MetaMediaType  = "application/vnd.imgplan.object.meta.v1+json"
	LayerMediaType = "application/vnd.imgplan.object.layer.v1.tar+zstd"
)

// ErrRemoteMiss reports a key the remote cache does not hold.
var ErrRemoteMiss = errors.New("not in the remote cache")

// ErrCorrupt reports a pulled object that does not match its digests.
var ErrCorrupt = errors.New("corrupt")

// Remote is a cache of objects in an OCI repository, each object an
// artifact tagged with its key's hex digits. The same code serves a
// registry (--cache-from, --cache-to) and an OCI image layout directory
// (cache export, cache import).
type Remote struct {
	name   string
	target oras.ReadOnlyTarget
	layout *oci.Store // set for a writable layout directory
}

// Name is the repository as given.
func (r *Remote) Name() string { return r.name }

// OpenRemote opens a repository in a registry: "host[:port]/path". An
// "http://" prefix talks plain HTTP (a registry on loopback); otherwise
// HTTPS. Credentials come from the docker config file (DOCKER_CONFIG or
// ~/.docker/config.json, with its credential helpers).
func OpenRemote(ref string) (*Remote, error) {
	plain := false
	name := ref
	if s, ok := strings.CutPrefix(ref, "http://"); ok {
		name, plain = s, true
	} else if s, ok := strings.CutPrefix(ref, "https://"); ok {
		name = s
	}
	repo, err := remote.NewRepository(name)
	if err != nil {
		return nil, fmt.Errorf("cache repository %q: %w", ref, err)
	}
	repo.PlainHTTP = plain
	client := &auth.Client{Client: retry.DefaultClient, Cache: auth.NewCache()}
	creds, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	client.Credential = credentials.Credential(creds)
	repo.Client = client
	return &Remote{name: ref, target: repo}, nil
}

// OpenLayout opens (creating if needed) an OCI image layout directory.
func OpenLayout(dir string) (*Remote, error) {
	st, err := oci.New(dir)
	if err != nil {
		return nil, err
	}
	return &Remote{name: dir, target: st, layout: st}, nil
}

// OpenLayoutTar opens an OCI image layout in a tar file, read-only.
func OpenLayoutTar(ctx context.Context, file string) (*Remote, error) {
	st, err := oci.NewFromTar(ctx, file)
	if err != nil {
		return nil, err
	}
	return &Remote{name: file, target: st}, nil
}

func tagOf(key digest.Digest) string { return key.Hex() }

// Has reports whether the repository holds key.
func (r *Remote) Has(ctx context.Context, key digest.Digest) (bool, error) {
	_, err := r.target.Resolve(ctx, tagOf(key))
	if errors.Is(err, errdef.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Keys lists the objects of the repository.
func (r *Remote) Keys(ctx context.Context) ([]digest.Digest, error) {
	lister, ok := r.target.(interface {
		Tags(ctx context.Context, last string, fn func(tags []string) error) error
	})
	if !ok {
		return nil, fmt.Errorf("%s cannot list its tags", r.name)
	}
	var keys []digest.Digest
	err := lister.Tags(ctx, "", func(tags []string) error {
		for _, t := range tags {
			if k, err := digest.Parse("sha256:" + t); err == nil {
				keys = append(keys, k)
			}
		}
		return nil
	})
	return keys, err
}

// Push uploads obj unless the repository holds it already. The caller
// holds a lease on obj.
func (r *Remote) Push(ctx context.Context, s *Store, obj *Object) (pushed bool, err error) {
	key := obj.Meta.Key
	t, ok := r.target.(oras.Target)
	if !ok {
		return false, fmt.Errorf("push %s: %s is read-only", key.Short(), r.name)
	}
	if ok, err := r.Has(ctx, key); err != nil || ok {
		return false, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("push %s to %s: %w", key.Short(), r.name, err)
		}
	}()
	// The layer goes through a file: a registry wants its size and digest
	// before the upload.
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), key.Hex()+".push-")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	counter := &countWriter{w: io.MultiWriter(f, h)}
	zw, err := zstd.NewWriter(counter, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return false, err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	if err := outputs.WriteLayerTar(bw, obj.Data()); err != nil {
		return false, err
	}
	if err := bw.Flush(); err != nil {
		return false, err
	}
	if err := zw.Close(); err != nil {
		return false, err
	}
	layer := ocispec.Descriptor{
		MediaType: LayerMediaType,
		Digest:    godigest.NewDigest(godigest.SHA256, h),
		Size:      counter.n,
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	if err := pushBlob(ctx, t, layer, f); err != nil {
		return false, err
	}
	meta, err := json.Marshal(obj.Meta)
	if err != nil {
		return false, err
	}
	config := content.NewDescriptorFromBytes(MetaMediaType, meta)
	if err := pushBlob(ctx, t, config, strings.NewReader(string(meta))); err != nil {
		return false, err
	}
	desc, err := oras.PackManifest(ctx, t, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		ConfigDescriptor: &config,
		Layers:           []ocispec.Descriptor{layer},
		ManifestAnnotations: map[string]string{
			"org.imgplan.key":            string(key),
			"org.imgplan.kind":           obj.Meta.Kind,
			ocispec.AnnotationCreated:    obj.Meta.Created.UTC().Format("2006-01-02T15:04:05Z"),
			"org.imgplan.content-digest": string(obj.Meta.Content),
		},
	})
	if err != nil {
		return false, err
	}
	if err := t.Tag(ctx, desc, tagOf(key)); err != nil {
		return false, err
	}
	if r.layout != nil {
		return true, r.layout.SaveIndex()
	}
	return true, nil
}

func pushBlob(ctx context.Context, t oras.Target, desc ocispec.Descriptor, rd io.Reader) error {
	if ok, err := t.Exists(ctx, desc); err == nil && ok {
		return nil
	}
	err := t.Push(ctx, desc, rd)
	if errors.Is(err, errdef.ErrAlreadyExists) {
		return nil
	}
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Pull downloads key's object and commits it to s. Every blob is checked
// against its digest as it is read, and the unpacked payload against the
// content digest recorded when it was built; on any mismatch nothing is
// committed and the error wraps ErrCorrupt. The caller holds key's build
// lock. A key the repository lacks is ErrRemoteMiss. found, if not nil,
// is called when the repository turns out to hold key, before the download.
func (r *Remote) Pull(ctx context.Context, s *Store, key digest.Digest, found func()) (obj *Object, err error) {
	desc, err := r.target.Resolve(ctx, tagOf(key))
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, ErrRemoteMiss
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s from %s: %w", key.Short(), r.name, err)
	}
	if found != nil {
		found()
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("pull %s from %s: %w", key.Short(), r.name, err)
		}
	}()
	mb, err := content.FetchAll(ctx, r.target, desc)
	if err != nil {
		return nil, corrupt(err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if man.Config.MediaType != MetaMediaType || len(man.Layers) != 1 || man.Layers[0].MediaType != LayerMediaType {
		return nil, fmt.Errorf("%w: not an imgplan object (artifact type %q)", ErrCorrupt, man.ArtifactType)
	}
	cb, err := content.FetchAll(ctx, r.target, man.Config)
	if err != nil {
		return nil, corrupt(err)
	}
	var meta Meta
	if err := json.Unmarshal(cb, &meta); err != nil {
		return nil, fmt.Errorf("%w: meta: %v", ErrCorrupt, err)
	}
	if meta.Format != ObjectFormat || meta.Key != key || meta.Content == "" {
		return nil, fmt.Errorf("%w: meta is for %s (%s)", ErrCorrupt, meta.Key.Short(), meta.Format)
	}
	sc, err := s.NewScratch(key)
	if err != nil {
		return nil, err
	}
	defer sc.Discard()
	if err := unpackLayer(ctx, r.target, man.Layers[0], sc.Data()); err != nil {
		return nil, err
	}
	if err := punchZeros(sc.Data()); err != nil {
		return nil, err
	}
	return sc.Commit(meta)
}

func corrupt(err error) error {
	if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// unpackLayer fetches a layer blob and unpacks it into dir, verifying the
// blob's digest.
func unpackLayer(ctx context.Context, t oras.ReadOnlyTarget, layer ocispec.Descriptor, dir string) error {
	rc, err := t.Fetch(ctx, layer)
	if err != nil {
		return err
	}
	defer rc.Close()
	vr := content.NewVerifyReader(bufio.NewReaderSize(rc, 1<<20), layer)
	zr, err := zstd.NewReader(vr)
	if err != nil {
		return err
	}
	defer zr.Close()
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	untarErr := stages.Untar(zr, root)
	if untarErr == nil {
		_, untarErr = io.Copy(io.Discard, zr) // the tar's padding
	}
	if _, err := io.Copy(io.Discard, vr); err != nil && untarErr == nil {
		untarErr = err
	}
	// A digest mismatch explains any unpacking error that came before it.
	if err := vr.Verify(); err != nil {
		return fmt.Errorf("%w: layer %s: %w", ErrCorrupt, layer.Digest, err)
	}
	if untarErr != nil {
		return fmt.Errorf("layer %s: %w", layer.Digest, untarErr)
	}
	return nil
}

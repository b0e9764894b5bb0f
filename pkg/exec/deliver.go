package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/manifest"
	"github.com/imgplan/imgplan/pkg/outputs"
	"github.com/imgplan/imgplan/pkg/plan"
	"github.com/imgplan/imgplan/pkg/stages"
)

// The package list and content manifest written beside the outputs (from
// the tree node), and the state file that remembers what deliver wrote, so
// an unchanged output is not copied again.
const (
	PackagesFile = manifest.PackagesFile
	ContentFile  = manifest.ContentFile
	stateFile    = manifest.StateFile
)

type delivered struct {
	Key   digest.Digest `json:"key"`
	Ino   uint64        `json:"ino"`
	Size  int64         `json:"size"`
	Mtime int64         `json:"mtime"`
}

// deliver copies each output's artifact from the store to outDir/<path>.
// Outputs are copied, never hard-linked: users boot and modify them, and a
// shared inode would corrupt the store. An output already there, with the
// inode, size and time recorded when it was written for the same key, is
// left alone.
func deliver(p *plan.Plan, objs map[string]*Object, outDir string) ([]OutputReport, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	state := map[string]delivered{}
	if b, err := os.ReadFile(filepath.Join(outDir, stateFile)); err == nil {
		json.Unmarshal(b, &state) //nolint:errcheck // a bad state file only costs a copy
	}
	// What goes out: every output's artifact, and beside them the tree's
	// package list and content manifest.
	type item struct {
		path, src string
		key       digest.Digest
	}
	var items []item
	for _, n := range p.Nodes {
		switch {
		case n.Output != "":
			items = append(items, item{n.Output, filepath.Join(objs[n.ID].Data(), outputs.Artifact), n.Key})
		case n.Kind == stages.KindTree:
			items = append(items,
				item{PackagesFile, filepath.Join(objs[n.ID].Data(), stages.PackagesFile), n.Key},
				item{ContentFile, filepath.Join(objs[n.ID].Data(), stages.ContentFile), n.Key})
		}
	}
	var reps []OutputReport
	for _, it := range items {
		src, dst := it.src, filepath.Join(outDir, it.path)
		rep := OutputReport{Path: it.path, Key: it.key}
		if s, ok := state[it.path]; ok && s.Key == it.key && unchanged(dst, s) {
			rep.Size = s.Size
			reps = append(reps, rep)
			continue
		}
		if err := copyArtifact(src, dst); err != nil {
			return nil, fmt.Errorf("output %s: %w", it.path, err)
		}
		fi, err := os.Lstat(dst)
		if err != nil {
			return nil, err
		}
		st := fi.Sys().(*syscall.Stat_t)
		size := fi.Size()
		if fi.IsDir() {
			if size, err = diskUsage(dst); err != nil {
				return nil, err
			}
		}
		state[it.path] = delivered{Key: it.key, Ino: st.Ino, Size: size, Mtime: fi.ModTime().UnixNano()}
		rep.Size, rep.Copied = size, true
		reps = append(reps, rep)
	}
	b, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return nil, err
	}
	return reps, writeFileAtomic(filepath.Join(outDir, stateFile), b)
}

// unchanged reports whether dst is what deliver wrote there: the same
// inode and time (and, for a file, size). A directory's content is not
// checked: users who edit a delivered tree get it back with --out elsewhere.
func unchanged(dst string, s delivered) bool {
	fi, err := os.Lstat(dst)
	if err != nil {
		return false
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Ino == s.Ino && fi.ModTime().UnixNano() == s.Mtime && (fi.IsDir() || fi.Size() == s.Size)
}

// copyArtifact copies a file or directory to dst through a temporary name
// beside it, so dst is never half-written; cp keeps holes sparse and
// reflinks where the filesystem can.
func copyArtifact(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".imgplan-tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	cmd := exec.Command("cp", "-a", "--reflink=auto", "--sparse=always", "--", src, tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("cp: %w: %s", err, b)
	}
	if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, dst)
}

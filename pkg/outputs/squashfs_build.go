package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { Squashfs.Build = buildSquashfs }

// buildSquashfs runs mksquashfs on the tree. -reproducible (its default)
// makes the bytes independent of thread count and source inode order, and
// SOURCE_DATE_EPOCH (set for every command) makes it clamp file times and
// use the epoch as the creation time.
func buildSquashfs(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p SquashfsParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	return mksquashfs(ctx, env, ArtifactPath(env), p)
}

// mksquashfs writes the tree as a squashfs image at dst.
func mksquashfs(ctx context.Context, env stages.Env, dst string, p SquashfsParams) error {
	argv := []string{
		"mksquashfs", env.Root().Dir(), dst,
		"-noappend", "-no-progress", "-quiet", "-reproducible",
		"-comp", p.Compression, "-b", strconv.FormatInt(p.BlockSize, 10),
	}
	if p.Level != nil {
		argv = append(argv, "-Xcompression-level", strconv.Itoa(*p.Level))
	}
	if err := env.RunHost(ctx, argv, stages.RunOptions{}); err != nil {
		return fmt.Errorf("mksquashfs: %w", err)
	}
	return nil
}

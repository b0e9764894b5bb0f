package outputs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imgplan/imgplan/pkg/stages"
)

func init() {
	Raw.Build = buildRaw
	Qcow2.Build, Vmdk.Build, Vhd.Build = buildConvert, buildConvert, buildConvert
}

// diskArtifact is the disk image a disk output is made from.
func diskArtifact(env stages.Env) (string, error) {
	p := filepath.Join(env.ParentData(0), Artifact)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the disk image: %w", err)
	}
	return p, nil
}

// buildRaw copies the disk, keeping its holes (and sharing its blocks
// where the filesystem can).
func buildRaw(ctx context.Context, env stages.Env, _ json.RawMessage) error {
	src, err := diskArtifact(env)
	if err != nil {
		return err
	}
	return env.RunHost(ctx, []string{"cp", "--reflink=auto", "--sparse=always", "--", src, ArtifactPath(env)}, stages.RunOptions{})
}

// buildConvert converts the disk with qemu-img convert.
func buildConvert(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p ConvertParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	src, err := diskArtifact(env)
	if err != nil {
		return err
	}
	argv := []string{"qemu-img", "convert", "-q", "-f", "raw", "-O", p.Format}
	if p.Compress {
		argv = append(argv, "-c")
	}
	if p.Subformat != "" {
		argv = append(argv, "-o", "subformat="+p.Subformat)
	}
	if p.Format == "vpc" {
		// Keep the disk's exact size rather than rounding it to CHS.
		argv = append(argv, "-o", "force_size=on")
	}
	return env.RunHost(ctx, append(argv, src, ArtifactPath(env)), stages.RunOptions{})
}

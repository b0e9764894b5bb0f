package outputs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { Tar.Build = buildTar }

func buildTar(_ context.Context, env stages.Env, raw json.RawMessage) error {
	var p ArchiveParams
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	f, err := os.Create(ArtifactPath(env))
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw, err := compressor(bw, p.Compression, p.Level)
	if err != nil {
		return err
	}
	if err := WriteTar(cw, env.Root().Dir(), env.Epoch()); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor wraps w. Every compressor is configured to give the same
// bytes for the same input on any machine: no names or times in gzip
// headers, one zstd encoder goroutine, CRC32 checks in xz (which the
// kernel's decoders also accept).
func compressor(w io.Writer, compression string, level *int) (io.WriteCloser, error) {
	switch compression {
	case "none", "":
		return nopCloser{w}, nil
	case "gzip":
		l := gzip.DefaultCompression
		if level != nil {
			l = *level
		}
		return gzip.NewWriterLevel(w, l)
	case "zstd":
		l := zstd.SpeedDefault
		if level != nil {
			l = zstd.EncoderLevelFromZstd(*level)
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1))
	case "xz":
		return xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
	}
	return nil, fmt.Errorf("unknown compression %q", compression)
}

package exec

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// punchZeros turns the all-zero 1 MiB chunks of every regular file under
// dir into holes, keeping the files' times. A tar stream has no holes, so
// an unpacked disk image would otherwise take its full size; the content
// digest counts a zero chunk and a hole alike, so nothing it sees changes.
func punchZeros(dir string) error {
	buf := make([]byte, chunkSize)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() < chunkSize {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink > 1 {
			return nil // times of other names; rare for large files
		}
		return punchFile(p, fi, buf)
	})
}

func punchFile(p string, fi fs.FileInfo, buf []byte) error {
	f, err := os.OpenFile(p, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	punched := false
	for off := int64(0); off+chunkSize <= fi.Size(); off += chunkSize {
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if !bytes.Equal(buf, zeroChunk) {
			continue
		}
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, chunkSize)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil // the file system keeps no holes
		}
		if err != nil {
			return err
		}
		punched = true
	}
	if !punched {
		return nil
	}
	st := fi.Sys().(*syscall.Stat_t)
	ts := []unix.Timespec{unix.Timespec(st.Atim), unix.Timespec(st.Mtim)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

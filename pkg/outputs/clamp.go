package outputs

import (
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// clamp returns t, or the epoch if t is later: "clamping" in the sense of
// reproducible-builds.org, so files older than the epoch keep their times.
func clamp(t time.Time, epoch int64) time.Time {
	if e := time.Unix(epoch, 0); t.After(e) {
		return e
	}
	return t
}

// clampTree clamps the modification and access times of everything under
// dir (symlinks themselves, not their targets) to the epoch.
func clampTree(dir string, epoch int64) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p) // after their entries
			return nil
		}
		return clampOne(p, epoch)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := clampOne(dirs[i], epoch); err != nil {
			return err
		}
	}
	return nil
}

func clampOne(p string, epoch int64) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	t := clamp(fi.ModTime(), epoch)
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

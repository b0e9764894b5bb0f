package fsroot

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// race runs attackers and victims concurrently for d. Attackers report
// whether they changed the tree, victims whether their operation succeeded;
// it fails the test if either side barely ran, which would prove nothing.
func race(t *testing.T, d time.Duration, attackers, victims []func() bool) {
	t.Helper()
	var stop atomic.Bool
	var swaps, ok, failed atomic.Int64
	var wg sync.WaitGroup
	for _, a := range attackers {
		wg.Go(func() {
			for !stop.Load() {
				if a() {
					swaps.Add(1)
				}
			}
		})
	}
	for _, v := range victims {
		wg.Go(func() {
			for !stop.Load() {
				if v() {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	// At least d, and on a loaded machine longer (up to 10 s) until both
	// sides have run often enough for the race to mean something.
	start := time.Now()
	time.Sleep(d)
	for (swaps.Load() < 100 || ok.Load() < 100) && time.Since(start) < 10*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d swaps, %d operations succeeded, %d failed", swaps.Load(), ok.Load(), failed.Load())
	if swaps.Load() < 100 || ok.Load() < 100 {
		t.Fatal("the race barely ran; it proves nothing")
	}
}

// TestRaceSymlinkSwap: while attackers atomically exchange directories in
// the root with symlinks to the sentinel (absolute and as a ".." chain),
// every write operation keeps writing into those directories. Whatever each
// write hits must stay inside the root; the fixture checks the sentinel.
// Bounded to 1.5 s in two phases, so that on a small machine each attacker
// really runs alongside its victim.
func TestRaceSymlinkSwap(t *testing.T) {
	f := adversarial(t)
	build(t, f.root, map[string]ent{
		"d1":    dir(0o755),
		"swap1": link(f.sentinel),
		"d2":    dir(0o755),
		"swap2": link(strings.Repeat("../", 16) + f.sentinel[1:]),
	})
	src := srcTree(t, map[string]ent{"sub/file": file("copied", 0o644), "l": link(f.sentinel)})

	t.Run("directory swapped under writers", func(t *testing.T) {
		var attackers []func() bool
		for i := 1; i <= 2; i++ {
			a, b := f.in(fmt.Sprint("d", i)), f.in(fmt.Sprint("swap", i))
			attackers = append(attackers, func() bool {
				return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE) == nil
			})
		}
		stamp := time.Unix(1, 0)
		var victims []func() bool
		for w := range 2 {
			d := fmt.Sprintf("/d%d", w+1)
			ops := []func() error{
				func() error {
					return f.r.WriteFile(d+"/file", strings.NewReader("raced"), WriteOptions{Perm: 0o4777, UID: 1, GID: 1})
				},
				func() error {
					return f.r.WriteFile(d+"/file", strings.NewReader("raced"), WriteOptions{Perm: 0o644, FollowSymlink: true})
				},
				func() error {
					return f.r.WriteFile(d+"/n/new", strings.NewReader("raced"), WriteOptions{Perm: 0o644, MkdirParents: true})
				},
				func() error { return f.r.MkdirAll(d+"/sub/m/n", 0o777) },
				func() error { return f.r.Mkdir(d+"/sub", 0o777, 9, 9) },
				func() error { return f.r.Symlink("/x", d+"/file") },
				func() error { return f.r.Chmod(d+"/file", 0o777) },
				func() error { return f.r.Chmod(d+"/sub", 0o777) },
				func() error { return f.r.Lchown(d+"/sub", 9, 9) },
				func() error { return f.r.Lutimes(d+"/sub", stamp, stamp) },
				func() error { return f.r.Rename(d+"/file", d+"/renamed") },
				func() error { return f.r.Rename(d+"/sub/inner", d+"/stolen") },
				func() error { return f.r.RemoveAll(d + "/sub") },
				func() error { return f.r.RemoveAll(d + "/renamed") },
				func() error { return f.r.CopyTree(src, d, 9, 9) },
				func() error { return f.r.Link(d+"/file", d+"/hard") },
				func() error { return f.r.RemoveAll(d + "/hard") },
				func() error { return f.r.Mknod(d+"/fifo", fs.ModeNamedPipe|0o666, 0, 0) },
				func() error { return f.r.RemoveAll(d + "/fifo") },
				func() error { return f.r.Lsetxattr(d+"/sub", "trusted.raced", []byte("v")) },
			}
			i := 0
			victims = append(victims, func() bool {
				i++
				return ops[i%len(ops)]() == nil
			})
		}
		race(t, 750*time.Millisecond, attackers, victims)
		for _, n := range []string{"d1", "d2", "swap1", "swap2"} {
			if describe(t, filepath.Join(f.root, n)) == "missing" {
				t.Errorf("%s vanished", n)
			}
		}
	})

	// RemoveAll's own window: the directory it is about to empty is
	// swapped for a symlink that, followed on the host, is the sentinel.
	t.Run("directory swapped under RemoveAll", func(t *testing.T) {
		sub, alt := f.in("v/sub"), f.in("v/alt")
		mkdirs(t, f.in("v"))
		n := 0
		attacker := func() bool {
			// One syscall flips sub between directory and symlink.
			if unix.Renameat2(unix.AT_FDCWD, sub, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE) == nil {
				return true
			}
			// RemoveAll took the symlink, or both are directories: put a
			// symlink back in play.
			if fi, err := os.Lstat(alt); err == nil && fi.IsDir() {
				n++
				_ = os.Rename(alt, f.in(fmt.Sprintf("v/old%d", n)))
			}
			_ = os.Symlink(f.sentinel, alt)
			return false
		}
		victim := func() bool {
			_ = f.r.MkdirAll("/v/sub/a/b", 0o755)
			return f.r.RemoveAll("/v/sub") == nil
		}
		race(t, 750*time.Millisecond, []func() bool{attacker}, []func() bool{victim})
	})
}

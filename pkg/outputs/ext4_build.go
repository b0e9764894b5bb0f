package outputs

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgplan/imgplan/pkg/digest"
	"github.com/imgplan/imgplan/pkg/outputs/ext4fs"
	"github.com/imgplan/imgplan/pkg/stages"
)

func init() { Ext4.Build = buildExt4 }

// mke2fsConf pins mke2fs's defaults, so an image does not depend on the
// build host's /etc/mke2fs.conf: Debian 12's ext4 features, 4 KiB blocks,
// 256-byte inodes, one inode per 16 KiB.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = false
	lazy_journal_init = false

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// buildExt4 writes the tree with mkfs.ext4 -d into a sparse file — no loop
// device — with everything that would differ between builds fixed: the
// UUID and directory hash seed (from the node key unless given), the
// creation time (E2FSPROGS_FAKE_TIME), mke2fs's configuration, and, after
// mkfs, every inode's times, which mkfs copies from the source tree
// (ctime can only be "now" there): ClampTimes rewrites them in place.
func buildExt4(ctx context.Context, env stages.Env, raw json.RawMessage) error {
	var p Ext4Params
	if err := stages.DecodeParams(raw, &p); err != nil {
		return err
	}
	return mkext4(ctx, env, ArtifactPath(env), p)
}

// mkext4 writes the tree as an ext4 image at img.
func mkext4(ctx context.Context, env stages.Env, img string, p Ext4Params) error {
	root := env.Root().Dir()
	// The tree is measured only to size an image automatically; a fixed
	// size too small for it fails in mkfs, with a clear message.
	var usage treeUsage
	size := p.Size
	if size == 0 {
		var err error
		if usage, err = measureTree(root); err != nil {
			return err
		}
		size = autoExt4Size(usage, p.Headroom.Bytes, p.Headroom.Percent)
	}
	uuid := p.UUID
	if uuid == "" {
		uuid = keyUUID(env.Key(), "ext4")
	}
	conf, err := os.CreateTemp("", "imgplan-mke2fs-*.conf")
	if err != nil {
		return err
	}
	defer os.Remove(conf.Name())
	if _, err := conf.WriteString(mke2fsConf); err != nil {
		return err
	}
	conf.Close()

	for attempt := 0; ; attempt++ {
		if err := createSparse(img, size); err != nil {
			return err
		}
		argv := []string{"mkfs.ext4", "-q", "-F", "-T", "default", "-d", root, "-U", uuid,
			"-E", "hash_seed=" + uuid + ",root_owner=0:0"}
		if p.Label != "" {
			argv = append(argv, "-L", p.Label)
		}
		if len(p.Features) > 0 {
			argv = append(argv, "-O", strings.Join(p.Features, ","))
		}
		// Enough inodes for the tree, in an image sized for it.
		if need := usage.inodes + usage.inodes/4 + 64; p.Size == 0 && size/16384 < need {
			argv = append(argv, "-N", strconv.FormatInt(need, 10))
		}
		argv = append(argv, img)
		// LC_ALL=C: mke2fs orders directory entries with strcoll.
		mkEnv := []string{"MKE2FS_CONFIG=" + conf.Name(), "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(env.Epoch(), 10), "LC_ALL=C"}
		var stop func()
		if lib := eatmydata(); lib != "" {
			mkEnv = append(mkEnv, "LD_PRELOAD="+lib)
			stop = writeBehind(img)
		}
		err := env.RunHost(ctx, argv, stages.RunOptions{Env: mkEnv})
		if stop != nil {
			stop()
		}
		if err == nil {
			break
		}
		// An automatically sized image too small for the tree grows; the
		// retry depends only on the tree, so the result is still the same.
		if p.Size == 0 && attempt < 4 {
			size += size / 4
			continue
		}
		if p.Size != 0 {
			if u, merr := measureTree(root); merr == nil {
				return fmt.Errorf("mkfs.ext4: %w (the tree needs about %s in %d inodes; the image is %s)", err, human(u.bytes), u.inodes, human(p.Size))
			}
		}
		return fmt.Errorf("mkfs.ext4: %w", err)
	}
	return ext4fs.ClampTimes(img, env.Epoch())
}

// treeUsage is what a tree needs in an ext4 filesystem with 4 KiB blocks.
type treeUsage struct {
	bytes  int64 // data blocks: files, directories, long symlinks
	inodes int64
}

func measureTree(root string) (treeUsage, error) {
	var u treeUsage
	seen := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink > 1 && !fi.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		u.inodes++
		switch {
		case fi.Mode().IsRegular():
			u.bytes += (fi.Size() + 4095) / 4096 * 4096
		case fi.IsDir():
			u.bytes += 4096
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() > 59:
			u.bytes += 4096
		}
		return nil
	})
	return u, err
}

// autoExt4Size sizes an image for the tree: its data plus the headroom
// (bytes, or a percentage of the data), plus inode tables, the journal and
// the 5% reserved for root, rounded up to a MiB.
func autoExt4Size(u treeUsage, headroomBytes int64, headroomPercent int) int64 {
	data := u.bytes + headroomBytes + u.bytes*int64(headroomPercent)/100
	size := data + data/16384*256 + 4<<20 // inode tables, bitmaps, descriptors
	size += journalSize(size)
	size = size * 100 / 95
	const min = 16 << 20
	size = max(size, min)
	return (size + 1<<20 - 1) / (1 << 20) * (1 << 20)
}

// journalSize is mke2fs's default journal size for a filesystem of size
// bytes with 4 KiB blocks (ext2fs_default_journal_size).
func journalSize(size int64) int64 {
	blocks := size / 4096
	switch {
	case blocks < 2048:
		return 0
	case blocks < 32768:
		return 1024 * 4096
	case blocks < 256*1024:
		return 4096 * 4096
	case blocks < 512*1024:
		return 8192 * 4096
	case blocks < 4096*1024:
		return 16384 * 4096
	case blocks < 8192*1024:
		return 32768 * 4096
	case blocks < 16384*1024:
		return 65536 * 4096
	case blocks < 32768*1024:
		return 131072 * 4096
	}
	return 262144 * 4096
}

// eatmydata is the host's libeatmydata (Debian's libeatmydata1), or "".
// mke2fs ends with an fsync of the image that waits for all of it to
// reach the disk (a quarter of its time on the bench's 2 GiB image), with
// nothing left to do meanwhile. Preloaded, the library turns that fsync
// into a no-op; the output kinds that use mkext4 declare SyncOnCommit, so
// the commit fsyncs the image (times clamped by then, which mke2fs's own
// fsync never covered) while it computes the content digest, and the
// image is on disk before the object exists, as before. The bytes of the
// image do not depend on it.
var eatmydata = sync.OnceValue(func() string {
	// The library built for the host's programs: not another multiarch
	// one (ld.so would only warn, and mke2fs sync as before).
	want, err := elfMachine("/proc/self/exe")
	if err != nil {
		return ""
	}
	for _, pattern := range []string{"/usr/lib/*/libeatmydata.so.1", "/usr/lib64/libeatmydata.so.1", "/usr/lib/libeatmydata.so.1"} {
		m, _ := filepath.Glob(pattern)
		for _, lib := range m {
			if got, err := elfMachine(lib); err == nil && got == want {
				return lib
			}
		}
	}
	return ""
})

func elfMachine(path string) (elf.Machine, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Machine, nil
}

// writeBehind starts writing the file at path back to disk while mkfs
// fills it, every writeBehindEvery, so that the fsync at commit finds most
// of it there already; the disk works while mkfs computes. It only starts
// the kernel's writeback (sync_file_range), which changes nothing in the
// file; stop ends it.
func writeBehind(path string) (stop func()) {
	f, err := os.Open(path)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer f.Close()
		t := time.NewTicker(writeBehindEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
			}
		}
	}()
	// Not waiting for a writeback call under way: the build goes on.
	return func() { close(done) }
}

const writeBehindEvery = 100 * time.Millisecond

// createSparse makes path an empty sparse file of size bytes.
func createSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// keyUUID derives a random-looking (version 4) UUID from a node key, so a
// rebuild gives the same filesystem UUID and two different images do not.
func keyUUID(key digest.Digest, purpose string) string {
	h := sha256.Sum256([]byte(string(key) + "\x00" + purpose))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func human(n int64) string {
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}

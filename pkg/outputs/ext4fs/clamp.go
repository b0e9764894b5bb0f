package ext4fs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
)

// ClampTimes rewrites, in the ext4 image file at path, the times of every
// in-use inode: mtime becomes min(mtime, epoch) (nanoseconds kept when not
// clamped, zeroed when clamped); atime, ctime and crtime (when the inode
// has room for it) become that same new mtime. Inode checksums are
// recomputed when the filesystem has metadata_csum. Nothing else in the
// image changes.
//
// The image must not be mounted. Extended attribute inodes (ea_inode) are
// left alone: their time fields hold a hash, a reference count and a
// parent inode number. An inode whose checksum is already wrong is an
// error rather than being given a valid one. Everything is checked
// before anything is written except inodes, checked group by group: after
// such an error the image may be partly clamped, but every inode written
// is whole and correctly checksummed.
func ClampTimes(path string, epoch int64) (err error) {
	if epoch < 0 {
		return fmt.Errorf("clamp times in %s: negative epoch %d", path, epoch)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := clampTimes(f, epoch); err != nil {
		return fmt.Errorf("clamp times in %s: %w", path, err)
	}
	return nil
}

func clampTimes(f *os.File, epoch int64) error {
	sb, err := readSuperblock(f)
	if err != nil {
		return err
	}
	// A truncated image would otherwise fail part way, after some groups
	// were written. (Block devices report size 0; reads catch those.)
	if fi, err := f.Stat(); err != nil {
		return err
	} else if size := int64(sb.BlocksCount) * sb.BlockSize; fi.Mode().IsRegular() && fi.Size() < size {
		return fmt.Errorf("%w: truncated: %d bytes, filesystem is %d", ErrCorrupt, fi.Size(), size)
	}
	descs, err := readGroupDescs(f, sb)
	if err != nil {
		return err
	}
	c := &clamper{f: f, sb: sb, epoch: epoch, bitmap: make([]byte, sb.InodesPerGroup/8)}
	for g, d := range descs {
		if err := c.group(uint32(g), d); err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
	}
	return clampSuperblocks(f, sb, uint64(len(descs)), epoch)
}

// Superblock time fields: the low 32 bits, and the byte above them.
var superblockTimes = []struct{ lo, hi int }{
	{0x2C, 0x274},  // s_mtime (last mount)
	{0x30, 0x275},  // s_wtime (last write)
	{0x40, 0x276},  // s_lastcheck
	{0x108, 0x277}, // s_mkfs_time
}

// clampSuperblocks clamps the times of the superblock and of every backup
// of it: mke2fs writes the current time there unless E2FSPROGS_FAKE_TIME
// is set to something other than 0 — and an epoch of 0 is a valid one.
func clampSuperblocks(f *os.File, sb *Superblock, groups uint64, epoch int64) error {
	b := make([]byte, superblockSize)
	for g := uint64(0); g < groups; g++ {
		if !sb.hasSuper(g) {
			continue
		}
		off := int64(superblockOffset)
		if g > 0 {
			off = int64(g*uint64(sb.BlocksPerGroup)+uint64(sb.FirstDataBlock)) * sb.BlockSize
		}
		if err := readFull(f, b, off); err != nil {
			return fmt.Errorf("superblock of group %d: %w", g, err)
		}
		if m := binary.LittleEndian.Uint16(b[0x38:]); m != ext4Magic {
			return fmt.Errorf("%w: no superblock backup in group %d (magic %#04x)", ErrCorrupt, g, m)
		}
		changed := false
		for _, t := range superblockTimes {
			v := int64(binary.LittleEndian.Uint32(b[t.lo:])) | int64(b[t.hi])<<32
			if v > epoch {
				binary.LittleEndian.PutUint32(b[t.lo:], uint32(epoch))
				b[t.hi] = byte(epoch >> 32)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if sb.MetadataCsum() {
			binary.LittleEndian.PutUint32(b[0x3FC:], crc32c(^uint32(0), b[:0x3FC]))
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return fmt.Errorf("superblock of group %d: %w", g, err)
		}
	}
	return nil
}

// clamper holds the buffers reused from group to group.
type clamper struct {
	f      *os.File
	sb     *Superblock
	epoch  int64
	bitmap []byte
	table  []byte
	le     [4]byte // scratch for inode checksums
}

// group clamps the in-use inodes of one group: it reads the part of the
// inode table from the first to the last in-use inode, and writes back
// the part from the first to the last changed one.
func (c *clamper) group(g uint32, d groupDesc) error {
	sb := c.sb
	if sb.groupDescCsum() && d.flags&bgInodeUninit != 0 {
		return nil
	}
	if err := readFull(c.f, c.bitmap, int64(d.inodeBitmap)*sb.BlockSize); err != nil {
		return fmt.Errorf("inode bitmap: %w", err)
	}
	if sb.MetadataCsum() {
		got, want := crc32c(sb.csumSeed, c.bitmap), d.bitmapCsum
		if !d.bitmapCsumHi {
			got &= 0xFFFF
		}
		if got != want {
			return fmt.Errorf("%w: inode bitmap checksum %#x, computed %#x", ErrCorrupt, want, got)
		}
	}
	first, last, ok := bitSpan(c.bitmap)
	if !ok {
		return nil
	}
	isz := sb.InodeSize
	n := (last - first + 1) * isz
	if cap(c.table) < n {
		c.table = make([]byte, n)
	}
	span := c.table[:n]
	off := int64(d.inodeTable)*sb.BlockSize + int64(first*isz)
	if err := readFull(c.f, span, off); err != nil {
		return fmt.Errorf("inode table: %w", err)
	}
	lo, hi := -1, -1
	for i := first; i <= last; i++ {
		if c.bitmap[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		ino := g*sb.InodesPerGroup + uint32(i) + 1
		in := inode(span[(i-first)*isz:][:isz])
		changed, err := c.inode(ino, in)
		if err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		if changed {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo < 0 {
		return nil
	}
	out := span[(lo-first)*isz : (hi-first+1)*isz]
	if _, err := c.f.WriteAt(out, off+int64((lo-first)*isz)); err != nil {
		return fmt.Errorf("inode table: %w", err)
	}
	return nil
}

// inode clamps one in-use inode's times and reports whether it changed.
func (c *clamper) inode(ino uint32, in inode) (bool, error) {
	extra, err := in.extraIsize()
	if err != nil {
		return false, err
	}
	if binary.LittleEndian.Uint32(in[iFlags:])&eaInodeFlag != 0 {
		return false, nil
	}
	lo, x := in.clampedTime(extra, c.epoch)
	if !in.needsClamp(extra, lo, x) {
		return false, nil
	}
	if !c.sb.MetadataCsum() {
		in.setTimes(extra, lo, x)
		return true, nil
	}
	// The generation is not among what changes, so the seed holds.
	seed := in.inodeSeed(c.sb.csumSeed, ino, &c.le)
	if !in.checksumOK(seed, extra) {
		return false, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	in.setTimes(extra, lo, x)
	in.setChecksum(seed, extra)
	return true, nil
}

// bitSpan returns the indices of the first and last set bits of a
// bitmap, least significant bit first as ext4 numbers them.
func bitSpan(bm []byte) (first, last int, ok bool) {
	first, last = -1, -1
	for i, b := range bm {
		if b == 0 {
			continue
		}
		if first < 0 {
			first = i*8 + bits.TrailingZeros8(b)
		}
		last = i*8 + 7 - bits.LeadingZeros8(b)
	}
	return first, last, first >= 0
}

package ext4fs

import (
	"encoding/binary"
	"fmt"
	"io"
)

// bgInodeUninit in bg_flags: the group's inode table and bitmap were
// never initialised, so none of its inodes are in use (trusted only when
// descriptors are checksummed).
const bgInodeUninit = 0x1

// groupDesc is what ClampTimes needs of a block group descriptor.
type groupDesc struct {
	inodeBitmap uint64 // block number
	inodeTable  uint64 // block number of the first block
	flags       uint16
	// bitmapCsum is bg_inode_bitmap_csum: 16 bits, or 32 when the
	// descriptor is large enough for the high half.
	bitmapCsum   uint32
	bitmapCsumHi bool
}

// maxRun bounds one read of descriptor blocks.
const maxRun = 256

// readGroupDescs reads and checks every group descriptor.
func readGroupDescs(r io.ReaderAt, sb *Superblock) ([]groupDesc, error) {
	perBlock := uint64(sb.BlockSize) / uint64(sb.DescSize)
	nblocks := (uint64(sb.Groups) + perBlock - 1) / perBlock
	var descs []groupDesc
	buf := make([]byte, 0, maxRun*sb.BlockSize)
	// Descriptor blocks are contiguous after the superblock, except with
	// meta_bg, where each meta group keeps its own: read runs.
	for i := uint64(0); i < nblocks; {
		start := sb.descBlock(i)
		n := uint64(1)
		for i+n < nblocks && n < maxRun && sb.descBlock(i+n) == start+n {
			n++
		}
		if start+n > sb.BlocksCount {
			return nil, fmt.Errorf("%w: group descriptor block %d past the end", ErrCorrupt, start+n-1)
		}
		buf = buf[:n*uint64(sb.BlockSize)]
		if err := readFull(r, buf, int64(start)*sb.BlockSize); err != nil {
			return nil, fmt.Errorf("group descriptors: %w", err)
		}
		for off := 0; off < len(buf) && uint32(len(descs)) < sb.Groups; off += sb.DescSize {
			g := uint32(len(descs))
			d, err := sb.parseGroupDesc(g, buf[off:off+sb.DescSize])
			if err != nil {
				return nil, fmt.Errorf("group %d: %w", g, err)
			}
			descs = append(descs, d)
		}
		i += n
	}
	return descs, nil
}

// descBlock is the block number of the i-th block of group descriptors,
// as the kernel's descriptor_loc computes it.
func (sb *Superblock) descBlock(i uint64) uint64 {
	// The superblock is at byte 1024: block 1 with 1 KiB blocks, else 0.
	sbBlock := uint64(superblockOffset / sb.BlockSize)
	if sb.FeatureIncompat&incompatMetaBG == 0 || i < uint64(sb.firstMetaBG) {
		return sbBlock + 1 + i
	}
	// With meta_bg, the descriptors of a meta group (one block's worth of
	// groups) sit in its first group, after the superblock backup if any.
	group := i * (uint64(sb.BlockSize) / uint64(sb.DescSize))
	blk := uint64(sb.FirstDataBlock) + group*uint64(sb.BlocksPerGroup)
	if sb.hasSuper(group) {
		blk++
	}
	// 1 KiB blocks with bigalloc start at block 0, yet group 0's
	// descriptors still follow the superblock at block 1.
	if sb.BlockSize == 1024 && i == 0 && sb.FirstDataBlock == 0 {
		blk++
	}
	return blk
}

// hasSuper reports whether a group holds a superblock (or a backup).
func (sb *Superblock) hasSuper(group uint64) bool {
	switch {
	case group == 0:
		return true
	case sb.FeatureCompat&compatSparseSuper2 != 0:
		return group == uint64(sb.backupBGs[0]) || group == uint64(sb.backupBGs[1])
	case group == 1 || sb.FeatureROCompat&roCompatSparseSuper == 0:
		return true
	case group%2 == 0:
		return false
	}
	return isPower(group, 3) || isPower(group, 5) || isPower(group, 7)
}

func isPower(n, base uint64) bool {
	for n%base == 0 {
		n /= base
	}
	return n == 1
}

func (sb *Superblock) parseGroupDesc(g uint32, b []byte) (groupDesc, error) {
	le16 := func(off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
	if err := sb.checkGroupDesc(g, b); err != nil {
		return groupDesc{}, err
	}
	d := groupDesc{
		inodeBitmap: uint64(le32(0x04)),
		inodeTable:  uint64(le32(0x08)),
		flags:       le16(0x12),
		bitmapCsum:  uint32(le16(0x1A)),
	}
	if len(b) >= 64 {
		d.inodeBitmap |= uint64(le32(0x24)) << 32
		d.inodeTable |= uint64(le32(0x28)) << 32
		d.bitmapCsum |= uint32(le16(0x3A)) << 16
		d.bitmapCsumHi = true
	}
	tableBlocks := (uint64(sb.InodesPerGroup)*uint64(sb.InodeSize) + uint64(sb.BlockSize) - 1) / uint64(sb.BlockSize)
	if d.inodeTable == 0 || d.inodeTable+tableBlocks > sb.BlocksCount {
		return groupDesc{}, fmt.Errorf("%w: inode table at block %d", ErrCorrupt, d.inodeTable)
	}
	if d.inodeBitmap == 0 || d.inodeBitmap >= sb.BlocksCount {
		return groupDesc{}, fmt.Errorf("%w: inode bitmap at block %d", ErrCorrupt, d.inodeBitmap)
	}
	return d, nil
}

// checkGroupDesc verifies bg_checksum (offset 0x1E): the low 16 bits of
// crc32c with metadata_csum, crc16 with uninit_bg, over the group number
// and the descriptor without the checksum.
func (sb *Superblock) checkGroupDesc(g uint32, b []byte) error {
	const off = 0x1E
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], g)
	var got uint16
	switch {
	case sb.MetadataCsum():
		c := crc32c(sb.csumSeed, le[:])
		c = crc32c(c, b[:off])
		c = crc32c(c, zeros[:])
		c = crc32c(c, b[off+2:])
		got = uint16(c)
	case sb.FeatureROCompat&roCompatGDTCsum != 0:
		c := crc16(0xFFFF, sb.UUID[:])
		c = crc16(c, le[:])
		c = crc16(c, b[:off])
		c = crc16(c, b[off+2:])
		got = c
	default:
		return nil
	}
	if want := binary.LittleEndian.Uint16(b[off:]); want != got {
		return fmt.Errorf("%w: descriptor checksum %#04x, computed %#04x", ErrCorrupt, want, got)
	}
	return nil
}

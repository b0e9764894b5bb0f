package ext4fs

import (
	"encoding/binary"
	"fmt"
)

// Offsets in an inode.
const (
	iAtime        = 0x08
	iCtime        = 0x0C
	iMtime        = 0x10
	iFlags        = 0x20
	iGeneration   = 0x64
	iChecksumLo   = 0x7C
	goodOldSize   = 0x80 // the classic 128-byte inode; what follows is "extra"
	iExtraIsize   = 0x80
	iChecksumHi   = 0x82
	iCtimeExtra   = 0x84
	iMtimeExtra   = 0x88
	iAtimeExtra   = 0x8C
	iCrtime       = 0x90
	iCrtimeExtra  = 0x94
	eaInodeFlag   = 0x200000 // EXT4_EA_INODE_FL
	epochBitsMask = 0x3
)

// timeFields are the (seconds, extra) pairs set to the clamped mtime.
var timeFields = [...][2]int{
	{iAtime, iAtimeExtra},
	{iCtime, iCtimeExtra},
	{iMtime, iMtimeExtra},
	{iCrtime, iCrtimeExtra},
}

// inode is one inode table entry: len(in) is s_inode_size.
type inode []byte

func (in inode) le16(off int) uint16 { return binary.LittleEndian.Uint16(in[off:]) }
func (in inode) le32(off int) uint32 { return binary.LittleEndian.Uint32(in[off:]) }

// extraIsize is i_extra_isize, checked as the kernel does.
func (in inode) extraIsize() (int, error) {
	if len(in) == goodOldSize {
		return 0, nil
	}
	n := int(in.le16(iExtraIsize))
	if goodOldSize+n > len(in) || n%4 != 0 {
		return 0, fmt.Errorf("%w: i_extra_isize %d", ErrCorrupt, n)
	}
	return n, nil
}

// fits reports whether the 32-bit field at off is within the inode's
// extra space (or the classic part).
func fits(off, extra int) bool {
	return off+4 <= goodOldSize+extra
}

// decodeTime is the kernel's ext4_decode_extra_time: 32 signed bits of
// seconds, widened by the two epoch bits of the extra field, whose other
// 30 bits are nanoseconds.
func decodeTime(lo, extra uint32) (sec int64, nsec uint32) {
	return int64(int32(lo)) + int64(extra&epochBitsMask)<<32, extra >> 2
}

// encodeTime is the kernel's ext4_encode_extra_time.
func encodeTime(sec int64, nsec uint32) (lo, extra uint32) {
	return uint32(sec), uint32((sec-int64(int32(sec)))>>32)&epochBitsMask | nsec<<2
}

// clampedTime is the inode's mtime clamped to the epoch, encoded:
// nanoseconds are kept when not clamped, dropped when clamped.
func (in inode) clampedTime(extra int, epoch int64) (lo, x uint32) {
	if fits(iMtimeExtra, extra) {
		x = in.le32(iMtimeExtra)
	}
	sec, nsec := decodeTime(in.le32(iMtime), x)
	if sec > epoch || sec == epoch && nsec > 0 {
		sec, nsec = epoch, 0
	}
	return encodeTime(sec, nsec)
}

// needsClamp reports whether setTimes would change anything.
func (in inode) needsClamp(extra int, lo, x uint32) bool {
	for _, f := range timeFields {
		if fits(f[0], extra) && in.le32(f[0]) != lo || fits(f[1], extra) && in.le32(f[1]) != x {
			return true
		}
	}
	return false
}

// setTimes sets every time field the inode has room for. A missing extra
// field drops what it would hold, as the kernel does.
func (in inode) setTimes(extra int, lo, x uint32) {
	for _, f := range timeFields {
		if fits(f[0], extra) {
			binary.LittleEndian.PutUint32(in[f[0]:], lo)
		}
		if fits(f[1], extra) {
			binary.LittleEndian.PutUint32(in[f[1]:], x)
		}
	}
}

// hasChecksumHi reports whether the inode has i_checksum_hi.
func hasChecksumHi(extra int) bool {
	return iChecksumHi+2 <= goodOldSize+extra
}

// zeros stands in for checksum fields while checksumming.
var zeros [2]byte

// inodeSeed is the kernel's ei->i_csum_seed: the filesystem seed
// continued over the inode number and generation. le is scratch space,
// passed in so that checksumming allocates nothing.
func (in inode) inodeSeed(fsSeed, ino uint32, le *[4]byte) uint32 {
	binary.LittleEndian.PutUint32(le[:], ino)
	return crc32c(crc32c(fsSeed, le[:]), in[iGeneration:iGeneration+4])
}

// checksum is the metadata_csum inode checksum (ext4_inode_csum): crc32c
// from the inode's seed over the whole inode, its checksum fields taken
// as zero.
func (in inode) checksum(seed uint32, extra int) uint32 {
	c := crc32c(seed, in[:iChecksumLo])
	c = crc32c(c, zeros[:])
	c = crc32c(c, in[iChecksumLo+2:goodOldSize])
	if len(in) > goodOldSize {
		off := iChecksumHi
		c = crc32c(c, in[goodOldSize:off])
		if hasChecksumHi(extra) {
			c = crc32c(c, zeros[:])
			off += 2
		}
		c = crc32c(c, in[off:])
	}
	return c
}

// storedChecksum is the checksum as stored, and a mask of its valid bits.
func (in inode) storedChecksum(extra int) (sum, mask uint32) {
	sum, mask = uint32(in.le16(iChecksumLo)), 0xFFFF
	if hasChecksumHi(extra) {
		sum |= uint32(in.le16(iChecksumHi)) << 16
		mask = 0xFFFFFFFF
	}
	return sum, mask
}

// checksumOK is ext2fs_inode_csum_verify, which also accepts an inode
// whose classic 128 bytes are all zero.
func (in inode) checksumOK(seed uint32, extra int) bool {
	sum, mask := in.storedChecksum(extra)
	if in.checksum(seed, extra)&mask == sum {
		return true
	}
	for _, b := range in[:goodOldSize] {
		if b != 0 {
			return false
		}
	}
	return true
}

func (in inode) setChecksum(seed uint32, extra int) {
	c := in.checksum(seed, extra)
	binary.LittleEndian.PutUint16(in[iChecksumLo:], uint16(c))
	if hasChecksumHi(extra) {
		binary.LittleEndian.PutUint16(in[iChecksumHi:], uint16(c>>16))
	}
}

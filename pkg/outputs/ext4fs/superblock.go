package ext4fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"
)

var (
	// ErrNotExt4 means the file does not hold an ext2/3/4 superblock.
	ErrNotExt4 = errors.New("not an ext2/3/4 filesystem")
	// ErrUnsupported means a valid filesystem uses something this package
	// does not handle, so it refuses rather than risk corrupting it.
	ErrUnsupported = errors.New("unsupported ext4 filesystem")
	// ErrCorrupt means the image contradicts itself: bad checksums,
	// impossible geometry, or a file shorter than the filesystem.
	ErrCorrupt = errors.New("corrupt ext4 filesystem")
)

const (
	superblockOffset = 1024
	superblockSize   = 1024
	ext4Magic        = 0xEF53
)

// Feature bits the code tests by name.
const (
	compatSparseSuper2 = 0x200

	incompatMetaBG   = 0x10
	incompat64Bit    = 0x80
	incompatCsumSeed = 0x2000

	roCompatSparseSuper  = 0x1
	roCompatGDTCsum      = 0x10
	roCompatMetadataCsum = 0x400
)

// incompatHandled are the INCOMPAT features that leave inode tables,
// inode bitmaps and inode time fields as this package reads them.
// Anything else is refused: an INCOMPAT bit means "don't touch unless you
// understand it".
var incompatHandled = map[uint32]string{
	0x2:     "filetype",
	0x10:    "meta_bg",
	0x40:    "extent",
	0x80:    "64bit",
	0x100:   "mmp",
	0x200:   "flex_bg",
	0x400:   "ea_inode",
	0x2000:  "metadata_csum_seed",
	0x4000:  "large_dir",
	0x8000:  "inline_data",
	0x10000: "encrypt",
	0x20000: "casefold",
}

// incompatRefused names the known INCOMPAT features that are refused, for
// clearer errors.
var incompatRefused = map[uint32]string{
	0x1:    "compression",
	0x4:    "needs_recovery", // a journal replay would undo the edit
	0x8:    "journal_dev",    // an external journal, not a filesystem
	0x1000: "dirdata",
}

// roCompatHandled are the RO_COMPAT features that don't change how inodes
// are laid out or checksummed beyond what this package does. An unknown
// one might add a checksum we would then leave stale.
var roCompatHandled = map[uint32]string{
	0x1:     "sparse_super",
	0x2:     "large_file",
	0x8:     "huge_file",
	0x10:    "uninit_bg",
	0x20:    "dir_nlink",
	0x40:    "extra_isize",
	0x100:   "quota",
	0x200:   "bigalloc",
	0x400:   "metadata_csum",
	0x800:   "replica",
	0x1000:  "read-only",
	0x2000:  "project",
	0x4000:  "shared_blocks",
	0x8000:  "verity",
	0x10000: "orphan_present",
}

// Superblock is the geometry and features of a filesystem, as far as
// ClampTimes needs them. Block numbers and counts are in blocks, not
// bigalloc clusters.
type Superblock struct {
	BlockSize      int64
	BlocksCount    uint64
	FirstDataBlock uint32
	BlocksPerGroup uint32
	InodesCount    uint32
	InodesPerGroup uint32
	// InodeSize is the size of an inode table entry: 128, or 256 or more
	// with room for the extra fields (nanoseconds, crtime, checksum_hi).
	InodeSize int
	// FirstIno is the first inode that isn't reserved.
	FirstIno uint32
	// DescSize is the size of a group descriptor: 32, or s_desc_size with
	// the 64bit feature.
	DescSize int
	// Groups is the number of block groups.
	Groups uint32

	// The feature flags: s_feature_compat, _incompat and _ro_compat.
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureROCompat uint32
	UUID            [16]byte

	firstMetaBG uint32
	backupBGs   [2]uint32
	csumSeed    uint32 // metadata_csum seed, s_checksum_seed or crc32c(uuid)
}

// MetadataCsum reports whether the filesystem checksums its metadata,
// inodes included.
func (sb *Superblock) MetadataCsum() bool {
	return sb.FeatureROCompat&roCompatMetadataCsum != 0
}

// groupDescCsum reports whether group descriptors carry a checksum, and
// with it whether their INODE_UNINIT flag means anything.
func (sb *Superblock) groupDescCsum() bool {
	return sb.FeatureROCompat&(roCompatMetadataCsum|roCompatGDTCsum) != 0
}

// ReadSuperblock reads and checks the primary superblock of the image at
// path.
func ReadSuperblock(path string) (*Superblock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sb, err := readSuperblock(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sb, nil
}

func readSuperblock(r io.ReaderAt) (*Superblock, error) {
	b := make([]byte, superblockSize)
	if err := readFull(r, b, superblockOffset); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("%w: too short for a superblock", ErrNotExt4)
		}
		return nil, err
	}
	return parseSuperblock(b)
}

func parseSuperblock(b []byte) (*Superblock, error) {
	le16 := func(off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
	le32 := func(off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

	if m := le16(0x38); m != ext4Magic {
		return nil, fmt.Errorf("%w: magic %#04x", ErrNotExt4, m)
	}
	sb := &Superblock{
		BlocksCount:    uint64(le32(0x04)),
		FirstDataBlock: le32(0x14),
		BlocksPerGroup: le32(0x20),
		InodesCount:    le32(0x00),
		InodesPerGroup: le32(0x28),
		InodeSize:      128,
		FirstIno:       11,
		DescSize:       32,
	}
	// s_log_block_size: the kernel caps blocks at 64 KiB.
	logBlock := le32(0x18)
	if logBlock > 6 {
		return nil, fmt.Errorf("%w: log block size %d", ErrCorrupt, logBlock)
	}
	sb.BlockSize = 1024 << logBlock
	if rev := le32(0x4C); rev > 0 { // rev 0 has fixed inode geometry and no features
		sb.FirstIno = le32(0x54)
		sb.InodeSize = int(le16(0x58))
		sb.FeatureCompat, sb.FeatureIncompat, sb.FeatureROCompat = le32(0x5C), le32(0x60), le32(0x64)
	}
	copy(sb.UUID[:], b[0x68:0x78])

	if err := checkFeatures(sb); err != nil {
		return nil, err
	}
	if sb.MetadataCsum() {
		if t := b[0x175]; t != 1 {
			return nil, fmt.Errorf("%w: checksum type %d, not crc32c", ErrUnsupported, t)
		}
		if want, got := le32(0x3FC), crc32c(^uint32(0), b[:0x3FC]); want != got {
			return nil, fmt.Errorf("%w: superblock checksum %#08x, computed %#08x", ErrCorrupt, want, got)
		}
		if sb.FeatureIncompat&incompatCsumSeed != 0 {
			sb.csumSeed = le32(0x270)
		} else {
			sb.csumSeed = crc32c(^uint32(0), sb.UUID[:])
		}
	}
	if sb.FeatureIncompat&incompat64Bit != 0 {
		sb.BlocksCount |= uint64(le32(0x150)) << 32
		sb.DescSize = int(le16(0xFE))
		// As the kernel: a power of two from 64 bytes to 1 KiB.
		if sb.DescSize < 64 || sb.DescSize > 1024 || bits.OnesCount(uint(sb.DescSize)) != 1 {
			return nil, fmt.Errorf("%w: group descriptor size %d", ErrCorrupt, sb.DescSize)
		}
	}
	sb.firstMetaBG = le32(0x104)
	sb.backupBGs = [2]uint32{le32(0x24C), le32(0x250)}

	if err := checkGeometry(sb); err != nil {
		return nil, err
	}
	return sb, nil
}

func checkFeatures(sb *Superblock) error {
	var bad []string
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if sb.FeatureIncompat&bit != 0 && incompatHandled[bit] == "" {
			bad = append(bad, featureName("incompat", bit, incompatRefused[bit]))
		}
		if sb.FeatureROCompat&bit != 0 && roCompatHandled[bit] == "" {
			bad = append(bad, featureName("ro_compat", bit, ""))
		}
	}
	if bad != nil {
		return fmt.Errorf("%w: feature %s", ErrUnsupported, strings.Join(bad, ", "))
	}
	return nil
}

func featureName(kind string, bit uint32, name string) string {
	if name == "" {
		return fmt.Sprintf("%s %#x", kind, bit)
	}
	return fmt.Sprintf("%s (%s %#x)", name, kind, bit)
}

func checkGeometry(sb *Superblock) error {
	// Inode sizes are powers of two from 128 bytes to a block.
	if isz := sb.InodeSize; isz < 128 || int64(isz) > sb.BlockSize || bits.OnesCount(uint(isz)) != 1 {
		return fmt.Errorf("%w: inode size %d", ErrUnsupported, isz)
	}
	ipg := sb.InodesPerGroup
	if ipg == 0 || ipg%8 != 0 || int64(ipg) > 8*sb.BlockSize {
		return fmt.Errorf("%w: %d inodes per group", ErrCorrupt, ipg)
	}
	if sb.BlocksPerGroup == 0 || uint64(sb.FirstDataBlock) >= sb.BlocksCount {
		return fmt.Errorf("%w: %d blocks, %d per group, first data block %d",
			ErrCorrupt, sb.BlocksCount, sb.BlocksPerGroup, sb.FirstDataBlock)
	}
	if sb.BlocksCount > uint64(1<<63-1)/uint64(sb.BlockSize) {
		return fmt.Errorf("%w: %d blocks", ErrUnsupported, sb.BlocksCount)
	}
	groups := (sb.BlocksCount - uint64(sb.FirstDataBlock) + uint64(sb.BlocksPerGroup) - 1) / uint64(sb.BlocksPerGroup)
	if groups > 1<<32-1 || groups*uint64(ipg) != uint64(sb.InodesCount) {
		return fmt.Errorf("%w: %d inodes in %d groups of %d", ErrCorrupt, sb.InodesCount, groups, ipg)
	}
	sb.Groups = uint32(groups)
	if sb.FirstIno < 11 || sb.FirstIno > sb.InodesCount {
		return fmt.Errorf("%w: first inode %d", ErrCorrupt, sb.FirstIno)
	}
	return nil
}

// readFull reads len(p) bytes at off, calling a short read what it is
// here: a file shorter than the filesystem says it is.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	if _, err := r.ReadAt(p, off); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: truncated: %d bytes at offset %d", ErrCorrupt, len(p), off)
		}
		return err
	}
	return nil
}

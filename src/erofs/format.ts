/**
 * EROFS on-disk constants and CRC32C (docs/erofs.md §1, §3, §4). Pure: no I/O.
 * We write a fixed subset: 4 KiB blocks, extended inodes, inline xattrs, no compression.
 */

export const BLOCK_SIZE = 4096;
export const BLKSZBITS = 12;
export const SB_OFFSET = 1024;
export const EROFS_MAGIC = 0xe0f5e1e2;
export const NULL_ADDR = 0xffffffff;
export const INODE_SLOT = 32;
export const INODE_EXTENDED_SIZE = 64;
export const INODE_COMPACT_SIZE = 32;
export const DIRENT_SIZE = 12;
export const XATTR_ENTRY_HEADER = 4;
export const XATTR_IBODY_HEADER = 12;
export const DEVICE_SLOT_SIZE = 128;
export const CHUNK_INDEX_SIZE = 8;
/** Byte 1152 = slot 9 × 128: where the device table starts (docs/erofs.md §3 devt_slotoff). */
export const DEVT_SLOTOFF = 9;
export const VOLUME_NAME = 'msb-erofs/1';

export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
export const FEATURE_INCOMPAT_CHUNKED_FILE = 0x4;
export const FEATURE_INCOMPAT_DEVICE_TABLE = 0x8;

/** i_format data layouts (bits 1..3). */
export const LAYOUT_FLAT_PLAIN = 0;
export const LAYOUT_COMPRESSED_FULL = 1;
export const LAYOUT_FLAT_INLINE = 2;
export const LAYOUT_COMPRESSED_COMPACT = 3;
export const LAYOUT_CHUNK_BASED = 4;

/** Chunk format bits in i_u for CHUNK_BASED (docs/erofs.md §7.2). */
export const CHUNK_FORMAT_INDEXES = 0x20;
export const CHUNK_FORMAT_BLKBITS_MASK = 0x1f;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;

/** dirent file_type values (docs/erofs.md §4.1; 0 = unknown is never written). */
export const FT_REG = 1;
export const FT_DIR = 2;
export const FT_CHR = 3;
export const FT_BLK = 4;
export const FT_FIFO = 5;
export const FT_SOCK = 6;
export const FT_SYMLINK = 7;

/** Xattr prefix indexes (docs/erofs.md §4.2). Index 5 (`lustre.`) is never written. */
export const XATTR_INDEX_USER = 1;
export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const XATTR_INDEX_TRUSTED = 4;
export const XATTR_INDEX_SECURITY = 6;

export const XATTR_PREFIXES: ReadonlyArray<{ index: number; prefix: string; exact: boolean }> = [
  { index: XATTR_INDEX_POSIX_ACL_ACCESS, prefix: 'system.posix_acl_access', exact: true },
  { index: XATTR_INDEX_POSIX_ACL_DEFAULT, prefix: 'system.posix_acl_default', exact: true },
  { index: XATTR_INDEX_USER, prefix: 'user.', exact: false },
  { index: XATTR_INDEX_TRUSTED, prefix: 'trusted.', exact: false },
  { index: XATTR_INDEX_SECURITY, prefix: 'security.', exact: false },
];

/** Full-name prefix for an index (for display / tests). */
export function xattrPrefixOf(index: number): string | undefined {
  return XATTR_PREFIXES.find((p) => p.index === index)?.prefix;
}

/** Marker xattrs (docs/erofs.md §4.2), both under `trusted.` (index 4). */
export const MARKER_OPAQUE_SUFFIX = Buffer.from('overlay.opaque', 'latin1');
export const MARKER_IMPLICIT_SUFFIX = Buffer.from('msb.implicit', 'latin1');
export const MARKER_VALUE = Buffer.from('y', 'latin1');

// CRC32C (Castagnoli), reflected polynomial 0x82F63B78; slicing-by-1 table is plenty for 3 KiB.
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/**
 * CRC32C as EROFS uses it for the superblock (docs/erofs.md §3): the caller passes the seed
 * (0xFFFFFFFF) and there is NO final XOR.
 */
export function crc32c(seed: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = seed >>> 0;
  for (let i = start; i < end; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

/** Superblock checksum over block-0 bytes [1024, 4096) with the checksum field as zero. */
export function superblockChecksum(block0: Buffer): number {
  const tmp = Buffer.from(block0.subarray(SB_OFFSET, BLOCK_SIZE));
  tmp.writeUInt32LE(0, 4);
  return crc32c(0xffffffff, tmp);
}

/** Linux new_encode_dev (docs/erofs.md §4.1): major ≤ 4095, minor ≤ 0xFFFFF. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(u: number): { major: number; minor: number } {
  return { major: (u >>> 8) & 0xfff, minor: (u & 0xff) | ((u >>> 12) & 0xfff00) };
}

/**
 * Pure byte encoders for the EROFS structures we write (docs/erofs.md §3, §4.1, §4.2, §4.5, §7.2).
 * They fill caller-provided buffers so that the writers can batch many records into one write.
 */
import type { Xattr } from './tree.js';
import {
  BLOCK_SIZE,
  BLKSZBITS,
  DEVICE_SLOT_SIZE,
  DIRENT_SIZE,
  EROFS_MAGIC,
  INODE_EXTENDED_SIZE,
  SB_OFFSET,
  VOLUME_NAME,
  XATTR_ENTRY_HEADER,
  XATTR_IBODY_HEADER,
  superblockChecksum,
} from './format.js';

export interface SuperblockFields {
  featureCompat: number;
  rootNid: number;
  inos: bigint;
  blocks: number;
  metaBlkaddr: number;
  uuid: Buffer;
  featureIncompat: number;
  extraDevices: number;
  devtSlotoff: number;
}

/**
 * Writes the 128-byte superblock into `block0` (≥ 4096 bytes, the rest of block 0 already final:
 * device slots included) and then its CRC32C over [1024, 4096) (docs/erofs.md §3).
 */
export function encodeSuperblock(block0: Buffer, f: SuperblockFields): void {
  const sb = block0.subarray(SB_OFFSET, SB_OFFSET + 128);
  sb.fill(0);
  sb.writeUInt32LE(EROFS_MAGIC, 0x00);
  sb.writeUInt32LE(f.featureCompat >>> 0, 0x08);
  sb.writeUInt8(BLKSZBITS, 0x0c);
  sb.writeUInt8(0, 0x0d);
  sb.writeUInt16LE(f.rootNid, 0x0e);
  sb.writeBigUInt64LE(f.inos, 0x10);
  // build_time / build_time_nsec stay 0: determinism (docs/erofs.md §3).
  sb.writeUInt32LE(f.blocks >>> 0, 0x24);
  sb.writeUInt32LE(f.metaBlkaddr >>> 0, 0x28);
  sb.writeUInt32LE(0, 0x2c);
  if (f.uuid.length !== 16) throw new Error('uuid must be 16 bytes');
  f.uuid.copy(sb, 0x30);
  sb.write(VOLUME_NAME, 0x40, 'latin1');
  sb.writeUInt32LE(f.featureIncompat >>> 0, 0x50);
  sb.writeUInt16LE(0, 0x54);
  sb.writeUInt16LE(f.extraDevices, 0x56);
  sb.writeUInt16LE(f.devtSlotoff, 0x58);
  sb.writeUInt32LE(superblockChecksum(block0.subarray(0, BLOCK_SIZE)), 0x04);
}

/** One 128-byte device slot (docs/erofs.md §7.2): tag[64], blocks u32 @0x40, mapped_blkaddr u32 @0x44. */
export function encodeDeviceSlot(out: Buffer, off: number, tag: Buffer, blocks: number, mapped: number): void {
  out.fill(0, off, off + DEVICE_SLOT_SIZE);
  if (tag.length > 64) throw new Error('device tag longer than 64 bytes');
  tag.copy(out, off);
  out.writeUInt32LE(blocks >>> 0, off + 0x40);
  out.writeUInt32LE(mapped >>> 0, off + 0x44);
}

export interface InodeFields {
  format: number; // i_format: 1 | layout << 1
  xattrIcount: number;
  mode: number; // S_IFMT | perms
  size: bigint | number;
  iu: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: bigint;
  mtimeNsec: number;
  nlink: number;
}

/** The 64-byte extended inode (docs/erofs.md §4.1). */
export function encodeInodeExtended(out: Buffer, off: number, f: InodeFields): void {
  out.fill(0, off, off + INODE_EXTENDED_SIZE);
  out.writeUInt16LE(f.format, off + 0);
  out.writeUInt16LE(f.xattrIcount, off + 2);
  out.writeUInt16LE(f.mode & 0xffff, off + 4);
  out.writeUInt16LE(0, off + 6);
  out.writeBigUInt64LE(BigInt(f.size), off + 8);
  out.writeUInt32LE(f.iu >>> 0, off + 16);
  out.writeUInt32LE(f.ino >>> 0, off + 20);
  out.writeUInt32LE(f.uid >>> 0, off + 24);
  out.writeUInt32LE(f.gid >>> 0, off + 28);
  out.writeBigUInt64LE(BigInt.asUintN(64, f.mtime), off + 32);
  out.writeUInt32LE(f.mtimeNsec >>> 0, off + 40);
  out.writeUInt32LE(f.nlink >>> 0, off + 44);
}

export function compareXattrs(a: Xattr, b: Xattr): number {
  return a.index - b.index || Buffer.compare(a.suffix, b.suffix);
}

/** ibody bytes for a sorted xattr list: 0 when empty, else 12 + Σ align4(4 + suffix + value) (§4.2). */
export function xattrIbodySize(xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return 0;
  let n = XATTR_IBODY_HEADER;
  for (const x of xattrs) n += (XATTR_ENTRY_HEADER + x.suffix.length + x.value.length + 3) & ~3;
  return n;
}

/** i_xattr_icount for an ibody size. */
export function xattrIcount(ibody: number): number {
  return ibody === 0 ? 0 : (ibody - XATTR_IBODY_HEADER) / 4 + 1;
}

/** Writes the ibody (12-byte zero header + entries, each 4-aligned) of already-sorted xattrs. */
export function encodeXattrIbody(out: Buffer, off: number, xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return 0;
  const start = off;
  out.fill(0, off, off + XATTR_IBODY_HEADER);
  off += XATTR_IBODY_HEADER;
  for (const x of xattrs) {
    const len = XATTR_ENTRY_HEADER + x.suffix.length + x.value.length;
    const padded = (len + 3) & ~3;
    out.writeUInt8(x.suffix.length, off);
    out.writeUInt8(x.index, off + 1);
    out.writeUInt16LE(x.value.length, off + 2);
    x.suffix.copy(out, off + 4);
    x.value.copy(out, off + 4 + x.suffix.length);
    out.fill(0, off + len, off + padded);
    off += padded;
  }
  return off - start;
}

/**
 * Greedy dirent block packing (docs/erofs.md §4.5) over names already sorted by bytes (`.` and `..`
 * included). Returns the index of the first name of each block and the used bytes of the last.
 */
export function packDirBlocks(nameLens: readonly number[]): { blockStarts: number[]; lastUsed: number } {
  const blockStarts: number[] = [0];
  let used = 0;
  for (let i = 0; i < nameLens.length; i++) {
    const need = DIRENT_SIZE + nameLens[i]!;
    if (used + need > BLOCK_SIZE) {
      blockStarts.push(i);
      used = 0;
    }
    used += need;
  }
  return { blockStarts, lastUsed: used };
}

/**
 * Encodes one directory block: dirents then names, no NULs (docs/erofs.md §4.5). `names` are latin1
 * strings (raw bytes). Returns the bytes used.
 */
export function encodeDirBlock(
  out: Buffer,
  off: number,
  names: readonly string[],
  nids: readonly number[],
  types: readonly number[],
): number {
  const n = names.length;
  let nameoff = DIRENT_SIZE * n;
  for (let i = 0; i < n; i++) {
    const d = off + i * DIRENT_SIZE;
    out.writeBigUInt64LE(BigInt(nids[i]!), d);
    out.writeUInt16LE(nameoff, d + 8);
    out.writeUInt8(types[i]!, d + 10);
    out.writeUInt8(0, d + 11);
    nameoff += out.write(names[i]!, off + nameoff, 'latin1');
  }
  return nameoff;
}

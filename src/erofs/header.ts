/**
 * The EROFS header checks, pure (no I/O), in ONE place: the reader's superblock parse, the
 * reader's `checkErofsHeader` (throws CacheCorruptError) and the stitch validators (return the
 * reason) all use these, so docs/storage.md §5 cannot drift between the pull and Sandbox.create.
 */
import {
  BLKSZBITS,
  BLOCK_SIZE,
  EROFS_MAGIC,
  FEATURE_COMPAT_SB_CHKSUM,
  INODE_SLOT,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  S_IFDIR,
  S_IFMT,
  SB_OFFSET,
  VOLUME_NAME,
  superblockChecksum,
} from './format.js';

const KNOWN_VOLUME_NAMES = new Set([VOLUME_NAME]);

/**
 * Block 0's superblock against the file `length`: magic, CRC (required, or only when flagged),
 * blkszbits 12, blocks × 4096 = length, meta_blkaddr < blocks. The reader reads any such image;
 * the cache additionally requires the checksum (`requireChecksum`).
 */
export function superblockProblem(block0: Buffer, length: number, opts: { requireChecksum: boolean }): string | null {
  if (block0.length < BLOCK_SIZE) return 'shorter than one block';
  const sb = block0.subarray(SB_OFFSET, SB_OFFSET + 128);
  if (sb.readUInt32LE(0) !== EROFS_MAGIC) return 'bad EROFS magic at 1024';
  const flagged = (sb.readUInt32LE(0x08) & FEATURE_COMPAT_SB_CHKSUM) !== 0;
  if (!flagged && opts.requireChecksum) return 'superblock has no checksum (SB_CHKSUM is off)';
  if (flagged && sb.readUInt32LE(0x04) !== superblockChecksum(block0)) return 'superblock checksum (CRC32C) mismatch';
  if (sb[0x0c] !== BLKSZBITS) return `block size bits (blkszbits) ${sb[0x0c]}, expected ${BLKSZBITS}`;
  const blocks = sb.readUInt32LE(0x24);
  if (blocks * BLOCK_SIZE !== length)
    return `superblock blocks × 4096 = ${blocks * BLOCK_SIZE} but the file is ${length} bytes`;
  const meta = sb.readUInt32LE(0x28);
  if (meta >= blocks) return `meta_blkaddr ${meta} is not below blocks ${blocks}`;
  return null;
}

/** Byte offset of the root inode named by block 0's superblock (meta_blkaddr, root_nid). */
export function rootInodeOffset(block0: Buffer): number {
  return block0.readUInt32LE(SB_OFFSET + 0x28) * BLOCK_SIZE + block0.readUInt16LE(SB_OFFSET + 0x0e) * INODE_SLOT;
}

export interface ErofsHeaderExpected {
  /** `layer`: no device table (feature_incompat 0, extra_devices 0). `fsmeta` and unset: not checked here. */
  kind?: 'layer' | 'fsmeta';
  /** The recorded length (`layer.erofs_size_bytes`, `manifest.fsmeta_bytes`) when a row has one. */
  sizeBytes?: number;
  /** First 16 bytes of the file's digest (layer: diff_id; fsmeta: manifest or stand-in digest). */
  uuid?: Buffer;
}

/**
 * docs/storage.md §5 for an EROFS file of ours, on block 0 and the first 32 bytes of the root inode
 * (`rootInode`, null when outside the file; see `rootInodeOffset`): length, recorded length,
 * `superblockProblem` with the checksum required, a known volume_name, uuid, the layer's "no
 * device table", and a root inode that is a directory with a flat layout. fsmeta's device-table
 * rules are `fsmetaHeaderProblem` (stitch/validate.ts). Returns the reason, or null.
 */
export function erofsHeaderProblem(
  block0: Buffer,
  rootInode: Buffer | null,
  length: number,
  expected: ErofsHeaderExpected = {},
): string | null {
  if (length <= 0 || length % BLOCK_SIZE !== 0) return `length ${length} is not a positive multiple of 4096`;
  if (expected.sizeBytes !== undefined && length !== expected.sizeBytes)
    return `length ${length} differs from the recorded ${expected.sizeBytes}`;
  const sbWhy = superblockProblem(block0, length, { requireChecksum: true });
  if (sbWhy) return sbWhy;
  const sb = block0.subarray(SB_OFFSET, SB_OFFSET + 128);
  const vn = sb.subarray(0x40, 0x50);
  const nul = vn.indexOf(0);
  const volumeName = vn.subarray(0, nul < 0 ? 16 : nul).toString('latin1');
  if (!KNOWN_VOLUME_NAMES.has(volumeName) || (nul >= 0 && vn.subarray(nul).some((b) => b !== 0))) {
    return `unknown format version ${JSON.stringify(volumeName)} in volume_name`;
  }
  const uuid = sb.subarray(0x30, 0x40);
  if (expected.uuid !== undefined && !uuid.equals(expected.uuid)) {
    return `uuid ${uuid.toString('hex')} does not match ${expected.uuid.toString('hex')}`;
  }
  if (expected.kind === 'layer' && (sb.readUInt32LE(0x50) !== 0 || sb.readUInt16LE(0x56) !== 0))
    return 'has a device table: not a layer image';
  if (rootInode === null || rootInode.length < INODE_SLOT) return 'root inode is outside the file';
  const format = rootInode.readUInt16LE(0);
  const layout = (format >> 1) & 0x7;
  if (format >> 4) return `root inode has unknown i_format bits 0x${format.toString(16)}`;
  if (layout !== LAYOUT_FLAT_PLAIN && layout !== LAYOUT_FLAT_INLINE) return `root inode has data layout ${layout}`;
  if ((rootInode.readUInt16LE(4) & S_IFMT) !== S_IFDIR) return 'root inode is not a directory';
  return null;
}

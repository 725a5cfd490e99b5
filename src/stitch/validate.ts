/**
 * Validation of stitched artifacts on read (docs/storage.md §5): fsmeta and the VMDK descriptor, and
 * the layer-file check the stitch inputs need. Cheap by design: a few KiB of reads (fsmeta's
 * header blocks, the descriptor), never a content hash. Every function returns a reason string,
 * or null when the artifact is valid; the pull pipeline treats invalid as missing and rebuilds.
 *
 * The header checks are erofs/header.ts's (shared with the reader's `checkErofsHeader`), on
 * raw bytes read here (block 0 and the root inode), not through the tree reader: validation must
 * stay a few KiB of reads whatever the image holds.
 */
import { constants as fsConstants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { EROFS_MAGIC } from '../erofs/format.js';
import { erofsHeaderProblem, rootInodeOffset, type ErofsHeaderExpected } from '../erofs/header.js';
import {
  BLOCK,
  DEVICE_SLOT_BYTES,
  DEVICE_TABLE_OFFSET,
  DEVICE_TAG_BYTES,
  decodeDeviceSlot,
  headerBlocks,
} from './fsmeta.js';
import { validateVmdk } from './vmdk.js';

const SB = 1024;
const FEATURE_INCOMPAT_FSMETA = 0x4 | 0x8; // CHUNKED_FILE | DEVICE_TABLE
const DEVT_SLOTOFF = DEVICE_TABLE_OFFSET / DEVICE_SLOT_BYTES;
/** A descriptor is a few hundred bytes per 2 GiB of disk; anything near this is not ours. */
const MAX_VMDK_BYTES = 16 << 20;

/** What fsmeta must match: its identity and, per manifest position, its layer file. */
export interface FsmetaExpected {
  /** Superblock uuid: first 16 bytes of the manifest digest (or of the stand-in digest). */
  uuid: Buffer;
  /** Per position, in manifest order: the layer file's length and its 64-byte device tag. */
  layers: readonly { sizeBytes: number; tag: Buffer }[];
  /** fsmeta's recorded length (`manifest.fsmeta_bytes`) when a row has one. */
  sizeBytes?: number;
}

/**
 * The fsmeta-only checks of docs/storage.md §5 on fsmeta's first H blocks (`head`): feature_incompat
 * is CHUNKED_FILE|DEVICE_TABLE; `extra_devices` = the layer count; `devt_slotoff` 9; each slot's
 * `blocks` = its layer's length / 4096, its `mapped_blkaddr` = fsmeta's blocks + the earlier
 * layers' blocks, its tag the expected tag, and its other bytes zero. Pure.
 */
export function fsmetaHeaderProblem(head: Buffer, expected: FsmetaExpected): string | null {
  const n = expected.layers.length;
  const need = headerBlocks(n) * BLOCK;
  if (head.length < need) return `fsmeta is shorter than its ${need / BLOCK} header block(s)`;
  const sb = head.subarray(SB, SB + 128);
  const incompat = sb.readUInt32LE(0x50);
  if (incompat !== FEATURE_INCOMPAT_FSMETA)
    return `feature_incompat is 0x${incompat.toString(16)}, expected 0xc (CHUNKED_FILE|DEVICE_TABLE)`;
  const extra = sb.readUInt16LE(0x56);
  if (extra !== n) return `extra_devices is ${extra}, the manifest has ${n} layer(s)`;
  const slotoff = sb.readUInt16LE(0x58);
  if (slotoff !== DEVT_SLOTOFF) return `devt_slotoff is ${slotoff}, expected ${DEVT_SLOTOFF}`;
  if (!sb.subarray(0x30, 0x40).equals(expected.uuid)) return 'uuid does not match the manifest digest';
  const fsmetaBlocks = sb.readUInt32LE(0x24);
  let mapped = fsmetaBlocks;
  for (let i = 0; i < n; i++) {
    const l = expected.layers[i]!;
    const s = decodeDeviceSlot(head, DEVICE_TABLE_OFFSET + i * DEVICE_SLOT_BYTES);
    if (l.sizeBytes % BLOCK !== 0) return `layer ${i} length ${l.sizeBytes} is not a multiple of 4096`;
    if (s.blocks !== l.sizeBytes / BLOCK)
      return `device ${i + 1} has ${s.blocks} blocks, its layer file has ${l.sizeBytes / BLOCK}`;
    if (s.mappedBlkaddr !== mapped) return `device ${i + 1} is mapped at block ${s.mappedBlkaddr}, expected ${mapped}`;
    if (l.tag.length !== DEVICE_TAG_BYTES || !s.tag.equals(l.tag))
      return `device ${i + 1} tag does not match layer ${i}`;
    if (s.rest.some((b) => b !== 0)) return `device ${i + 1} slot has non-zero reserved bytes`;
    mapped += s.blocks;
  }
  return null;
}

/** Reads what `erofsHeaderProblem` needs (block 0, the root inode) without following symlinks. */
async function checkHeader(path: string, expected: ErofsHeaderExpected): Promise<string | null> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) return 'is a symbolic link';
    if (!st.isFile()) return 'not a regular file';
    const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const length = (await fh.stat()).size;
      const block0 = await readAt(fh, 0, BLOCK);
      let root: Buffer | null = null;
      if (block0.length === BLOCK && block0.readUInt32LE(SB) === EROFS_MAGIC) {
        const off = rootInodeOffset(block0);
        if (off + 32 <= length) root = await readAt(fh, off, 32);
      }
      return erofsHeaderProblem(block0, root, length, expected);
    } finally {
      await fh.close();
    }
  } catch (err) {
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/**
 * A layer EROFS file (docs/storage.md §5): regular file (not a symlink), length, magic, CRC,
 * blkszbits, blocks, meta_blkaddr, root inode, volume_name, no device table, and — when given —
 * the recorded length and the uuid of its diff_id.
 */
export async function validateLayerFile(
  path: string,
  expected: { sizeBytes?: number; uuid?: Buffer } = {},
): Promise<string | null> {
  return checkHeader(path, { kind: 'layer', ...expected });
}

/**
 * fsmeta (docs/storage.md §5): every layer-EROFS check (with fsmeta's uuid) plus `fsmetaHeaderProblem`.
 * Reads block 0, the root inode and the device table: H + 1 small reads.
 */
export async function validateFsmetaFile(path: string, expected: FsmetaExpected): Promise<string | null> {
  const common = await checkHeader(path, {
    kind: 'fsmeta',
    uuid: expected.uuid,
    ...(expected.sizeBytes !== undefined ? { sizeBytes: expected.sizeBytes } : {}),
  });
  if (common) return common;
  let head: Buffer;
  try {
    const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      head = await readAt(fh, 0, headerBlocks(expected.layers.length) * BLOCK);
    } finally {
      await fh.close();
    }
  } catch (err) {
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  return fsmetaHeaderProblem(head, expected);
}

/**
 * The VMDK (docs/storage.md §5, docs/erofs.md §8): a regular file (not a symlink) of sane size, UTF-8, that
 * `validateVmdk` accepts against the expected paths and file lengths (and CID when given).
 */
export async function validateVmdkFile(
  path: string,
  expected: { paths: readonly string[]; sizes: readonly number[]; cid?: string },
): Promise<string | null> {
  let text: string;
  try {
    // O_NOFOLLOW: a symlink is not our artifact (docs/storage.md §5 uses lstat).
    const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) return 'not a regular file';
      if (st.size > MAX_VMDK_BYTES) return `descriptor of ${st.size} bytes is too large`;
      text = new TextDecoder('utf-8', { fatal: true }).decode(await readAt(fh, 0, st.size));
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof TypeError) return 'descriptor is not UTF-8';
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') return 'is a symbolic link';
    return `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  return validateVmdk(text, expected);
}

async function readAt(fh: import('node:fs/promises').FileHandle, pos: number, bytes: number): Promise<Buffer> {
  const buf = Buffer.alloc(bytes);
  let off = 0;
  while (off < bytes) {
    const { bytesRead } = await fh.read(buf, off, bytes - off, pos + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return buf.subarray(0, off);
}

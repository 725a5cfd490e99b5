/**
 * fsmeta device-table arithmetic (docs/erofs.md §2, §7.2, §7.3). Pure: no I/O. The EROFS encoding
 * itself is the shared image writer's (src/erofs/image-writer.ts); this module decides what goes
 * into the device table, the uuid and the header size.
 */
import { createHash } from 'node:crypto';
import { LimitExceededError } from '../errors.js';
import { digestHex } from '../util/digest.js';

export const BLOCK = 4096;
/** Byte offset of the first device slot: `devt_slotoff` 9 × 128 (docs/erofs.md §3). */
export const DEVICE_TABLE_OFFSET = 1152;
export const DEVICE_SLOT_BYTES = 128;
export const DEVICE_TAG_BYTES = 64;
/** Disk block addresses are u32: the whole disk must stay below 2^32 blocks (16 TiB). */
export const MAX_DISK_BLOCKS = 2 ** 32;

/** One device-table slot (the shape `writeImageMetadata` takes; docs/erofs.md §7.2). */
export interface DeviceSlot {
  /** 64 bytes, written verbatim. */
  tag: Buffer;
  /** The layer file's length / 4096. */
  blocks: number;
  /** Disk block where this layer starts: fsmeta's blocks + the blocks of earlier positions. */
  mappedBlkaddr: number;
}

/** H = ceil((1152 + 128·n) / 4096): the blocks before fsmeta's own directory blocks (§2). */
export function headerBlocks(layerCount: number): number {
  return Math.ceil((DEVICE_TABLE_OFFSET + DEVICE_SLOT_BYTES * layerCount) / BLOCK);
}

/** In-cache tag: the ASCII hex of the diff_id, its first 64 characters, no NUL (§7.2). */
export function diffIdTag(diffId: string): Buffer {
  const hex = digestHex(diffId).slice(0, DEVICE_TAG_BYTES);
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`diffIdTag: not a digest: ${JSON.stringify(diffId)}`);
  return Buffer.from(hex, 'latin1');
}

/** Outside the cache: the 32-hex form of the layer's superblock uuid, zero-padded to 64 (§7.2). */
export function uuidTag(uuid: Buffer): Buffer {
  if (uuid.length !== 16) throw new Error('uuidTag: uuid must be 16 bytes');
  const tag = Buffer.alloc(DEVICE_TAG_BYTES);
  tag.write(uuid.toString('hex'), 0, 'latin1');
  return tag;
}

/**
 * The stand-in manifest digest outside the cache: `sha256(uuidhex₀ "\n" uuidhex₁ "\n" …)` over
 * each position's 32-hex layer uuid (§7.2). It gives fsmeta's uuid and the VMDK CID.
 */
export function standInDigest(layerUuids: readonly Buffer[]): string {
  const h = createHash('sha256');
  for (const u of layerUuids) h.update(`${u.toString('hex')}\n`, 'latin1');
  return `sha256:${h.digest('hex')}`;
}

/**
 * Device slots, one per manifest POSITION (a duplicated layer gets two), with
 * `mapped_blkaddr = fsmetaBlocks + Σ blocks of earlier positions`. A disk that reaches 2^32
 * blocks is `LimitExceededError` `diskBlocks` (§7.2).
 */
export function deviceSlots(fsmetaBlocks: number, layers: readonly { blocks: number; tag: Buffer }[]): DeviceSlot[] {
  let next = fsmetaBlocks;
  const slots: DeviceSlot[] = [];
  for (const l of layers) {
    if (l.tag.length !== DEVICE_TAG_BYTES) throw new Error('deviceSlots: a tag must be 64 bytes');
    if (!Number.isSafeInteger(l.blocks) || l.blocks <= 0) throw new Error(`deviceSlots: bad block count ${l.blocks}`);
    slots.push({ tag: l.tag, blocks: l.blocks, mappedBlkaddr: next });
    next += l.blocks;
  }
  checkDiskBlocks(next);
  return slots;
}

/** Throws `LimitExceededError('diskBlocks')` when a disk of `total` blocks cannot be addressed. */
export function checkDiskBlocks(total: number): void {
  if (total >= MAX_DISK_BLOCKS) {
    throw new LimitExceededError('diskBlocks', total, MAX_DISK_BLOCKS - 1, 'stitched disk is over 16 TiB');
  }
}

/** Encodes a device slot (docs/erofs.md §7.2): tag, blocks @0x40, mapped_blkaddr @0x44, zeros. */
export function encodeDeviceSlot(s: DeviceSlot): Buffer {
  const b = Buffer.alloc(DEVICE_SLOT_BYTES);
  s.tag.copy(b, 0, 0, DEVICE_TAG_BYTES);
  b.writeUInt32LE(s.blocks, 0x40);
  b.writeUInt32LE(s.mappedBlkaddr, 0x44);
  return b;
}

/** Decodes the device slot at `off` of a buffer holding fsmeta's first blocks. */
export function decodeDeviceSlot(buf: Buffer, off: number): DeviceSlot & { rest: Buffer } {
  return {
    tag: buf.subarray(off, off + DEVICE_TAG_BYTES),
    blocks: buf.readUInt32LE(off + 0x40),
    mappedBlkaddr: buf.readUInt32LE(off + 0x44),
    rest: buf.subarray(off + 0x48, off + DEVICE_SLOT_BYTES),
  };
}

/**
 * The EROFS reader's file access (reader.ts): the superblock parse and random reads through a small
 * chunk cache; every failure is a CacheCorruptError naming the image.
 */
import type { FileHandle } from 'node:fs/promises';
import { CacheCorruptError } from '../errors.js';
import { SB_OFFSET } from './format.js';
import type { DeviceSlot } from './image-writer.js';
import { superblockProblem } from './header.js';

export interface SuperblockInfo {
  checksum: number;
  featureCompat: number;
  featureIncompat: number;
  blkszbits: number;
  rootNid: number;
  inos: bigint;
  buildTime: bigint;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
  uuid: Buffer;
  /** volume_name up to the first NUL (latin1). */
  volumeName: string;
  extraDevices: number;
  devtSlotoff: number;
  /** Device table slots (fsmeta), empty for layer images. */
  devices: DeviceSlot[];
  /** File length in bytes. */
  length: number;
}

export function corrupt(path: string, reason: string): CacheCorruptError {
  return new CacheCorruptError(path, reason);
}

/** Parses block 0's superblock after `superblockProblem` (the checksum only when flagged: any EROFS image reads). */
export function parseSuperblock(block0: Buffer, length: number, path: string): SuperblockInfo {
  const why = superblockProblem(block0, length, { requireChecksum: false });
  if (why) throw corrupt(path, why);
  const sb = block0.subarray(SB_OFFSET, SB_OFFSET + 128);
  const featureCompat = sb.readUInt32LE(0x08);
  const checksum = sb.readUInt32LE(0x04);
  const blkszbits = sb[0x0c]!;
  const blocks = sb.readUInt32LE(0x24);
  const metaBlkaddr = sb.readUInt32LE(0x28);
  const vn = sb.subarray(0x40, 0x50);
  const nul = vn.indexOf(0);
  const extraDevices = sb.readUInt16LE(0x56);
  const devtSlotoff = sb.readUInt16LE(0x58);
  return {
    checksum,
    featureCompat,
    featureIncompat: sb.readUInt32LE(0x50),
    blkszbits,
    rootNid: sb.readUInt16LE(0x0e),
    inos: sb.readBigUInt64LE(0x10),
    buildTime: sb.readBigUInt64LE(0x18),
    buildTimeNsec: sb.readUInt32LE(0x20),
    blocks,
    metaBlkaddr,
    xattrBlkaddr: sb.readUInt32LE(0x2c),
    uuid: Buffer.from(sb.subarray(0x30, 0x40)),
    volumeName: vn.subarray(0, nul < 0 ? 16 : nul).toString('latin1'),
    extraDevices,
    devtSlotoff,
    devices: [],
    length,
  };
}

/** Random access with a small chunk cache (1 MiB chunks, LRU). */
export class ImageFile {
  private cache = new Map<number, Buffer>();
  private static readonly CHUNK = 1 << 20;
  private static readonly MAX_CHUNKS = 32;
  constructor(
    readonly fh: FileHandle,
    readonly length: number,
    readonly path: string,
  ) {}

  async read(pos: number, len: number): Promise<Buffer> {
    if (pos < 0 || len < 0 || pos + len > this.length)
      throw corrupt(this.path, `read of ${len} bytes at ${pos} beyond the end of the image`);
    const C = ImageFile.CHUNK;
    const first = Math.floor(pos / C);
    const last = Math.floor((pos + len - 1) / C);
    if (len === 0) return Buffer.alloc(0);
    if (first === last) {
      const c = await this.chunk(first);
      return c.subarray(pos - first * C, pos - first * C + len);
    }
    const out = Buffer.allocUnsafe(len);
    let o = 0;
    for (let i = first; i <= last; i++) {
      const c = await this.chunk(i);
      const s = i === first ? pos - first * C : 0;
      const e = Math.min(c.length, pos + len - i * C);
      c.copy(out, o, s, e);
      o += e - s;
    }
    return out;
  }

  private async chunk(i: number): Promise<Buffer> {
    const hit = this.cache.get(i);
    if (hit) {
      this.cache.delete(i);
      this.cache.set(i, hit);
      return hit;
    }
    const start = i * ImageFile.CHUNK;
    const n = Math.min(ImageFile.CHUNK, this.length - start);
    const b = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(b, got, n - got, start + got);
      if (bytesRead === 0) throw corrupt(this.path, 'unexpected end of file');
      got += bytesRead;
    }
    this.cache.set(i, b);
    if (this.cache.size > ImageFile.MAX_CHUNKS) this.cache.delete(this.cache.keys().next().value!);
    return b;
  }
}

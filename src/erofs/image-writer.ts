/**
 * Serializes a planned image (docs/erofs.md §2–§4, §5 "Finish" steps 2–5, §7.2): directory and plain
 * symlink blocks from `firstFreeBlock`, the metadata area at `meta_blkaddr`, the device table
 * (fsmeta), and the superblock LAST with its CRC; then ftruncate to B × 4096, fsync and a length
 * assertion. Used by the layer writer (after streaming file data) and by the fsmeta writer.
 */
import type { FileHandle } from 'node:fs/promises';
import type { DirNode } from './tree.js';
import {
  BLOCK_SIZE,
  CHUNK_INDEX_SIZE,
  DEVICE_SLOT_SIZE,
  DEVT_SLOTOFF,
  FEATURE_COMPAT_SB_CHKSUM,
  FEATURE_INCOMPAT_CHUNKED_FILE,
  FEATURE_INCOMPAT_DEVICE_TABLE,
  FT_DIR,
  INODE_EXTENDED_SIZE,
} from './format.js';
import {
  encodeDeviceSlot,
  encodeDirBlock,
  encodeInodeExtended,
  encodeSuperblock,
  encodeXattrIbody,
  xattrIcount,
} from './encode.js';
import { planImage, type ImageLayout, type PlannedInode } from './layout.js';
import { LimitExceededError } from '../errors.js';
import type { WriteObserver } from './data-writer.js';

export type { ImageLayout, PlannedInode } from './layout.js';

export interface DeviceSlot {
  /** 64 bytes (docs/erofs.md §7.2). */
  tag: Buffer;
  blocks: number;
  mappedBlkaddr: number;
}

/** Plans nids/layouts for `root`; directory/symlink blocks start at firstFreeBlock (docs/erofs.md §2). */
export function layoutImage(root: DirNode, opts: { firstFreeBlock: number }): ImageLayout {
  const layout = planImage(root, opts);
  if (layout.totalBlocks >= 2 ** 32)
    throw new LimitExceededError('diskBlocks', layout.totalBlocks, 2 ** 32 - 1, 'EROFS image');
  return layout;
}

const WRITE_BUF = 1 << 20;

/** Sequential writer that batches small records into ~1 MiB positional writes. */
class SeqWriter {
  private buf = Buffer.alloc(WRITE_BUF);
  private used = 0;
  /** File position of buf[0]. */
  private base: number;
  constructor(
    private readonly fh: FileHandle,
    start: number,
    private readonly observer?: WriteObserver | undefined,
  ) {
    this.base = start;
  }
  get position(): number {
    return this.base + this.used;
  }
  /** Returns a zeroed region of n bytes at the current position (a promise only when it must flush). */
  reserve(n: number): { buf: Buffer; off: number } | Promise<{ buf: Buffer; off: number }> {
    if (this.used + n > this.buf.length) return this.reserveSlow(n);
    const off = this.used;
    this.used += n;
    return { buf: this.buf, off };
  }
  private async reserveSlow(n: number): Promise<{ buf: Buffer; off: number }> {
    await this.flush();
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const off = this.used;
    this.used += n;
    return { buf: this.buf, off };
  }
  /** Zero-fills up to file position `pos` (≥ the current position). */
  skipTo(pos: number): void | Promise<void> {
    const gap = pos - this.position;
    if (gap < 0) throw new Error(`SeqWriter: position ${pos} is behind ${this.position}`);
    if (gap === 0) return;
    if (this.used + gap <= this.buf.length) {
      this.used += gap;
      return;
    }
    return this.skipSlow(gap);
  }
  private async skipSlow(gap: number): Promise<void> {
    while (gap > 0) {
      const step = Math.min(gap, this.buf.length);
      await this.reserve(step);
      gap -= step;
    }
  }
  async flush(): Promise<void> {
    const seen = this.observer?.data(this.base, this.buf.subarray(0, this.used));
    if (seen) await seen;
    let done = 0;
    while (done < this.used) {
      const { bytesWritten } = await this.fh.write(this.buf, done, this.used - done, this.base + done);
      done += bytesWritten;
    }
    this.base += this.used;
    this.buf.fill(0, 0, this.used);
    this.used = 0;
  }
}

/** Encodes directory block `b` of `p` into out[off…]; returns bytes used (docs/erofs.md §4.5). */
function encodeDirBlockOf(p: PlannedInode, b: number, layout: ImageLayout, out: Buffer, off: number): number {
  const names = p.dirNames!;
  const starts = p.dirBlockStarts!;
  const from = starts[b]!;
  const to = b + 1 < starts.length ? starts[b + 1]! : names.length;
  const slice = names.slice(from, to);
  const nids: number[] = [];
  const types: number[] = [];
  const dir = p.entry as DirNode;
  for (const n of slice) {
    if (n === '.') {
      nids.push(p.nid);
      types.push(FT_DIR);
      continue;
    }
    if (n === '..') {
      nids.push(p.parent!.nid);
      types.push(FT_DIR);
      continue;
    }
    const c = layout.byEntry.get(dir.children.get(n)!)!;
    nids.push(c.nid);
    types.push(c.fileType);
  }
  return encodeDirBlock(out, off, slice, nids, types);
}

/** Writes the plain (non-inline) blocks of directories and symlinks, in planning order. */
async function writeDataBlocks(fh: FileHandle, layout: ImageLayout, obs?: WriteObserver): Promise<void> {
  const w = new SeqWriter(fh, layout.firstFreeBlock * BLOCK_SIZE, obs);
  for (const p of layout.nodes) {
    if (p.nblocks === 0) continue;
    const sk = w.skipTo(p.blkaddr * BLOCK_SIZE);
    if (sk) await sk;
    const e = p.entry;
    if (e.kind === 'dir') {
      for (let b = 0; b < p.nblocks; b++) {
        const r = w.reserve(BLOCK_SIZE);
        const { buf, off } = 'then' in r ? await r : r;
        encodeDirBlockOf(p, b, layout, buf, off);
      }
    } else if (e.kind === 'symlink') {
      const r = w.reserve(p.nblocks * BLOCK_SIZE);
      const { buf, off } = 'then' in r ? await r : r;
      e.target!.copy(buf, off, 0, Math.min(e.target!.length, p.nblocks * BLOCK_SIZE));
    }
  }
  await w.skipTo(layout.metaBlkaddr * BLOCK_SIZE);
  await w.flush();
}

/** Writes the metadata area: inodes, inline xattrs, inline tails and chunk indexes (nid order). */
async function writeMetadata(fh: FileHandle, layout: ImageLayout, obs?: WriteObserver): Promise<void> {
  const base = layout.metaBlkaddr * BLOCK_SIZE;
  const w = new SeqWriter(fh, base, obs);
  for (const p of layout.nodes) {
    const sk = w.skipTo(base + p.offset);
    if (sk) await sk;
    const r = w.reserve(p.slot);
    const { buf, off } = 'then' in r ? await r : r;
    const e = p.entry;
    encodeInodeExtended(buf, off, {
      format: 1 | (p.layout << 1),
      xattrIcount: xattrIcount(p.ibody),
      mode: p.mode,
      size: p.size,
      iu: p.iu,
      ino: p.nid,
      uid: e.meta.uid,
      gid: e.meta.gid,
      mtime: e.meta.mtime,
      mtimeNsec: e.meta.mtimeNsec,
      nlink: p.nlink,
    });
    let o = off + INODE_EXTENDED_SIZE;
    o += encodeXattrIbody(buf, o, p.xattrs);
    if (p.inlineTail > 0) {
      if (e.kind === 'dir') encodeDirBlockOf(p, p.dirBlockStarts!.length - 1, layout, buf, o);
      else if (e.kind === 'symlink') e.target!.copy(buf, o, p.nblocks * BLOCK_SIZE);
    } else if (e.kind === 'file' && e.data && e.data.device > 0) {
      // One chunk index covers the whole file: {startblk_hi 0, device_id, startblk_lo} (docs/erofs.md §7.2).
      o += p.chunkPad;
      buf.writeUInt16LE(0, o);
      buf.writeUInt16LE(e.data.device, o + 2);
      buf.writeUInt32LE(e.data.startBlock >>> 0, o + 4);
      o += CHUNK_INDEX_SIZE;
    }
  }
  await w.skipTo(layout.totalBlocks * BLOCK_SIZE);
  await w.flush();
}

/**
 * Writes dir/symlink blocks, the metadata area, the device table (when given) and the superblock
 * LAST (CRC over [1024,4096)), then ftruncates to totalBlocks × 4096, fsyncs and asserts the length
 * (docs/erofs.md §5 Finish, §7.2). Regular files with `data.device === 0` are FLAT_PLAIN at
 * data.startBlock; `data.device > 0` are CHUNK_BASED with one chunk index. With `devices` (fsmeta,
 * possibly none): feature_incompat 0xC, extra_devices = devices.length, devt_slotoff 9.
 * `observer` sees every range written here (WriteObserver, data-writer.ts).
 */
export async function writeImageMetadata(
  fh: FileHandle,
  layout: ImageLayout,
  opts: { uuid: Buffer; devices?: DeviceSlot[]; observer?: WriteObserver | undefined },
): Promise<void> {
  await writeImageBody(fh, layout, opts);
  await finishImage(fh, layout);
}

/** `writeImageMetadata` without the final truncate + fsync (`finishImage`). */
export async function writeImageBody(
  fh: FileHandle,
  layout: ImageLayout,
  opts: { uuid: Buffer; devices?: DeviceSlot[]; observer?: WriteObserver | undefined },
): Promise<void> {
  // `devices` given (even empty: a zero-layer image) means fsmeta, which always carries the
  // device-table header fields (docs/erofs.md §3) so that docs/storage.md §5 checks one shape.
  const fsmeta = opts.devices !== undefined;
  const devices = opts.devices ?? [];
  const headerBytes = 1152 + DEVICE_SLOT_SIZE * devices.length;
  if (devices.length > 0 && Math.ceil(headerBytes / BLOCK_SIZE) > layout.firstFreeBlock) {
    throw new Error(
      `device table needs ${Math.ceil(headerBytes / BLOCK_SIZE)} blocks before firstFreeBlock ${layout.firstFreeBlock}`,
    );
  }
  const obs = opts.observer;
  await writeDataBlocks(fh, layout, obs);
  await writeMetadata(fh, layout, obs);
  // Header blocks 0 … H-1: device slots first, the superblock (CRC over [1024,4096)) last (§3).
  const header = Buffer.alloc(Math.max(BLOCK_SIZE, Math.ceil(headerBytes / BLOCK_SIZE) * BLOCK_SIZE));
  devices.forEach((d, i) => {
    encodeDeviceSlot(header, 1152 + i * DEVICE_SLOT_SIZE, d.tag, d.blocks, d.mappedBlkaddr);
  });
  if (header.length > BLOCK_SIZE) await writeFully(fh, header.subarray(BLOCK_SIZE), BLOCK_SIZE, obs);
  encodeSuperblock(header, {
    featureCompat: FEATURE_COMPAT_SB_CHKSUM,
    rootNid: layout.nodes[0]!.nid,
    inos: BigInt(layout.inodes),
    blocks: layout.totalBlocks,
    metaBlkaddr: layout.metaBlkaddr,
    uuid: opts.uuid,
    featureIncompat: fsmeta ? FEATURE_INCOMPAT_CHUNKED_FILE | FEATURE_INCOMPAT_DEVICE_TABLE : 0,
    extraDevices: devices.length,
    devtSlotoff: fsmeta ? DEVT_SLOTOFF : 0,
  });
  await writeFully(fh, header.subarray(0, BLOCK_SIZE), 0, obs);
}

/** Truncates to totalBlocks × 4096, fsyncs and asserts the length (docs/erofs.md §5 Finish). */
export async function finishImage(fh: FileHandle, layout: ImageLayout): Promise<void> {
  const len = layout.totalBlocks * BLOCK_SIZE;
  await fh.truncate(len);
  await fh.sync();
  const st = await fh.stat();
  // A file longer than its superblock says still mounts, but shifts every stitched layer (§5).
  if (st.size !== len) throw new Error(`EROFS image length ${st.size} != blocks × 4096 = ${len}`);
}

async function writeFully(fh: FileHandle, buf: Buffer, pos: number, obs?: WriteObserver): Promise<void> {
  const seen = obs?.data(pos, buf);
  if (seen) await seen;
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    done += bytesWritten;
  }
}

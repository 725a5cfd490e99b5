/**
 * EROFS reader (docs/erofs.md §5 "Reader", docs/storage.md §5): rebuilds the tree a layer (or fsmeta)
 * image was written from — identities keyed by nid, implicit/opaque flags from the marker xattrs,
 * the data map from i_u / i_size or the chunk index — with bounds checks on every address, cycle
 * and depth checks, and rejection of shared xattrs, compression and unknown layouts
 * (CacheCorruptError). Accepts what our writer produces plus compact inodes.
 *
 * `checkErofsHeader` is the cheap validation of docs/storage.md §5 (erofs/header.ts's checks).
 */
import type { Stats } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { type CacheCorruptError, MsbError, toIoError } from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import {
  BLOCK_SIZE,
  CHUNK_FORMAT_BLKBITS_MASK,
  CHUNK_FORMAT_INDEXES,
  DEVICE_SLOT_SIZE,
  DIRENT_SIZE,
  INODE_COMPACT_SIZE,
  INODE_EXTENDED_SIZE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_COMPRESSED_COMPACT,
  LAYOUT_COMPRESSED_FULL,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MARKER_IMPLICIT_SUFFIX,
  MARKER_OPAQUE_SUFFIX,
  NULL_ADDR,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  XATTR_IBODY_HEADER,
  XATTR_INDEX_TRUSTED,
  decodeDev,
} from './format.js';
import { newDir, newMeta, type DirNode, type Entry, type Inode, type Meta, type Xattr } from './tree.js';
import { erofsHeaderProblem, rootInodeOffset, type ErofsHeaderExpected } from './header.js';
import { ImageFile, corrupt, parseSuperblock, type SuperblockInfo } from './image-file.js';

export type { SuperblockInfo } from './image-file.js';

interface RawInode {
  nid: number;
  pos: number;
  isize: number;
  layout: number;
  mode: number;
  size: number;
  iu: number;
  uid: number;
  gid: number;
  mtime: bigint;
  mtimeNsec: number;
  nlink: number;
  ibody: number;
  xattrs: Xattr[];
}

class TreeReader {
  private readonly dirsSeen = new Set<number>();
  private readonly identities = new Map<number, Inode>();
  constructor(
    private readonly f: ImageFile,
    private readonly sb: SuperblockInfo,
    private readonly maxDepth: number,
  ) {}

  private bad(reason: string): CacheCorruptError {
    return corrupt(this.f.path, reason);
  }

  async inode(nid: number): Promise<RawInode> {
    const pos = this.sb.metaBlkaddr * BLOCK_SIZE + nid * INODE_SLOT;
    if (!Number.isSafeInteger(pos) || pos + INODE_COMPACT_SIZE > this.f.length)
      throw this.bad(`nid ${nid} out of bounds`);
    const head = await this.f.read(pos, INODE_COMPACT_SIZE);
    const format = head.readUInt16LE(0);
    const extended = (format & 1) === 1;
    const layout = (format >> 1) & 0x7;
    if (format >> 4) throw this.bad(`nid ${nid}: unknown i_format bits 0x${format.toString(16)}`);
    if (layout === LAYOUT_COMPRESSED_FULL || layout === LAYOUT_COMPRESSED_COMPACT)
      throw this.bad(`nid ${nid}: compressed data is not supported`);
    if (layout !== LAYOUT_FLAT_PLAIN && layout !== LAYOUT_FLAT_INLINE && layout !== LAYOUT_CHUNK_BASED)
      throw this.bad(`nid ${nid}: unknown data layout ${layout}`);
    const isize = extended ? INODE_EXTENDED_SIZE : INODE_COMPACT_SIZE;
    const b = extended ? await this.f.read(pos, INODE_EXTENDED_SIZE) : head;
    const icount = b.readUInt16LE(2);
    const ibody = icount === 0 ? 0 : XATTR_IBODY_HEADER + (icount - 1) * 4;
    let r: RawInode;
    if (extended) {
      const size = b.readBigUInt64LE(8);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad(`nid ${nid}: size out of range`);
      r = {
        nid,
        pos,
        isize,
        layout,
        mode: b.readUInt16LE(4),
        size: Number(size),
        iu: b.readUInt32LE(16),
        uid: b.readUInt32LE(24),
        gid: b.readUInt32LE(28),
        mtime: b.readBigUInt64LE(32),
        mtimeNsec: b.readUInt32LE(40),
        nlink: b.readUInt32LE(44),
        ibody,
        xattrs: [],
      };
    } else {
      r = {
        nid,
        pos,
        isize,
        layout,
        mode: b.readUInt16LE(4),
        size: b.readUInt32LE(8),
        iu: b.readUInt32LE(16),
        uid: b.readUInt16LE(24),
        gid: b.readUInt16LE(26),
        mtime: this.sb.buildTime + BigInt(b.readUInt32LE(12)),
        mtimeNsec: this.sb.buildTimeNsec,
        nlink: b.readUInt16LE(6),
        ibody,
        xattrs: [],
      };
    }
    if (r.mtimeNsec >= 1e9) throw this.bad(`nid ${nid}: mtime nanoseconds out of range`);
    if (ibody > 0) r.xattrs = await this.xattrs(r);
    return r;
  }

  private async xattrs(r: RawInode): Promise<Xattr[]> {
    const b = await this.f.read(r.pos + r.isize, r.ibody);
    if (b[4] !== 0) throw this.bad(`nid ${r.nid}: shared xattrs are not supported`);
    const out: Xattr[] = [];
    let o = XATTR_IBODY_HEADER;
    while (o < r.ibody) {
      if (o + 4 > r.ibody) throw this.bad(`nid ${r.nid}: truncated xattr entry`);
      const nameLen = b[o]!;
      const index = b[o + 1]!;
      const valueSize = b.readUInt16LE(o + 2);
      const end = o + 4 + nameLen + valueSize;
      if (end > r.ibody) throw this.bad(`nid ${r.nid}: xattr entry beyond the ibody`);
      if (![1, 2, 3, 4, 6].includes(index)) throw this.bad(`nid ${r.nid}: unsupported xattr prefix index ${index}`);
      out.push({
        index,
        suffix: Buffer.from(b.subarray(o + 4, o + 4 + nameLen)),
        value: Buffer.from(b.subarray(o + 4 + nameLen, end)),
      });
      o = (end + 3) & ~3;
    }
    return out;
  }

  /** Bytes of a directory/symlink body (FLAT_PLAIN or FLAT_INLINE), split per logical block. */
  private async bodyBlocks(r: RawInode): Promise<Buffer[]> {
    const size = r.size;
    if (size === 0) return [];
    const full = Math.floor(size / BLOCK_SIZE);
    const tail = size % BLOCK_SIZE;
    const out: Buffer[] = [];
    const plainBlocks = r.layout === LAYOUT_FLAT_PLAIN ? Math.ceil(size / BLOCK_SIZE) : full;
    if (r.layout === LAYOUT_CHUNK_BASED) throw this.bad(`nid ${r.nid}: chunk-based directory or symlink`);
    if (plainBlocks > 0) {
      if (r.iu === NULL_ADDR || r.iu + plainBlocks > this.sb.blocks)
        throw this.bad(`nid ${r.nid}: data blocks out of bounds`);
      const all = await this.f.read(r.iu * BLOCK_SIZE, plainBlocks * BLOCK_SIZE);
      for (let i = 0; i < plainBlocks; i++) {
        const len = i === plainBlocks - 1 && r.layout === LAYOUT_FLAT_PLAIN && tail ? tail : BLOCK_SIZE;
        out.push(all.subarray(i * BLOCK_SIZE, i * BLOCK_SIZE + len));
      }
    }
    if (r.layout === LAYOUT_FLAT_INLINE && tail > 0) {
      const at = r.pos + r.isize + r.ibody;
      if (Math.floor(at / BLOCK_SIZE) !== Math.floor((at + tail - 1) / BLOCK_SIZE))
        throw this.bad(`nid ${r.nid}: inline data crosses a block boundary`);
      out.push(await this.f.read(at, tail));
    }
    return out;
  }

  private meta(r: RawInode, dir: DirNode | null): Meta {
    const xattrs: Xattr[] = [];
    for (const x of r.xattrs) {
      if (dir && x.index === XATTR_INDEX_TRUSTED) {
        if (x.suffix.equals(MARKER_OPAQUE_SUFFIX)) {
          dir.opaque = true;
          continue;
        }
        if (x.suffix.equals(MARKER_IMPLICIT_SUFFIX)) {
          dir.implicit = true;
          continue;
        }
      }
      xattrs.push(x);
    }
    return newMeta({ mode: r.mode & 0o7777, uid: r.uid, gid: r.gid, mtime: r.mtime, mtimeNsec: r.mtimeNsec, xattrs });
  }

  async dir(r: RawInode, depth: number): Promise<DirNode> {
    if ((r.mode & S_IFMT) !== S_IFDIR) throw this.bad(`nid ${r.nid} is not a directory`);
    if (this.dirsSeen.has(r.nid)) throw this.bad(`directory nid ${r.nid} reached twice (cycle)`);
    this.dirsSeen.add(r.nid);
    const d = newDir(false);
    d.meta = this.meta(r, d);
    let prev: Buffer | null = null;
    for (const blk of await this.bodyBlocks(r)) {
      if (blk.length < DIRENT_SIZE) throw this.bad(`nid ${r.nid}: directory block too short`);
      const first = blk.readUInt16LE(8);
      if (first % DIRENT_SIZE !== 0 || first < DIRENT_SIZE || first > blk.length)
        throw this.bad(`nid ${r.nid}: bad dirent nameoff`);
      const n = first / DIRENT_SIZE;
      for (let i = 0; i < n; i++) {
        const o = i * DIRENT_SIZE;
        const nid = blk.readBigUInt64LE(o);
        const nameoff = blk.readUInt16LE(o + 8);
        const limit = i + 1 < n ? blk.readUInt16LE(o + 8 + DIRENT_SIZE) : blk.length;
        if (nameoff < first || limit > blk.length || nameoff >= limit)
          throw this.bad(`nid ${r.nid}: bad dirent name bounds`);
        let end = nameoff;
        while (end < limit && blk[end] !== 0) end++; // strnlen, as the kernel does
        const name = blk.subarray(nameoff, end);
        if (name.length === 0 || name.length > 255 || name.includes(0x2f))
          throw this.bad(`nid ${r.nid}: invalid name in directory`);
        if (prev && Buffer.compare(prev, name) >= 0) throw this.bad(`nid ${r.nid}: directory entries not sorted`);
        prev = name;
        const key = name.toString('latin1');
        if (key === '.' || key === '..') continue;
        if (nid > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad(`nid ${r.nid}: child nid out of range`);
        d.children.set(key, await this.child(Number(nid), depth + 1));
      }
    }
    return d;
  }

  private async child(nid: number, depth: number): Promise<Entry> {
    if (depth > this.maxDepth) throw this.bad(`directory depth above ${this.maxDepth}`);
    const known = this.identities.get(nid);
    if (known) return known;
    const r = await this.inode(nid);
    const fmt = r.mode & S_IFMT;
    if (fmt === S_IFDIR) return this.dir(r, depth);
    const meta = this.meta(r, null);
    let e: Inode;
    switch (fmt) {
      case S_IFREG:
        e = { kind: 'file', meta, size: r.size };
        if (r.size > 0) e.data = await this.fileData(r);
        break;
      case S_IFLNK: {
        if (r.size === 0 || r.size > 4095) throw this.bad(`nid ${nid}: symlink target of ${r.size} bytes`);
        const target = Buffer.concat(await this.bodyBlocks(r));
        e = { kind: 'symlink', meta, size: r.size, target };
        break;
      }
      case S_IFCHR:
      case S_IFBLK: {
        const { major, minor } = decodeDev(r.iu);
        e = { kind: fmt === S_IFCHR ? 'chr' : 'blk', meta, size: 0, rdevMajor: major, rdevMinor: minor };
        break;
      }
      case S_IFIFO:
        e = { kind: 'fifo', meta, size: 0 };
        break;
      case S_IFSOCK:
        e = { kind: 'sock', meta, size: 0 };
        break;
      default:
        throw this.bad(`nid ${nid}: unknown file type 0o${fmt.toString(8)}`);
    }
    this.identities.set(nid, e);
    return e;
  }

  private async fileData(r: RawInode): Promise<{ device: number; startBlock: number }> {
    const nblocks = Math.ceil(r.size / BLOCK_SIZE);
    if (r.layout === LAYOUT_FLAT_PLAIN) {
      if (r.iu === NULL_ADDR || r.iu + nblocks > this.sb.blocks)
        throw this.bad(`nid ${r.nid}: file data out of bounds`);
      return { device: 0, startBlock: r.iu };
    }
    if (r.layout === LAYOUT_FLAT_INLINE) throw this.bad(`nid ${r.nid}: inline regular-file data is not supported`);
    // CHUNK_BASED (fsmeta): indexes after the ibody, 8-aligned; they must describe one contiguous run.
    if (!(r.iu & CHUNK_FORMAT_INDEXES)) throw this.bad(`nid ${r.nid}: block-map chunk format is not supported`);
    const chunkBlocks = 2 ** (r.iu & CHUNK_FORMAT_BLKBITS_MASK);
    const count = Math.ceil(nblocks / chunkBlocks);
    const at = (r.pos + r.isize + r.ibody + 7) & ~7;
    const idx = await this.f.read(at, count * 8);
    let device = -1;
    let start = 0;
    for (let i = 0; i < count; i++) {
      const hi = idx.readUInt16LE(i * 8);
      const dev = idx.readUInt16LE(i * 8 + 2);
      const lo = idx.readUInt32LE(i * 8 + 4);
      if (hi !== 0 || lo === NULL_ADDR) throw this.bad(`nid ${r.nid}: unsupported chunk index`);
      if (i === 0) {
        device = dev;
        start = lo;
      } else if (dev !== device || lo !== start + i * chunkBlocks)
        throw this.bad(`nid ${r.nid}: chunks are not contiguous`);
    }
    if (device > this.sb.extraDevices) throw this.bad(`nid ${r.nid}: device ${device} beyond the device table`);
    if (device === 0 && start + nblocks > this.sb.blocks) throw this.bad(`nid ${r.nid}: file data out of bounds`);
    if (device > 0) {
      const slot = this.sb.devices[device - 1]!;
      if (start + nblocks > slot.blocks) throw this.bad(`nid ${r.nid}: chunk beyond device ${device}`);
    }
    return { device, startBlock: start };
  }
}

async function openImage(path: string): Promise<{ fh: FileHandle; length: number }> {
  let fh: FileHandle;
  try {
    // O_NOFOLLOW: a symlink planted in the cache is refused, never followed (docs/storage.md §5);
    // O_NONBLOCK: a FIFO does not block the open. Checked on the descriptor, so nothing can swap
    // the file between the check and the reads.
    fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw corrupt(path, 'missing');
    if (code === 'ELOOP') throw corrupt(path, 'not a regular file (a symbolic link)');
    throw toIoError(err, path);
  }
  let st: Stats;
  try {
    st = await fh.stat();
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw toIoError(err, path);
  }
  const why = !st.isFile()
    ? 'not a regular file'
    : st.size === 0 || st.size % BLOCK_SIZE !== 0
      ? `length ${st.size} is not a positive multiple of 4096`
      : null;
  if (why) {
    await fh.close().catch(() => undefined);
    throw corrupt(path, why);
  }
  return { fh, length: st.size };
}

async function readHeader(f: ImageFile, path: string): Promise<SuperblockInfo> {
  const sb = parseSuperblock(await f.read(0, BLOCK_SIZE), f.length, path);
  if (sb.extraDevices > 0) {
    const off = sb.devtSlotoff * DEVICE_SLOT_SIZE;
    const table = await f.read(off, sb.extraDevices * DEVICE_SLOT_SIZE);
    for (let i = 0; i < sb.extraDevices; i++) {
      const o = i * DEVICE_SLOT_SIZE;
      sb.devices.push({
        tag: Buffer.from(table.subarray(o, o + 64)),
        blocks: table.readUInt32LE(o + 0x40),
        mappedBlkaddr: table.readUInt32LE(o + 0x44),
      });
    }
  }
  return sb;
}

/**
 * docs/storage.md §5 EROFS checks (`erofsHeaderProblem`, erofs/header.ts): regular file (lstat),
 * length, recorded length, magic, CRC, blkszbits 12, blocks × 4096 = length, meta_blkaddr < blocks,
 * a known volume_name, uuid, no device table for `kind: 'layer'`, and a root inode that parses as
 * a directory. Throws CacheCorruptError with the reason.
 */
export async function checkErofsHeader(path: string, expect: ErofsHeaderExpected = {}): Promise<SuperblockInfo> {
  const { fh, length } = await openImage(path);
  try {
    const f = new ImageFile(fh, length, path);
    const block0 = await f.read(0, BLOCK_SIZE);
    const rootAt = rootInodeOffset(block0);
    const root = rootAt + INODE_SLOT <= length ? await f.read(rootAt, INODE_SLOT) : null;
    const why = erofsHeaderProblem(block0, root, length, expect);
    if (why) throw corrupt(path, why);
    const sb = await readHeader(f, path);
    // The full parse of the root inode (xattrs, timestamps) beyond the pure checks.
    await new TreeReader(f, sb, DEFAULT_LIMITS.maxPathDepth).inode(sb.rootNid);
    return sb;
  } catch (err) {
    throw err instanceof MsbError ? err : toIoError(err, path);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Reads the whole tree of an image (docs/erofs.md §5 Reader). */
export async function readErofsTree(
  path: string,
  opts: { maxPathDepth?: number } = {},
): Promise<{
  root: DirNode;
  blocks: number;
  uuid: Buffer;
  superblock: SuperblockInfo;
}> {
  const { fh, length } = await openImage(path);
  try {
    const f = new ImageFile(fh, length, path);
    const sb = await readHeader(f, path);
    const tr = new TreeReader(f, sb, opts.maxPathDepth ?? DEFAULT_LIMITS.maxPathDepth);
    const root = await tr.dir(await tr.inode(sb.rootNid), 0);
    return { root, blocks: sb.blocks, uuid: sb.uuid, superblock: sb };
  } catch (err) {
    throw err instanceof MsbError ? err : toIoError(err, path);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

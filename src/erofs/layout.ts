/**
 * Planning (docs/erofs.md §2, §4.3–§4.5): nids, data layouts, directory packing, link counts and block
 * allocation for a tree. Pure: no I/O; the image writer serializes the result.
 */
import { isDir, type DirNode, type Entry, type Inode, type Xattr } from './tree.js';
import {
  BLOCK_SIZE,
  CHUNK_FORMAT_INDEXES,
  CHUNK_INDEX_SIZE,
  FT_BLK,
  FT_CHR,
  FT_DIR,
  FT_FIFO,
  FT_REG,
  FT_SOCK,
  FT_SYMLINK,
  INODE_EXTENDED_SIZE,
  INODE_SLOT,
  LAYOUT_CHUNK_BASED,
  LAYOUT_FLAT_INLINE,
  LAYOUT_FLAT_PLAIN,
  MARKER_IMPLICIT_SUFFIX,
  MARKER_OPAQUE_SUFFIX,
  MARKER_VALUE,
  NULL_ADDR,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  XATTR_INDEX_TRUSTED,
  encodeDev,
} from './format.js';
import { compareXattrs, packDirBlocks, xattrIbodySize } from './encode.js';

/** One planned inode (a hardlink group has one). */
export interface PlannedInode {
  entry: Entry;
  nid: number;
  /** Byte offset of the inode inside the metadata area (= nid × 32). */
  offset: number;
  /** i_mode including S_IFMT. */
  mode: number;
  fileType: number;
  layout: number;
  /** i_size. */
  size: number;
  /** i_u. */
  iu: number;
  nlink: number;
  /** Sorted, marker xattrs included. */
  xattrs: Xattr[];
  ibody: number;
  /** Dir/symlink: bytes stored inline after the ibody (FLAT_INLINE), else 0. */
  inlineTail: number;
  /** Dir/symlink: first block of its own blocks (NULL_ADDR when none) and their count. */
  blkaddr: number;
  nblocks: number;
  /** Slot bytes in the metadata area (multiple of 32). */
  slot: number;
  /** CHUNK_BASED only: padding before the 8-byte index, the device and start block. */
  chunkPad: number;
  /** Dirs only: sorted names incl. `.` and `..` (latin1), block boundaries, parent. */
  dirNames?: string[];
  dirBlockStarts?: number[];
  parent?: PlannedInode;
}

export interface ImageLayout {
  /** B: the file length is totalBlocks × 4096. */
  totalBlocks: number;
  /** inos: distinct inodes (a hardlink group counts once). */
  inodes: number;
  firstFreeBlock: number;
  /** meta_blkaddr = D + 1 (first block after dir/symlink blocks). */
  metaBlkaddr: number;
  /** Bytes used in the metadata area. */
  metaBytes: number;
  /** Planned inodes in nid order (= planning order). */
  nodes: PlannedInode[];
  /** entry (DirNode or shared Inode object) → its planned inode. */
  byEntry: Map<Entry, PlannedInode>;
}

const S_IFMT_OF: Record<Entry['kind'], number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  chr: S_IFCHR,
  blk: S_IFBLK,
  fifo: S_IFIFO,
  sock: S_IFSOCK,
};
const FT_OF: Record<Entry['kind'], number> = {
  file: FT_REG,
  dir: FT_DIR,
  symlink: FT_SYMLINK,
  chr: FT_CHR,
  blk: FT_BLK,
  fifo: FT_FIFO,
  sock: FT_SOCK,
};

/** Xattrs as written: the node's own plus marker xattrs for dir flags, sorted by (index, suffix). */
export function xattrsForWrite(e: Entry): Xattr[] {
  const own = e.meta.xattrs;
  const markers = isDir(e) && (e.opaque || e.implicit);
  if (!markers) {
    let sorted = true;
    for (let i = 1; i < own.length && sorted; i++) sorted = compareXattrs(own[i - 1]!, own[i]!) < 0;
    if (sorted) return own; // shared, never mutated: saves an array per inode on big layers
  }
  const xs = [...own];
  if (isDir(e)) {
    if (e.opaque) xs.push({ index: XATTR_INDEX_TRUSTED, suffix: MARKER_OPAQUE_SUFFIX, value: MARKER_VALUE });
    if (e.implicit) xs.push({ index: XATTR_INDEX_TRUSTED, suffix: MARKER_IMPLICIT_SUFFIX, value: MARKER_VALUE });
  }
  xs.sort(compareXattrs);
  return xs;
}

/** chunkbits = 12 + ceil(log2(nblocks)) (docs/erofs.md §7.2). */
export function chunkBitsFor(size: number): number {
  const nblocks = Math.ceil(size / BLOCK_SIZE);
  let b = 0;
  while (2 ** b < nblocks) b++;
  return 12 + b;
}

/** Counts the aliases (paths) of every non-directory identity: nlink (docs/erofs.md §4.4). */
function countAliases(root: DirNode): Map<Inode, number> {
  const counts = new Map<Inode, number>();
  const stack: DirNode[] = [root];
  while (stack.length) {
    const d = stack.pop()!;
    for (const c of d.children.values()) {
      if (isDir(c)) stack.push(c);
      else counts.set(c, (counts.get(c) ?? 0) + 1);
    }
  }
  return counts;
}

/** The allocation state of one `planImage` run: inode slots in the metadata area, directory/symlink blocks. */
class Planner {
  readonly nodes: PlannedInode[] = [];
  readonly byEntry = new Map<Entry, PlannedInode>();
  cursor = INODE_SLOT; // nid 0 reserved (docs/erofs.md §2)
  nextBlock: number;

  constructor(
    private readonly aliases: Map<Inode, number>,
    firstFreeBlock: number,
  ) {
    this.nextBlock = firstFreeBlock;
  }

  plan(e: Entry, parent: PlannedInode | undefined): PlannedInode {
    this.cursor = (this.cursor + INODE_SLOT - 1) & ~(INODE_SLOT - 1);
    const offset = this.cursor;
    const xattrs = xattrsForWrite(e);
    const ibody = xattrIbodySize(xattrs);
    const fixed = INODE_EXTENDED_SIZE + ibody;
    const p: PlannedInode = {
      entry: e,
      nid: offset / INODE_SLOT,
      offset,
      mode: S_IFMT_OF[e.kind] | (e.meta.mode & 0o7777),
      fileType: FT_OF[e.kind],
      layout: LAYOUT_FLAT_PLAIN,
      size: 0,
      iu: NULL_ADDR,
      nlink: 1,
      xattrs,
      ibody,
      inlineTail: 0,
      blkaddr: NULL_ADDR,
      nblocks: 0,
      slot: 0,
      chunkPad: 0,
    };
    let extra = 0;
    if (isDir(e)) {
      const names = [...e.children.keys(), '.', '..'].sort();
      const { blockStarts, lastUsed } = packDirBlocks(names.map((n) => n.length));
      p.dirNames = names;
      p.dirBlockStarts = blockStarts;
      p.parent = parent ?? p;
      let subdirs = 0;
      for (const c of e.children.values()) if (isDir(c)) subdirs++;
      p.nlink = 2 + subdirs;
      extra = this.dataLayout(p, BLOCK_SIZE * (blockStarts.length - 1) + lastUsed, fixed);
    } else {
      p.nlink = this.aliases.get(e) ?? 1;
      extra = this.nonDirLayout(p, e, ibody, fixed);
    }
    p.slot = Math.ceil((fixed + extra) / INODE_SLOT) * INODE_SLOT;
    this.cursor += p.slot;
    this.nodes.push(p);
    this.byEntry.set(e, p);
    return p;
  }

  /** Directories and symlinks (docs/erofs.md §4.3); returns the inline tail bytes kept in the inode slot. */
  private dataLayout(p: PlannedInode, size: number, fixed: number): number {
    let extra = 0;
    p.size = size;
    const tail = size % BLOCK_SIZE;
    const full = Math.floor(size / BLOCK_SIZE);
    if (size === 0) return 0;
    if (tail === 0) {
      p.nblocks = full;
    } else if (fixed + tail <= BLOCK_SIZE - (p.offset % BLOCK_SIZE)) {
      p.layout = LAYOUT_FLAT_INLINE;
      p.nblocks = full;
      p.inlineTail = tail;
      extra = tail;
    } else {
      p.nblocks = full + 1;
    }
    if (p.nblocks > 0) {
      p.blkaddr = this.nextBlock;
      this.nextBlock += p.nblocks;
    }
    p.iu = p.blkaddr;
    return extra;
  }

  /** Everything but a directory; returns the bytes after the fixed part of the inode slot. */
  private nonDirLayout(p: PlannedInode, e: Inode, ibody: number, fixed: number): number {
    switch (e.kind) {
      case 'file': {
        p.size = e.size;
        if (e.size === 0) return 0;
        const data = e.data;
        if (!data) throw new Error('regular file without a data map');
        if (data.device === 0) {
          p.iu = data.startBlock;
          return 0;
        }
        p.layout = LAYOUT_CHUNK_BASED;
        p.iu = CHUNK_FORMAT_INDEXES | (chunkBitsFor(e.size) - 12);
        p.chunkPad = ibody % 8 === 4 ? 4 : 0;
        return p.chunkPad + CHUNK_INDEX_SIZE;
      }
      case 'symlink':
        return this.dataLayout(p, e.target?.length ?? 0, fixed);
      case 'chr':
      case 'blk':
        p.iu = encodeDev(e.rdevMajor ?? 0, e.rdevMinor ?? 0);
        return 0;
      default:
        p.iu = 0; // fifo, socket (docs/erofs.md §4.1)
        return 0;
    }
  }
}

/**
 * Plans the image for `root`: depth-first pre-order, children in byte order, nid 0 reserved, root
 * at nid 1; directory/symlink blocks allocated from `firstFreeBlock` in planning order.
 */
export function planImage(root: DirNode, opts: { firstFreeBlock: number }): ImageLayout {
  const planner = new Planner(countAliases(root), opts.firstFreeBlock);
  const plan = (e: Entry, parent: PlannedInode | undefined) => planner.plan(e, parent);
  const byEntry = planner.byEntry;

  // Explicit stack: pre-order, children in byte order; a hardlink group is planned at its first alias.
  // The sorted dirent names (with '.' and '..', which no child can be named) drive the walk too.
  const rootPlan = plan(root, undefined);
  const stack: Array<{ dir: DirNode; plan: PlannedInode; i: number }> = [{ dir: root, plan: rootPlan, i: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const names = top.plan.dirNames!;
    if (top.i >= names.length) {
      stack.pop();
      continue;
    }
    const name = names[top.i++]!;
    if (name === '.' || name === '..') continue;
    const c = top.dir.children.get(name)!;
    if (byEntry.has(c)) continue;
    const cp = plan(c, top.plan);
    if (isDir(c)) stack.push({ dir: c, plan: cp, i: 0 });
  }

  const metaBlkaddr = planner.nextBlock;
  const metaBlocks = Math.ceil(planner.cursor / BLOCK_SIZE);
  return {
    totalBlocks: metaBlkaddr + metaBlocks,
    inodes: planner.nodes.length,
    firstFreeBlock: opts.firstFreeBlock,
    metaBlkaddr,
    metaBytes: planner.cursor,
    nodes: planner.nodes,
    byEntry,
  };
}

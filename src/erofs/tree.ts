/**
 * The in-memory filesystem tree shared by the tar ingest / layer writer, the EROFS reader, the
 * fsmeta merge and the fsmeta writer (docs/erofs.md §5, §7). One shape everywhere, so that fsmeta
 * rebuilt from cached layer files (through the reader) is byte-identical to fsmeta built from
 * freshly ingested trees (docs/erofs.md §7.3.4).
 *
 * Names are raw bytes held as `latin1` strings (one char per byte), so they can be Map keys and
 * JS string comparison (`<`) is exactly memcmp byte order. Convert for display with
 * `nameToDisplay`.
 *
 * Hardlinks: every alias of a non-directory references the SAME `Inode` object; identity is
 * object identity, and nlink is the number of references found when the tree is laid out.
 */

export type InodeKind = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

/** One inline xattr, already mapped to its EROFS prefix index (docs/erofs.md §4.2). */
export interface Xattr {
  /** 1 user. | 2 system.posix_acl_access | 3 system.posix_acl_default | 4 trusted. | 6 security. */
  index: number;
  /** Name suffix after the prefix (empty for the ACL names). */
  suffix: Buffer;
  /** Byte-exact value. */
  value: Buffer;
}

export interface Meta {
  /** Permission bits incl. suid/sgid/sticky: `mode & 0o7777` (no file-type bits). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (u64 in EROFS). */
  mtime: bigint;
  mtimeNsec: number;
  /** Sorted by (index, suffix bytes) when serialized; writers may keep any order here. */
  xattrs: Xattr[];
}

/** Where a regular file's data blocks live. */
export interface FileData {
  /** 0 = this image's own blocks (layer image, FLAT_PLAIN); k+1 = layer position k (fsmeta, CHUNK_BASED). */
  device: number;
  /** First 4096-byte block of the contiguous data, relative to the start of that device's file. */
  startBlock: number;
}

/** A non-directory identity, shared by all of its hardlink aliases. */
export interface Inode {
  kind: Exclude<InodeKind, 'dir'>;
  meta: Meta;
  /** file: content length; symlink: target length; devices/fifos/sockets: 0. */
  size: number;
  /** Regular files with size > 0 only. */
  data?: FileData;
  /** Symlink target bytes (1–4095, no NUL). */
  target?: Buffer;
  /** chr/blk only. */
  rdevMajor?: number;
  rdevMinor?: number;
}

export interface DirNode {
  kind: 'dir';
  meta: Meta;
  /** name (latin1 of the raw bytes) → child. */
  children: Map<string, Entry>;
  /** Created only as the ancestor of an entry (no tar entry of its own): `trusted.msb.implicit=y`. */
  implicit: boolean;
  /** `trusted.overlay.opaque=y`. */
  opaque: boolean;
}

export type Entry = DirNode | Inode;

export function isDir(e: Entry): e is DirNode {
  return e.kind === 'dir';
}

/** A character device 0/0 is a whiteout in a layer image (docs/erofs.md §6.8, §7.1). */
export function isWhiteout(e: Entry): boolean {
  return e.kind === 'chr' && (e.rdevMajor ?? 0) === 0 && (e.rdevMinor ?? 0) === 0;
}

export function newMeta(partial: Partial<Meta> = {}): Meta {
  return { mode: 0o755, uid: 0, gid: 0, mtime: 0n, mtimeNsec: 0, xattrs: [], ...partial };
}

export function newDir(implicit = false, meta: Meta = newMeta()): DirNode {
  return { kind: 'dir', meta, children: new Map(), implicit, opaque: false };
}

export function nameToDisplay(name: string): string {
  return Buffer.from(name, 'latin1').toString('utf8');
}

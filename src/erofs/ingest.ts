/**
 * Tar ingest into the layer tree (docs/erofs.md §6.5–§6.9): path normalization, implicit parents,
 * later-wins duplicates, dir/file replacement, hardlinks sharing one Inode, whiteouts (char 0/0),
 * opaque markers, metadata rules and xattr prefix mapping with the dropping rules. Pure: it builds
 * the in-memory tree; the layer writer streams file bodies.
 */
import { LayerInvalidError, LimitExceededError } from '../errors.js';
import type { Limits } from '../limits.js';
import type { TarEntry } from '../tar/reader.js';
import {
  isDir,
  isWhiteout,
  newDir,
  newMeta,
  type DirNode,
  type Entry,
  type Inode,
  type Meta,
  type Xattr,
} from './tree.js';
import { compareXattrs } from './encode.js';
import {
  XATTR_INDEX_POSIX_ACL_ACCESS,
  XATTR_INDEX_POSIX_ACL_DEFAULT,
  XATTR_INDEX_SECURITY,
  XATTR_INDEX_TRUSTED,
  XATTR_INDEX_USER,
} from './format.js';

const MAX_U32 = 4294967295n;
const MAX_I64 = (1n << 63n) - 1n;

function nameDisplay(comps: string[]): string {
  return Buffer.from(comps.join('/'), 'latin1').toString('utf8');
}

/**
 * §6.5: raw bytes; strip leading '/', split on '/', drop empty and '.', reject '..' (whole layer),
 * components ≤ 255 bytes, path ≤ maxPathBytes and depth ≤ maxPathDepth. Returns latin1 components
 * ([] = the root).
 */
export function normalizePath(
  raw: Buffer,
  limits: Pick<Limits, 'maxPathBytes' | 'maxPathDepth'>,
  what = 'path',
): string[] {
  const display = () => raw.toString('utf8');
  if (raw.includes(0)) throw new LayerInvalidError(`NUL byte in ${what}`, { entry: display() });
  const comps: string[] = [];
  let bytes = 0;
  for (const c of raw.toString('latin1').split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new LayerInvalidError(`path traversal ('..') in ${what}`, { entry: display() });
    if (c.length > 255)
      throw new LayerInvalidError(`name component longer than 255 bytes in ${what}`, { entry: display() });
    comps.push(c);
    bytes += c.length + (comps.length > 1 ? 1 : 0);
  }
  if (bytes > limits.maxPathBytes)
    throw new LimitExceededError('maxPathBytes', bytes, limits.maxPathBytes, display().slice(0, 200));
  if (comps.length > limits.maxPathDepth)
    throw new LimitExceededError('maxPathDepth', comps.length, limits.maxPathDepth, display().slice(0, 200));
  return comps;
}

const OPQ = '.wh..wh..opq';
const AUFS = '.wh..wh.';
const WH = '.wh.';

/**
 * Maps one tar xattr name to its EROFS prefix index (§4.2, §6.9); null = dropped (other prefixes,
 * trusted.overlay.* / trusted.msb.*, empty suffix except the ACL names, suffix > 255 bytes,
 * a NUL in the name, value > 65535 bytes).
 */
export function mapXattr(name: string, value: Buffer): Xattr | null {
  if (value.length > 65535) return null;
  if (name === 'system.posix_acl_access')
    return { index: XATTR_INDEX_POSIX_ACL_ACCESS, suffix: Buffer.alloc(0), value };
  if (name === 'system.posix_acl_default')
    return { index: XATTR_INDEX_POSIX_ACL_DEFAULT, suffix: Buffer.alloc(0), value };
  let index: number;
  let suffix: string;
  if (name.startsWith('user.')) {
    index = XATTR_INDEX_USER;
    suffix = name.slice(5);
  } else if (name.startsWith('trusted.')) {
    index = XATTR_INDEX_TRUSTED;
    suffix = name.slice(8);
    // Tar content must not forge overlay semantics or our markers.
    if (suffix === 'overlay' || suffix.startsWith('overlay.') || suffix === 'msb' || suffix.startsWith('msb.'))
      return null;
  } else if (name.startsWith('security.')) {
    index = XATTR_INDEX_SECURITY;
    suffix = name.slice(9);
  } else return null;
  // A NUL cannot be part of an xattr name (the kernel's names are C strings): dropped, never written.
  if (suffix.length === 0 || suffix.length > 255 || suffix.includes('\0')) return null;
  return { index, suffix: Buffer.from(suffix, 'latin1'), value };
}

/** Copies the value so the tree never pins a whole PAX header buffer. */
function ownValue(x: Xattr): Xattr {
  return { ...x, value: Buffer.from(x.value) };
}

/** Builds one layer's tree from tar entries, in arrival order. */
export class LayerTreeBuilder {
  readonly root: DirNode = newDir(true);
  xattrsDropped = 0;
  private readonly limits: Limits;

  constructor(limits: Limits) {
    this.limits = limits;
  }

  /**
   * Applies one entry. Returns the new regular-file Inode whose body must be streamed (size > 0),
   * or null when the body is to be skipped.
   */
  add(e: TarEntry): Inode | null {
    const comps = normalizePath(e.path, this.limits);
    // Display names are built only for messages (hot path: one call per tar entry).
    const entry = () => nameDisplay(comps) || '/';
    const base = comps.length ? comps[comps.length - 1]! : '';

    // §6.8: whiteout names, whatever the typeflag; their bodies are never read.
    if (base === OPQ || base.startsWith(AUFS) || base.startsWith(WH)) {
      this.whiteout(comps, base, e, entry);
      return null;
    }

    if (comps.length === 0) {
      if (e.kind !== 'dir')
        throw new LayerInvalidError('the root entry is not a directory', { entry: e.path.toString('utf8') || '/' });
      this.root.meta = this.metaWithXattrs(e, entry);
      this.root.implicit = false;
      return null;
    }

    const parent = this.ensureDir(comps.slice(0, -1), entry);
    const existing = parent.children.get(base);

    if (e.kind === 'hardlink') {
      this.hardlink(parent, base, existing, e, entry);
      return null;
    }

    if (e.kind === 'dir') {
      const meta = this.metaWithXattrs(e, entry);
      if (existing && isDir(existing)) {
        // Merge: metadata replaced, children kept, opaque kept, now explicit.
        existing.meta = meta;
        existing.implicit = false;
        return null;
      }
      const d = newDir(false, meta);
      // A directory at a whited-out path of this layer hides the lower one: opaque.
      if (existing && isWhiteout(existing)) d.opaque = true;
      parent.children.set(base, d);
      return null;
    }

    const node = this.nonDir(e, entry);
    parent.children.set(base, node);
    return node.kind === 'file' && node.size > 0 ? node : null;
  }

  /** A whiteout entry (opaque marker, AUFS metadata or `.wh.<name>`) in this layer's tree. */
  private whiteout(comps: string[], base: string, e: TarEntry, entry: () => string): void {
    if (base === OPQ) {
      const parent = this.ensureDir(comps.slice(0, -1), entry);
      parent.opaque = true;
      return;
    }
    if (base.startsWith(AUFS)) return;
    const target = base.slice(WH.length);
    if (target === '' || target === '.' || target === '..')
      throw new LayerInvalidError(`invalid whiteout name ${JSON.stringify(base)}`, { entry: entry() });
    const parent = this.ensureDir(comps.slice(0, -1), entry);
    const existing = parent.children.get(target);
    if (existing && isDir(existing)) {
      existing.opaque = true;
      return;
    }
    // Within one layer a real entry and a whiteout never cancel each other.
    if (existing && !isWhiteout(existing)) return;
    parent.children.set(target, {
      kind: 'chr',
      size: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      meta: { ...this.meta(e, entry), xattrs: [] },
    });
  }

  private hardlink(parent: DirNode, base: string, existing: Entry | undefined, e: TarEntry, entry: () => string): void {
    const tcomps = normalizePath(e.linkpath, this.limits, 'hardlink target');
    const target = this.lookup(tcomps);
    if (!target)
      throw new LayerInvalidError(
        `hardlink target ${JSON.stringify(nameDisplay(tcomps))} does not exist in this layer`,
        { entry: entry() },
      );
    if (isDir(target) || isWhiteout(target)) {
      throw new LayerInvalidError(
        `hardlink target ${JSON.stringify(nameDisplay(tcomps))} is a ${isDir(target) ? 'directory' : 'whiteout'}`,
        { entry: entry() },
      );
    }
    if (existing === target) return; // a link to itself (or an alias already there)
    parent.children.set(base, target);
  }

  private nonDir(e: TarEntry, entry: () => string): Inode {
    const meta = this.metaWithXattrs(e, entry);
    switch (e.kind) {
      case 'file':
        return { kind: 'file', meta, size: e.size };
      case 'symlink': {
        const t = e.linkpath;
        if (t.length === 0 || t.length > 4095)
          throw new LayerInvalidError(`symlink target of ${t.length} bytes (1–4095 allowed)`, { entry: entry() });
        if (t.includes(0)) throw new LayerInvalidError('NUL byte in symlink target', { entry: entry() });
        return { kind: 'symlink', meta, size: t.length, target: Buffer.from(t) };
      }
      case 'chr':
      case 'blk': {
        if (e.devmajor > 4095n || e.devminor > 0xfffffn) {
          throw new LayerInvalidError(
            `device ${e.devmajor}:${e.devminor} out of range (major ≤ 4095, minor ≤ 1048575)`,
            { entry: entry() },
          );
        }
        return { kind: e.kind, meta, size: 0, rdevMajor: Number(e.devmajor), rdevMinor: Number(e.devminor) };
      }
      case 'fifo':
        return { kind: 'fifo', meta, size: 0 };
      default:
        throw new LayerInvalidError(`unexpected entry kind ${e.kind}`, { entry: entry() });
    }
  }

  /** §6.9 mode/uid/gid/mtime (no xattrs). */
  private meta(e: TarEntry, entry: () => string): Meta {
    if (e.uid > MAX_U32) throw new LayerInvalidError(`uid ${e.uid} out of range`, { entry: entry() });
    if (e.gid > MAX_U32) throw new LayerInvalidError(`gid ${e.gid} out of range`, { entry: entry() });
    if (e.mtime > MAX_I64) throw new LayerInvalidError(`mtime ${e.mtime} out of range`, { entry: entry() });
    const neg = e.mtime < 0n;
    return newMeta({
      mode: e.mode & 0o7777,
      uid: Number(e.uid),
      gid: Number(e.gid),
      mtime: neg ? 0n : e.mtime,
      mtimeNsec: neg ? 0 : e.mtimeNsec,
    });
  }

  private metaWithXattrs(e: TarEntry, entry: () => string): Meta {
    const m = this.meta(e, entry);
    if (e.xattrs.size === 0) return m;
    let total = 0;
    for (const [name, value] of e.xattrs) {
      const x = mapXattr(name, value);
      if (!x) {
        this.xattrsDropped++;
        continue;
      }
      total += name.length + value.length;
      m.xattrs.push(ownValue(x));
    }
    // Kept in on-disk order, so a tree read back from the image is deep-equal to this one.
    m.xattrs.sort(compareXattrs);
    if (total > this.limits.maxXattrBytes)
      throw new LimitExceededError('maxXattrBytes', total, this.limits.maxXattrBytes, entry());
    return m;
  }

  /**
   * §6.6.1: walks/creates the ancestors `comps`; missing → implicit dir; a whiteout → implicit
   * opaque dir; any other non-directory → LAYER_INVALID ("parent is not a directory").
   */
  private ensureDir(comps: string[], entry: () => string): DirNode {
    let d = this.root;
    for (const c of comps) {
      const ch = d.children.get(c);
      if (ch === undefined) {
        const nd = newDir(true);
        d.children.set(c, nd);
        d = nd;
      } else if (isDir(ch)) {
        d = ch;
      } else if (isWhiteout(ch)) {
        const nd = newDir(true);
        nd.opaque = true;
        d.children.set(c, nd);
        d = nd;
      } else {
        throw new LayerInvalidError('parent is not a directory', { entry: entry() });
      }
    }
    return d;
  }

  private lookup(comps: string[]): Entry | undefined {
    let e: Entry = this.root;
    for (const c of comps) {
      if (!isDir(e)) return undefined;
      const ch: Entry | undefined = e.children.get(c);
      if (ch === undefined) return undefined;
      e = ch;
    }
    return e;
  }
}

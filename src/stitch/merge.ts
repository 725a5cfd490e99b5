/**
 * The fsmeta merge with provenance (docs/erofs.md §7.1). Pure: layer trees in, one merged tree out;
 * the inputs are never modified.
 *
 * Layers are applied bottom → top (position k = 0 … n−1) to a merged root that starts as 0755,
 * 0:0, mtime 0. Every non-directory that survives is a NEW `Inode` object, one per
 * (layer k, layer `Inode` object): hardlink aliases of one layer identity share it, so nlink in
 * the result (which the writer counts from object sharing, docs/erofs.md §4.4) is the number of
 * surviving aliases. A regular file with data carries `data = {device: k+1, startBlock}`: the
 * fsmeta writer turns that into a one-index CHUNK_BASED inode on device k+1.
 *
 * The result holds no whiteouts (char 0/0), no opaque flags, no implicit flags and no marker
 * xattrs.
 */
import { isDir, isWhiteout, newDir, newMeta, type DirNode, type Inode, type Meta, type Xattr } from '../erofs/tree.js';

/** EROFS xattr prefix index of `trusted.` (docs/erofs.md §4.2). */
const TRUSTED = 4;
const OVERLAY_PREFIX = Buffer.from('overlay.', 'latin1');
const MSB_PREFIX = Buffer.from('msb.', 'latin1');

/**
 * Marker xattrs (docs/erofs.md §4.2) are `trusted.overlay.opaque` and `trusted.msb.implicit`. The
 * layer writer drops every other `trusted.overlay.*` / `trusted.msb.*` from tar content (§6.9),
 * so in a valid layer the two namespaces hold only markers; dropping the namespaces whole also
 * keeps a reader that leaves the markers in `meta.xattrs` from leaking them into fsmeta.
 */
export function isMarkerXattr(x: Xattr): boolean {
  return x.index === TRUSTED && (startsWith(x.suffix, OVERLAY_PREFIX) || startsWith(x.suffix, MSB_PREFIX));
}

function startsWith(b: Buffer, prefix: Buffer): boolean {
  return b.length >= prefix.length && b.subarray(0, prefix.length).equals(prefix);
}

/** A copy of `m` without marker xattrs (the xattr objects are immutable and shared). */
function copyMeta(m: Meta): Meta {
  return {
    mode: m.mode,
    uid: m.uid,
    gid: m.gid,
    mtime: m.mtime,
    mtimeNsec: m.mtimeNsec,
    xattrs: m.xattrs.filter((x) => !isMarkerXattr(x)),
  };
}

/** Byte-wise (memcmp) order of latin1 names: JS `<` on latin1 strings is exactly that. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Merges layer roots, bottom first, into one tree (docs/erofs.md §7.1).
 * `layers[k]` is the root of the layer at manifest position k; its regular files must carry
 * `data.device === 0` (their own blocks), as both the layer writer and the reader produce.
 */
export function mergeLayers(layers: readonly DirNode[]): DirNode {
  const root = newDir(false, newMeta());
  for (let k = 0; k < layers.length; k++) {
    // Identity map of this layer: layer Inode object → merged Inode (hardlinks stay shared).
    const identities = new Map<Inode, Inode>();
    apply(root, layers[k]!, k, identities);
  }
  return root;
}

/** `apply(m, l, k)` of docs/erofs.md §7.1. */
function apply(m: DirNode, l: DirNode, k: number, identities: Map<Inode, Inode>): void {
  // 1. An explicit layer directory replaces the metadata; an implicit one never changes it.
  if (!l.implicit) m.meta = copyMeta(l.meta);
  // 2. Opaque hides everything that lower layers put here.
  if (l.opaque) m.children.clear();
  // 3. Children in byte order (deterministic; names are unique, so the order is not semantic).
  const names = [...l.children.keys()].sort(byteOrder);
  for (const name of names) {
    const c = l.children.get(name)!;
    const e = m.children.get(name);
    if (isWhiteout(c)) {
      // Every char 0/0 is a whiteout, a genuine 0/0 device included, as overlayfs does (§6.8).
      m.children.delete(name);
    } else if (isDir(c)) {
      if (e !== undefined && isDir(e)) {
        apply(e, c, k, identities);
      } else {
        // A new directory (over nothing, or replacing a non-directory): defaults unless `c` is
        // explicit, which `apply` handles; whiteouts inside have nothing to hide and vanish.
        const d = newDir(false, newMeta());
        m.children.set(name, d);
        apply(d, c, k, identities);
      }
    } else {
      m.children.set(name, mergedInode(c, k, identities));
    }
  }
}

function mergedInode(c: Inode, k: number, identities: Map<Inode, Inode>): Inode {
  let out = identities.get(c);
  if (out !== undefined) return out;
  out = { kind: c.kind, meta: copyMeta(c.meta), size: c.size };
  if (c.kind === 'file' && c.size > 0) {
    if (c.data === undefined) throw new Error(`merge: layer ${k} file of ${c.size} bytes has no data map`);
    // Provenance: the file's blocks stay in layer k's file, reached through device k+1 (§7.2).
    out.data = { device: k + 1, startBlock: c.data.startBlock };
  }
  if (c.target !== undefined) out.target = c.target;
  if (c.rdevMajor !== undefined) out.rdevMajor = c.rdevMajor;
  if (c.rdevMinor !== undefined) out.rdevMinor = c.rdevMinor;
  identities.set(c, out);
  return out;
}

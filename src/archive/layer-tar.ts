/**
 * Deterministic layer regeneration (docs/archives.md §8.2): a layer EROFS, read back through the
 * reader (erofs/reader.ts), becomes an uncompressed tar whose bytes depend only on the EROFS
 * content.
 *
 * - Order: depth-first pre-order, children in byte-wise name order; `./` only for an explicit
 *   root; implicit directories are not written (they come back implicitly on load), except that
 *   an implicit opaque directory's marker takes its place.
 * - ustar headers (`ustar\0` `00`), mode & 0o7777, empty uname/gname, zero-padded octal fields,
 *   the `prefix` field never used; PAX records only when needed, in the fixed order path,
 *   linkpath, size, uid, gid, mtime (9 fraction digits when nsec ≠ 0), SCHILY.xattr.* sorted and
 *   byte-exact; the PAX header is `PaxHeaders/<basename>` (truncated to fit), mtime 0.
 * - Whiteouts (char 0/0) → empty `.wh.<name>` files; opaque marker `.wh..wh..opq` (mode 0,
 *   root-owned, mtime 0) right after its directory; hardlinks: the first alias in walk order
 *   carries the data; sparse files are written in full. Ends with two zero blocks, no padding.
 *
 * Choices where the contract is silent:
 * - A ustar field whose value moved to a PAX record holds the first 100 bytes (names) or 0
 *   (numbers): readers use the PAX value.
 * - PAX headers have mode 0644 and uid/gid 0. Sockets cannot be expressed in tar and are skipped
 *   (the tar ingest never creates one). A whiteout keeps its mtime nanoseconds (PAX mtime).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { AbortedError, CacheCorruptError, toIoError } from '../errors.js';
import { readErofsTree } from '../erofs/reader.js';
import { isDir, isWhiteout, type DirNode, type Inode, type Meta } from '../erofs/tree.js';
import { xattrPrefixOf } from '../erofs/format.js';

const BLOCK = 512;
const ZERO = Buffer.alloc(BLOCK);
const OCTAL_7 = 0o7777777; // 2097151: the largest value of an 8-byte field
const OCTAL_11 = 8589934591; // 8 GiB − 1: the largest value of a 12-byte field

export type Sink = (chunk: Buffer) => Promise<void> | void;

/** `v` as (len − 1) zero-padded octal digits plus NUL. */
function octal(buf: Buffer, off: number, len: number, v: number | bigint): void {
  const s = v.toString(8).padStart(len - 1, '0');
  buf.write(s, off, len - 1, 'latin1');
  buf[off + len - 1] = 0;
}

export interface HeaderFields {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: bigint;
  typeflag: string;
  linkname?: Buffer;
  devmajor?: number;
  devminor?: number;
}

/** One ustar header block (fields already reduced to what fits). */
export function ustarHeader(h: HeaderFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  h.name.copy(b, 0, 0, Math.min(100, h.name.length));
  octal(b, 100, 8, h.mode);
  octal(b, 108, 8, h.uid);
  octal(b, 116, 8, h.gid);
  octal(b, 124, 12, h.size);
  octal(b, 136, 12, h.mtime);
  b.write(h.typeflag, 156, 1, 'latin1');
  if (h.linkname) h.linkname.copy(b, 157, 0, Math.min(100, h.linkname.length));
  b.write('ustar\0', 257, 6, 'latin1');
  b.write('00', 263, 2, 'latin1');
  octal(b, 329, 8, h.devmajor ?? 0);
  octal(b, 337, 8, h.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

/** One PAX record: `<len> <key>=<value>\n`, len counting itself. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - r);
}

/**
 * Header block(s) of one entry: a PAX extended header first when any value does not fit, then
 * the ustar header. `xattrs` are full names (latin1 of the raw bytes) → values, any order.
 */
export function entryHeaders(h: HeaderFields & { mtimeNsec?: number; xattrs?: [Buffer, Buffer][] }): Buffer {
  const recs: Buffer[] = [];
  const f: HeaderFields = { ...h };
  if (h.name.length > 100) recs.push(paxRecord('path', h.name));
  if (h.linkname && h.linkname.length > 100) recs.push(paxRecord('linkpath', h.linkname));
  if (h.size > OCTAL_11) {
    recs.push(paxRecord('size', Buffer.from(String(h.size))));
    f.size = 0;
  }
  if (h.uid > OCTAL_7) {
    recs.push(paxRecord('uid', Buffer.from(String(h.uid))));
    f.uid = 0;
  }
  if (h.gid > OCTAL_7) {
    recs.push(paxRecord('gid', Buffer.from(String(h.gid))));
    f.gid = 0;
  }
  const nsec = h.mtimeNsec ?? 0;
  if (nsec !== 0 || h.mtime > BigInt(OCTAL_11)) {
    const v = nsec !== 0 ? `${h.mtime}.${String(nsec).padStart(9, '0')}` : `${h.mtime}`;
    recs.push(paxRecord('mtime', Buffer.from(v)));
    if (h.mtime > BigInt(OCTAL_11)) f.mtime = 0n;
  }
  const xs = [...(h.xattrs ?? [])].sort((a, b) => Buffer.compare(a[0], b[0]));
  for (const [name, value] of xs) recs.push(paxRecord(`SCHILY.xattr.${name.toString('latin1')}`, value));
  const main = ustarHeader(f);
  if (recs.length === 0) return main;
  const body = Buffer.concat(recs);
  const trimmed =
    h.name.length > 1 && h.name[h.name.length - 1] === 0x2f ? h.name.subarray(0, h.name.length - 1) : h.name;
  const slash = trimmed.lastIndexOf(0x2f);
  const base = slash < 0 ? trimmed : trimmed.subarray(slash + 1);
  const paxName = Buffer.concat([Buffer.from('PaxHeaders/', 'latin1'), base]).subarray(0, 100);
  const ph = ustarHeader({ name: paxName, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0n, typeflag: 'x' });
  return Buffer.concat([ph, body, padding(body.length), main]);
}

export function xattrsOf(meta: Meta): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = [];
  for (const x of meta.xattrs) {
    const prefix = xattrPrefixOf(x.index);
    if (prefix === undefined) continue;
    const name = Buffer.concat([Buffer.from(prefix, 'latin1'), x.suffix]);
    const n = name.toString('latin1');
    if (n === 'trusted.overlay.opaque' || n === 'trusted.msb.implicit') continue; // markers are never emitted
    out.push([name, x.value]);
  }
  return out;
}

const READ_CHUNK = 1 << 20;

/** Metadata of an entry's header, from its inode. */
function common(meta: Meta): Pick<HeaderFields, 'mode' | 'uid' | 'gid' | 'mtime'> & { mtimeNsec: number } {
  return { mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, mtimeNsec: meta.mtimeNsec };
}

/** The walk of one layer's tree into tar entries (docs/archives.md §8.2), writing to `sink`. */
class Regenerator {
  /** Hardlinks: the first alias in walk order carries the data; later ones link to its name. */
  private readonly firstAlias = new Map<Inode, Buffer>();
  constructor(
    private readonly layerPath: string,
    private readonly fh: FileHandle,
    private readonly sink: Sink,
    private readonly signal: AbortSignal | undefined,
  ) {}

  private async emit(b: Buffer): Promise<void> {
    await this.sink(b);
  }

  /** An opaque directory's marker: empty, mode 0, root-owned, mtime 0. */
  async marker(dirName: Buffer): Promise<void> {
    const name = Buffer.concat([dirName, Buffer.from('.wh..wh..opq', 'latin1')]);
    await this.emit(entryHeaders({ name, mode: 0, uid: 0, gid: 0, size: 0, mtime: 0n, typeflag: '0' }));
  }

  /** A directory's own entry (explicit directories only). */
  async dirEntry(name: Buffer, d: DirNode): Promise<void> {
    await this.emit(entryHeaders({ name, ...common(d.meta), size: 0, typeflag: '5', xattrs: xattrsOf(d.meta) }));
  }

  /** The data blocks of a regular file, then its padding. */
  private async fileData(ino: Inode, name: Buffer): Promise<void> {
    if (ino.size === 0) return;
    const where = `file ${name.toString('utf8')}`;
    if (ino.data?.device !== 0)
      throw new CacheCorruptError(this.layerPath, `${where} has no data blocks in this layer`);
    const base = ino.data.startBlock * 4096;
    let done = 0;
    while (done < ino.size) {
      if (this.signal?.aborted) throw new AbortedError(this.signal.reason);
      const n = Math.min(READ_CHUNK, ino.size - done);
      const buf = Buffer.alloc(n);
      let got = 0;
      while (got < n) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await this.fh.read(buf, got, n - got, base + done + got));
        } catch (err) {
          throw toIoError(err, this.layerPath);
        }
        if (bytesRead === 0) throw new CacheCorruptError(this.layerPath, `${where} extends beyond the image`);
        got += bytesRead;
      }
      await this.emit(buf);
      done += n;
    }
    await this.emit(padding(ino.size));
  }

  /** Depth-first pre-order, children in byte-wise name order. */
  async walk(dir: DirNode, prefix: Buffer): Promise<void> {
    const names = [...dir.children.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const n of names) {
      if (this.signal?.aborted) throw new AbortedError(this.signal.reason);
      const e = dir.children.get(n)!;
      const nameBytes = Buffer.concat([prefix, Buffer.from(n, 'latin1')]);
      if (isDir(e)) {
        const dn = Buffer.concat([nameBytes, Buffer.from('/')]);
        if (!e.implicit) await this.dirEntry(dn, e);
        if (e.opaque) await this.marker(dn);
        await this.walk(e, dn);
      } else if (isWhiteout(e)) {
        const wh = Buffer.concat([prefix, Buffer.from('.wh.', 'latin1'), Buffer.from(n, 'latin1')]);
        await this.emit(entryHeaders({ name: wh, ...common(e.meta), size: 0, typeflag: '0' }));
      } else await this.nonDir(e, nameBytes);
    }
  }

  /** A file, symlink, device or FIFO (a second alias of an inode: a hardlink; a socket: skipped). */
  private async nonDir(e: Inode, name: Buffer): Promise<void> {
    if (e.kind === 'sock') return;
    const base = { name, ...common(e.meta), size: 0 };
    const first = this.firstAlias.get(e);
    if (first) {
      await this.emit(entryHeaders({ ...base, typeflag: '1', linkname: first }));
      return;
    }
    this.firstAlias.set(e, name);
    const xattrs = xattrsOf(e.meta);
    switch (e.kind) {
      case 'file':
        await this.emit(entryHeaders({ ...base, size: e.size, typeflag: '0', xattrs }));
        await this.fileData(e, name);
        break;
      case 'symlink':
        await this.emit(entryHeaders({ ...base, typeflag: '2', linkname: e.target ?? Buffer.alloc(0), xattrs }));
        break;
      case 'chr':
      case 'blk':
        await this.emit(
          entryHeaders({
            ...base,
            typeflag: e.kind === 'chr' ? '3' : '4',
            devmajor: e.rdevMajor ?? 0,
            devminor: e.rdevMinor ?? 0,
            xattrs,
          }),
        );
        break;
      case 'fifo':
        await this.emit(entryHeaders({ ...base, typeflag: '6', xattrs }));
        break;
    }
  }
}

/**
 * Writes the regenerated tar of the layer EROFS at `layerPath` to `sink`, in order. A layer that
 * the reader refuses is CacheCorruptError (naming the path).
 */
export async function writeLayerTar(
  layerPath: string,
  sink: Sink,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const { root } = await readErofsTree(layerPath);
  let fh: FileHandle;
  try {
    fh = await open(layerPath, 'r');
  } catch (err) {
    throw toIoError(err, layerPath);
  }
  try {
    const r = new Regenerator(layerPath, fh, sink, opts.signal);
    const rootName = Buffer.from('./', 'latin1');
    if (!root.implicit) await r.dirEntry(rootName, root);
    if (root.opaque) await r.marker(Buffer.alloc(0));
    await r.walk(root, Buffer.alloc(0));
    await sink(Buffer.concat([ZERO, ZERO]));
  } finally {
    await fh.close().catch(() => {});
  }
}

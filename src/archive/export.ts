/**
 * `Image.export` (docs/storage.md §12): an image's merged root file system as one tar, read from OUR
 * artifacts — the fsmeta's tree through the EROFS reader, each regular file's bytes from the
 * layer file its chunk index names — so an export is also an end-to-end check of fsmeta and the
 * layer files together, the same bytes a guest mounts.
 *
 * Deterministic, like `docker export` / `crane export` but byte-stable: depth-first pre-order,
 * children in byte-wise name order, `./` first; owners, modes, mtimes (PAX with nanoseconds),
 * xattrs (PAX `SCHILY.xattr.*`), long names and big numbers exactly as layer-tar.ts writes a
 * layer; the first alias of a hard-link group carries the data, later ones are links to it;
 * sockets cannot be expressed in tar and are left out (a layer never holds one). Every layer and
 * fsmeta is validated (docs/storage.md §5) under a lease before the first byte is written.
 */
import { constants as C } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { CacheCorruptError, ImageNotFoundError, throwIfAborted, toIoError } from '../errors.js';
import { findManifest, findRef, manifestLayers } from '../catalog/queries.js';
import { readErofsTree } from '../erofs/reader.js';
import { isDir, type DirNode, type Inode } from '../erofs/tree.js';
import { parseImageSelector } from '../reference/reference.js';
import { checkLayer, checkStitch } from '../store/artifacts.js';
import { createLease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import type { Store, StoreOpener } from '../store/store.js';
import { entryHeaders, padding, xattrsOf } from './layer-tar.js';
import { openOutput, type Out } from './output.js';

/** Options of `Image.export`. */
export interface ExportOptions {
  signal?: AbortSignal | undefined;
}

/** What `Image.export` wrote (docs/storage.md §12). */
export interface ExportResult {
  manifestDigest: string;
  /** Tar entries written (the root included). */
  entries: number;
  bytesWritten: number;
}

const READ_CHUNK = 1 << 20;
const ZERO_BLOCKS = Buffer.alloc(1024);

/** Exports the merged tree of `reference` to a path (atomically) or a stream. */
export async function exportImage(
  backend: StoreOpener,
  reference: string,
  output: string | NodeJS.WritableStream,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const sel = parseImageSelector(reference);
  const shown = sel.kind === 'digest' ? sel.digest : sel.familiar;
  const signal = options.signal;
  return backend._run(async () => {
    if (!(await backend._open('read'))) throw new ImageNotFoundError(shown);
    const store = await backend._open('write', signal);
    const { index } = store;
    const found = await index.read(() => {
      const m =
        sel.kind === 'digest'
          ? findManifest(index, sel.digest)
          : findManifest(index, findRef(index, sel.canonical)?.digest ?? '');
      return m
        ? { digest: m.digest, fsmetaBytes: m.fsmeta_bytes, diffIds: manifestLayers(index, m.id).map((l) => l.diff_id) }
        : null;
    });
    if (!found) throw new ImageNotFoundError(shown);
    const lease = await createLease(store, 'save', { signal });
    try {
      await lease.addItems([
        { kind: 'manifest', value: found.digest },
        ...[...new Set(found.diffIds)].map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
      await validateImageFiles(store, found.digest, found.diffIds, found.fsmetaBytes, signal);
      const { root } = await readErofsTree(store.paths.fsmeta(found.digest));
      const o = await openOutput(output);
      try {
        const entries = await writeMergedTar(
          root,
          found.diffIds.map((d) => store.paths.layer(d)),
          o.out,
          signal,
        );
        await o.commit(signal);
        return { manifestDigest: found.digest, entries, bytesWritten: o.out.bytes };
      } finally {
        await o.abort();
      }
    } finally {
      await lease.release();
    }
  });
}

/** docs/storage.md §5 for every layer and fsmeta: export and mount never read an artifact that fails them. */
export async function validateImageFiles(
  store: Store,
  m: string,
  diffIds: string[],
  fsmetaBytes: number | null,
  signal: AbortSignal | undefined,
): Promise<void> {
  const sizes = new Map<string, number>();
  for (const d of new Set(diffIds)) {
    const c = await withLock(store, 'layer', d, () => checkLayer(store, d), { signal });
    if (!c.valid) throw new CacheCorruptError(store.paths.layer(d), `layer ${d} is ${c.reason}`, 'repair');
    sizes.set(d, c.sizeBytes);
  }
  const st = await withLock(store, 'image', m, () => checkStitch(store, m, diffIds, sizes, fsmetaBytes), { signal });
  if (!st.fsmetaValid) throw new CacheCorruptError(store.paths.fsmeta(m), `fsmeta of ${m} is ${st.fsWhy}`, 'repair');
}

/**
 * The tar of a merged tree whose regular files live on `devices` (device k+1 = `devices[k]`), to
 * `out`. Returns the number of entries.
 */
export async function writeMergedTar(
  root: DirNode,
  devices: readonly string[],
  out: Out,
  signal?: AbortSignal,
): Promise<number> {
  const w = new MergedTar(devices, out, signal);
  try {
    await w.entry(Buffer.from('./', 'latin1'), root);
    await w.walk(root, Buffer.alloc(0));
    await out.write(ZERO_BLOCKS);
    return w.entries;
  } finally {
    await w.close();
  }
}

class MergedTar {
  entries = 0;
  private readonly handles = new Map<number, FileHandle>();
  private readonly firstAlias = new Map<Inode, Buffer>();
  constructor(
    private readonly devices: readonly string[],
    private readonly out: Out,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** Depth-first, children in byte-wise name order. */
  async walk(dir: DirNode, prefix: Buffer): Promise<void> {
    for (const n of [...dir.children.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const e = dir.children.get(n)!;
      const name = Buffer.concat([prefix, Buffer.from(n, 'latin1')]);
      if (!isDir(e)) {
        await this.entry(name, e);
        continue;
      }
      const dn = Buffer.concat([name, Buffer.from('/')]);
      await this.entry(dn, e);
      await this.walk(e, dn);
    }
  }

  async entry(name: Buffer, e: DirNode | Inode): Promise<void> {
    throwIfAborted(this.signal);
    const m = e.meta;
    const common = { name, mode: m.mode & 0o7777, uid: m.uid, gid: m.gid, mtime: m.mtime, mtimeNsec: m.mtimeNsec };
    const xattrs = xattrsOf(m);
    const out = this.out;
    this.entries++;
    if (isDir(e)) return out.write(entryHeaders({ ...common, xattrs, size: 0, typeflag: '5' }));
    const first = this.firstAlias.get(e);
    if (first) return out.write(entryHeaders({ ...common, size: 0, typeflag: '1', linkname: first }));
    this.firstAlias.set(e, name);
    switch (e.kind) {
      case 'file':
        await out.write(entryHeaders({ ...common, xattrs, size: e.size, typeflag: '0' }));
        return this.fileData(e, name);
      case 'symlink':
        return out.write(
          entryHeaders({ ...common, xattrs, size: 0, typeflag: '2', linkname: e.target ?? Buffer.alloc(0) }),
        );
      case 'chr':
      case 'blk': {
        const typeflag = e.kind === 'chr' ? '3' : '4';
        const dev = { devmajor: e.rdevMajor ?? 0, devminor: e.rdevMinor ?? 0 };
        return out.write(entryHeaders({ ...common, xattrs, size: 0, typeflag, ...dev }));
      }
      case 'fifo':
        return out.write(entryHeaders({ ...common, xattrs, size: 0, typeflag: '6' }));
      default:
        this.entries--; // a socket: not expressible in tar
    }
  }

  private async fileData(e: Inode, name: Buffer): Promise<void> {
    if (e.size === 0) return;
    const shown = name.toString('utf8');
    if (!e.data || e.data.device === 0)
      throw new CacheCorruptError(this.devices[0] ?? '', `${shown} has no data blocks on a layer`);
    const path = this.devices[e.data.device - 1];
    if (!path) throw new CacheCorruptError(this.devices[0] ?? '', `${shown} names device ${e.data.device}`);
    const fh = await this.device(e.data.device, path);
    const base = e.data.startBlock * 4096;
    for (let done = 0; done < e.size; ) {
      throwIfAborted(this.signal);
      const n = Math.min(READ_CHUNK, e.size - done);
      const buf = Buffer.allocUnsafe(n);
      for (let got = 0; got < n; ) {
        const { bytesRead } = await fh.read(buf, got, n - got, base + done + got);
        if (bytesRead === 0) throw new CacheCorruptError(path, `${shown} extends beyond its layer file`);
        got += bytesRead;
      }
      await this.out.write(buf);
      done += n;
    }
    await this.out.write(padding(e.size));
  }

  private async device(k: number, path: string): Promise<FileHandle> {
    let fh = this.handles.get(k);
    if (fh) return fh;
    try {
      fh = await open(path, C.O_RDONLY | C.O_NOFOLLOW);
    } catch (err) {
      throw toIoError(err, path);
    }
    this.handles.set(k, fh);
    return fh;
  }

  async close(): Promise<void> {
    for (const fh of this.handles.values()) await fh.close().catch(() => undefined);
  }
}

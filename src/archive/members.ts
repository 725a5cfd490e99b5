/**
 * The member table of a load archive (docs/archives.md §2).
 *
 * - Path input, plain tar: one pass over the archive builds `name → (offset, size, type, link)`;
 *   members are then read from the archive file by offset, so nothing is copied.
 * - Stream input, or a compressed file: the archive is read exactly once and every member body is
 *   appended to ONE spool file, `cache/tmp/load-<pid>-<rand>/members` (the directory is a lease
 *   item of the caller), hashed with sha256 as it is written. The same table logic then reads the
 *   spool by offset. One file rather than one per member: an archive of a million empty members
 *   must not create a million files before the member limit stops it.
 * - Names: tar rules of docs/erofs.md §6.1–§6.2 (the shared TarReader), then a leading `./` and `/`
 *   stripped and `.` components dropped; `..` anywhere is ARCHIVE_INVALID. A metadata member
 *   (`manifest.json`, `index.json`, `oci-layout`, `blobs/…`) present twice is ARCHIVE_INVALID;
 *   any other duplicate: the later one wins, as with `tar x`.
 * - Symlinks resolve relative to the member's directory, hardlinks from the archive root,
 *   lexically, at most 8 hops, never outside the archive (absolute symlink targets included).
 *
 * Choice where the contract is silent: directory entries that repeat (`blobs/` twice) are not
 * duplicates that matter, since nothing is ever read from a directory.
 */
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { AbortedError, ArchiveInvalidError, LimitExceededError, MsbError, toIoError } from '../errors.js';
import { createDecompressor, detectCompression, sniffFile, takeHead, type Compression } from '../layer/compression.js';
import type { Limits } from '../limits.js';
import { TarReader, type TarEntry } from '../tar/reader.js';
import { newHash } from '../util/digest.js';

export type MemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface Member {
  name: string;
  type: MemberType;
  size: number;
  /** Raw link target (symlink: relative to the member's directory; hardlink: from the root). */
  link: string | null;
  /** File holding the body (the archive itself, or the spool). */
  file: string;
  offset: number;
  /** sha256 of the body, computed while spooling (null when read in place). */
  sha256: string | null;
}

export const MAX_LINK_HOPS = 8;

/** True for the members whose duplicates are refused (docs/archives.md §2). */
export function isMetadataName(name: string): boolean {
  return name === 'manifest.json' || name === 'index.json' || name === 'oci-layout' || name.startsWith('blobs/');
}

/** Strips `./` and `/`, drops `.` and empty components; null when a `..` component is present. */
export function normalizeMemberName(raw: string): string | null {
  const out: string[] = [];
  for (const c of raw.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') return null;
    out.push(c);
  }
  return out.join('/');
}

/**
 * Lexical resolution of a link target: `base` is the directory (symlink) or '' (hardlink). `..`
 * may appear but must not climb above the root. null when it leaves the archive.
 */
export function resolveLinkTarget(base: string, target: string): string | null {
  const parts = base === '' ? [] : base.split('/');
  for (const c of target.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else parts.push(c);
  }
  return parts.join('/');
}

export interface OpenArchiveOptions {
  limits: Pick<Limits, 'maxArchiveMembers' | 'maxPaxHeaderBytes'>;
  signal?: AbortSignal | undefined;
  /**
   * Creates the spool directory (after leasing it) and returns its path; called only when the
   * input must be spooled (a stream, or a compressed file).
   */
  spoolDir(): Promise<string>;
}

const CHUNK = 1 << 20;

/** Wraps a tar-level error of the ARCHIVE (not of a layer) as ARCHIVE_INVALID. */
function archiveError(err: unknown): unknown {
  if (err instanceof MsbError && err.code === 'LAYER_INVALID') {
    const e = new ArchiveInvalidError(`the archive is not a valid tar: ${err.message}`);
    (e as { cause?: unknown }).cause = err;
    return e;
  }
  return err;
}

export class ArchiveMembers {
  readonly members = new Map<string, Member>();
  /** The compression of the archive itself. */
  compression: Compression = 'none';
  spooled = false;

  /** Reads the archive and builds the table. `input` is a path or a readable stream. */
  static async open(input: string | NodeJS.ReadableStream, o: OpenArchiveOptions): Promise<ArchiveMembers> {
    const t = new ArchiveMembers();
    if (typeof input === 'string') {
      let head: Buffer;
      try {
        head = await sniffFile(input);
      } catch (err) {
        throw toIoError(err, input);
      }
      const kind = detectArchive(head);
      t.compression = kind;
      const src = createReadStream(input, { highWaterMark: CHUNK });
      if (kind === 'none') {
        await t.scan(src, o, null, input);
      } else {
        await t.scan(decompressed(src, kind), o, await o.spoolDir(), input);
      }
      return t;
    }
    // A stream: sniff the first bytes, then decompress (if needed) and spool everything.
    const it = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    const { head, chunks: first, ended } = await takeHead(it);
    const kind = detectArchive(head);
    t.compression = kind;
    async function* rest(): AsyncGenerator<Buffer> {
      yield* first;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      }
    }
    const raw = Readable.from(rest(), { objectMode: false });
    await t.scan(kind === 'none' ? raw : decompressed(raw, kind), o, await o.spoolDir(), '<stdin>');
    return t;
  }

  /** Parses the tar from `src`; with `spool`, bodies are appended to `<spool>/members`. */
  private async scan(
    src: NodeJS.ReadableStream,
    o: OpenArchiveOptions,
    spool: string | null,
    inputName: string,
  ): Promise<void> {
    const limits = o.limits;
    let count = 0;
    let spoolFh: FileHandle | null = null;
    let spoolPath = '';
    let spoolPos = 0;
    if (spool !== null) {
      this.spooled = true;
      spoolPath = join(spool, 'members');
      try {
        spoolFh = await open(spoolPath, 'wx', 0o600);
      } catch (err) {
        throw toIoError(err, spoolPath);
      }
    }
    const reader: TarReader = new TarReader({
      limits: {
        maxPaxHeaderBytes: limits.maxPaxHeaderBytes,
        maxLayerEntries: Number.MAX_SAFE_INTEGER,
        maxFileBytes: Number.MAX_SAFE_INTEGER,
      },
      onEntry: (e: TarEntry) => {
        if (++count > limits.maxArchiveMembers) {
          throw new LimitExceededError('maxArchiveMembers', count, limits.maxArchiveMembers, 'archive members');
        }
        const rawName = e.path.toString('utf8');
        const name = normalizeMemberName(rawName);
        if (name === null)
          throw new ArchiveInvalidError(`archive member ${JSON.stringify(rawName)} contains '..'`, rawName);
        const type: MemberType =
          e.kind === 'file'
            ? 'file'
            : e.kind === 'dir'
              ? 'dir'
              : e.kind === 'symlink'
                ? 'symlink'
                : e.kind === 'hardlink'
                  ? 'hardlink'
                  : 'other';
        if (type === 'file' && e.sparse)
          throw new ArchiveInvalidError(`archive member ${JSON.stringify(name)} is a sparse file`, name);
        const prev = this.members.get(name);
        if (prev && !(prev.type === 'dir' && type === 'dir') && isMetadataName(name)) {
          throw new ArchiveInvalidError(`archive member ${JSON.stringify(name)} appears twice`, name);
        }
        const size = type === 'file' ? e.size : 0;
        const m: Member = {
          name,
          type,
          size,
          link: type === 'symlink' || type === 'hardlink' ? e.linkpath.toString('utf8') : null,
          file: spool === null ? inputName : spoolPath,
          // In place: the body starts right after the header just consumed.
          offset: spool === null ? reader.position : spoolPos,
          sha256: null,
        };
        this.members.set(name, m);
        if (spool === null || type !== 'file' || size === 0) {
          if (spool !== null && type === 'file') m.sha256 = newHash('sha256').digest('hex');
          return null;
        }
        const h = newHash('sha256');
        let written = 0;
        const fh = spoolFh!;
        spoolPos += size;
        return {
          write: async (data: Buffer) => {
            h.update(data);
            let off = 0;
            while (off < data.length) {
              const { bytesWritten } = await fh.write(data, off, data.length - off, m.offset + written + off);
              off += bytesWritten;
            }
            written += data.length;
            if (written === size) m.sha256 = h.digest('hex');
          },
        };
      },
    });
    try {
      for await (const chunk of src as AsyncIterable<Buffer>) {
        if (o.signal?.aborted) throw new AbortedError(o.signal.reason);
        await reader.write(chunk);
      }
      await reader.end();
    } catch (err) {
      (src as Readable).destroy?.();
      throw archiveError(err);
    } finally {
      if (spoolFh) await spoolFh.close().catch(() => {});
    }
  }

  /**
   * The regular-file member that `name` designates, following symlinks and hardlinks within the
   * archive (≤ 8 hops). Missing → ARCHIVE_INVALID naming `what` (defaults to the name).
   */
  resolve(name: string, what: string = name): Member {
    let cur = normalizeMemberName(name);
    if (cur === null) throw new ArchiveInvalidError(`archive member ${JSON.stringify(name)} contains '..'`, name);
    for (let hop = 0; ; hop++) {
      const m = this.members.get(cur);
      if (!m)
        throw new ArchiveInvalidError(
          `archive member ${JSON.stringify(cur)} is missing${cur !== what ? ` (needed for ${what})` : ''}`,
          cur,
        );
      if (m.type === 'file') return m;
      if (m.type !== 'symlink' && m.type !== 'hardlink') {
        throw new ArchiveInvalidError(`archive member ${JSON.stringify(cur)} is not a regular file`, cur);
      }
      if (hop >= MAX_LINK_HOPS)
        throw new ArchiveInvalidError(
          `archive member ${JSON.stringify(name)}: more than ${MAX_LINK_HOPS} link hops (a loop?)`,
          name,
        );
      const target = m.link ?? '';
      if (m.type === 'symlink' && target.startsWith('/')) {
        throw new ArchiveInvalidError(
          `archive member ${JSON.stringify(cur)} is a symlink to the absolute path ${JSON.stringify(target)}`,
          cur,
        );
      }
      const slash = cur.lastIndexOf('/');
      const base = m.type === 'symlink' ? (slash < 0 ? '' : cur.slice(0, slash)) : '';
      const next = resolveLinkTarget(base, target);
      if (next === null || next === '') {
        throw new ArchiveInvalidError(
          `archive member ${JSON.stringify(cur)} links to ${JSON.stringify(target)}, outside the archive`,
          cur,
        );
      }
      cur = next;
    }
  }

  /** True when `name` designates something (without following links). */
  has(name: string): boolean {
    return this.members.has(name);
  }

  /** Whole body of a member, at most `max` bytes (LIMIT_EXCEEDED `limitName` beyond). */
  async readBytes(name: string, max: number, limitName: string): Promise<Buffer> {
    const m = this.resolve(name);
    if (m.size > max) throw new LimitExceededError(limitName, m.size, max, `archive member ${name}`);
    const buf = Buffer.alloc(m.size);
    if (m.size === 0) return buf;
    let fh: FileHandle;
    try {
      fh = await open(m.file, 'r');
    } catch (err) {
      throw toIoError(err, m.file);
    }
    try {
      let off = 0;
      while (off < m.size) {
        const { bytesRead } = await fh.read(buf, off, m.size - off, m.offset + off);
        if (bytesRead === 0) throw new ArchiveInvalidError(`archive member ${name} is truncated`, name);
        off += bytesRead;
      }
    } finally {
      await fh.close().catch(() => {});
    }
    return buf;
  }

  /** A stream of a member's body. */
  stream(m: Member): Readable {
    if (m.size === 0) return Readable.from([]);
    return createReadStream(m.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: CHUNK });
  }

  /** Removes the spool directory, if any (the caller passes it). */
  static async removeSpool(dir: string | null): Promise<void> {
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Compression of the archive from its first bytes; anything that is not a tar is ARCHIVE_INVALID. */
function detectArchive(head: Buffer): Compression {
  const k = head.length === 0 ? null : detectCompression(head);
  if (k === null)
    throw new ArchiveInvalidError('not a docker-save or OCI-layout archive (not a tar, gzip or zstd file)');
  return k;
}

function decompressed(src: NodeJS.ReadableStream, kind: Compression): NodeJS.ReadableStream {
  const d = createDecompressor(kind);
  src.on('error', (e) => d.destroy(e as Error));
  src.pipe(d);
  return d;
}

/**
 * The member table of a load archive (docs/archives.md §2).
 *
 * - Path input, plain tar: one pass over the archive builds `name → (offset, size, type, link)`;
 *   members are then read from the archive file by offset, so nothing is copied.
 * - Path input, compressed: the first pass (decoding) builds the table and keeps only the SMALL
 *   members' bodies (≤ maxManifestBytes; manifest.json ≤ 16 MiB: the JSON a plan reads) in the
 *   spool file `members`; large members are streamed past. Once the plan names the layer members
 *   it needs, ONE second pass decodes the archive again and copies just those (`ensureResident`).
 *   Unreferenced members are never spooled: a 3 GiB member nothing names costs no disk.
 * - Stream input: its bytes are copied to the spool as they arrive (`archive`, compressed or
 *   not, the first pass running on them at the same time); from then on it is a file: a plain
 *   tar is read in place, a compressed one as above. (A stream cannot be read twice, and an
 *   archive names its layers in manifest.json, which writers put after the layers.)
 * - Every spooled byte counts against `maxArchiveSpoolBytes`; bytes after the end-of-archive block
 *   against `archiveTrailingBytes` (scan.ts). Bodies are hashed (sha256) as they are spooled, and a
 *   member hashed once is never hashed again (`sha256`, `head`).
 * - One spool file for all members rather than one per member: an archive of a million empty
 *   members must not create a million files before the member limit stops it.
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
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ArchiveInvalidError, LimitExceededError, toIoError } from '../errors.js';
import { DETECT_BYTES, detectCompression, sniffFile, takeHead, type Compression } from '../layer/compression.js';
import { FIXED_LIMITS, type Limits } from '../limits.js';
import { TarReader, type TarEntry } from '../tar/reader.js';
import { newHash } from '../util/digest.js';
import { archiveError, CHUNK, countRaw, decoded, fileChunks, newTrailing, runPass, type Trailing } from './scan.js';
import { Spool, type SpoolFile } from './spool.js';

export type MemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface Member {
  name: string;
  type: MemberType;
  size: number;
  /** Raw link target (symlink: relative to the member's directory; hardlink: from the root). */
  link: string | null;
  /** Index of the entry in the tar: names it in a second pass (a later duplicate wins). */
  ordinal: number;
  /** File holding the body (the archive, or the spool); null until a second pass copies it. */
  file: string | null;
  offset: number;
  /** sha256 (hex) of the body, once computed (while spooled, or by the first read of the member). */
  sha256: string | null;
  /** Its first DETECT_BYTES bytes, kept with `sha256` (the compression of a layer member). */
  head: Buffer | null;
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
  limits: Pick<Limits, 'maxArchiveMembers' | 'maxPaxHeaderBytes' | 'maxManifestBytes' | 'maxArchiveSpoolBytes'>;
  signal?: AbortSignal | undefined;
  /**
   * Creates the spool directory (after leasing it) and returns its path; called only when
   * something must be spooled (a stream, or a member of a compressed archive).
   */
  spoolDir(): Promise<string>;
}

const EMPTY_SHA256 = newHash('sha256').digest('hex');

/** True when a plan may read the member whole (JSON): its body is kept by the first pass. */
function isSmall(name: string, size: number, limits: OpenArchiveOptions['limits']): boolean {
  return size <= limits.maxManifestBytes || (name === 'manifest.json' && size <= FIXED_LIMITS.manifestJsonBytes);
}

function memberType(e: TarEntry): MemberType {
  switch (e.kind) {
    case 'file':
    case 'dir':
    case 'symlink':
    case 'hardlink':
      return e.kind;
    default:
      return 'other';
  }
}

/** A body sink that writes to `file` at `at` and hashes; fills `m.sha256`/`m.head` at the end. */
function spoolSink(m: Member, file: SpoolFile, at: number): { write(data: Buffer): Promise<void> } {
  const h = newHash('sha256');
  let written = 0;
  const head: Buffer[] = [];
  return {
    write: async (data: Buffer) => {
      h.update(data);
      if (written < DETECT_BYTES) head.push(data.subarray(0, DETECT_BYTES - written));
      await file.writeAt(data, at + written);
      written += data.length;
      if (written === m.size) {
        m.sha256 = h.digest('hex');
        m.head = Buffer.concat(head);
        m.file = file.path;
        m.offset = at;
      }
    },
  };
}

export class ArchiveMembers {
  readonly members = new Map<string, Member>();
  /** The compression of the archive itself. */
  compression: Compression = 'none';
  /** The archive as a file that can be read again: the input path, or the spooled stream. */
  private source = '';
  private spool: Spool;
  private membersFile: SpoolFile | null = null;

  private constructor(private readonly o: OpenArchiveOptions) {
    this.spool = new Spool(o.limits.maxArchiveSpoolBytes, o.spoolDir);
  }

  /** Reads the archive and builds the table. `input` is a path or a readable stream. */
  static async open(input: string | NodeJS.ReadableStream, o: OpenArchiveOptions): Promise<ArchiveMembers> {
    const t = new ArchiveMembers(o);
    try {
      if (typeof input === 'string') {
        let regular: boolean;
        try {
          regular = (await stat(input)).isFile();
        } catch (err) {
          throw toIoError(err, input);
        }
        // A FIFO or a device (`-i /dev/stdin`, `-i /dev/zero`) is read as the stream it is.
        if (regular) await t.openFile(input);
        else await t.openStream(createReadStream(input, { highWaterMark: CHUNK }), input);
      } else await t.openStream(input, '<stdin>');
      return t;
    } catch (err) {
      await t.close();
      throw err;
    }
  }

  /** A regular file: read in place (plain tar), or decoded with its small members spooled. */
  private async openFile(path: string): Promise<void> {
    let head: Buffer;
    try {
      head = await sniffFile(path);
    } catch (err) {
      throw toIoError(err, path);
    }
    this.compression = detectArchive(head);
    this.source = path;
    const trailing = newTrailing();
    await this.firstPass(fileChunks(path, this.compression, trailing), trailing, path);
  }

  /**
   * A stream: its bytes go to the spool file `archive` as they arrive, and the first pass runs on
   * them at the same time (decoded when compressed). The input is destroyed if the load fails.
   */
  private async openStream(input: NodeJS.ReadableStream, what: string): Promise<void> {
    const it = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    let head: Buffer;
    let first: Buffer[];
    let ended: boolean;
    try {
      ({ head, chunks: first, ended } = await takeHead(it));
    } catch (err) {
      throw toIoError(err, what);
    }
    this.compression = detectArchive(head);
    const copy = await this.spool.file('archive');
    this.source = copy.path;
    const trailing = newTrailing();
    const raw = Readable.from(teeToSpool(it, first, ended, copy, trailing, this.compression !== 'none'), {
      objectMode: false,
      highWaterMark: CHUNK,
    });
    await this.firstPass(this.compression === 'none' ? raw : decoded(raw, this.compression), trailing, what);
  }

  /** Pass 1: the table; bodies of small members of a compressed archive go to the spool. */
  private async firstPass(chunks: Readable, trailing: Trailing, what: string): Promise<void> {
    const limits = this.o.limits;
    const inPlace = this.compression === 'none';
    let count = 0;
    const reader: TarReader = new TarReader({
      limits: {
        maxPaxHeaderBytes: limits.maxPaxHeaderBytes,
        maxLayerEntries: Number.MAX_SAFE_INTEGER,
        maxFileBytes: Number.MAX_SAFE_INTEGER,
      },
      onEntry: async (e: TarEntry) => {
        if (++count > limits.maxArchiveMembers) {
          throw new LimitExceededError('maxArchiveMembers', count, limits.maxArchiveMembers, 'archive members');
        }
        const m = this.record(e, count - 1);
        if (m.type !== 'file') return null;
        if (inPlace && m.size > 0) {
          m.file = this.source;
          m.offset = reader.position; // the body starts right after the header just consumed
          return null;
        }
        if (m.file !== null || !isSmall(m.name, m.size, limits)) return null; // empty; or streamed past, copied later if named
        const file = await this.members_();
        return spoolSink(m, file, file.reserve(m.size));
      },
    });
    try {
      await runPass(chunks, reader, { signal: this.o.signal, trailing });
    } catch (err) {
      throw archiveError(err, this.compression, what);
    }
  }

  /** The `members` spool file, created at its first use. */
  private async members_(): Promise<SpoolFile> {
    this.membersFile ??= await this.spool.file('members');
    return this.membersFile;
  }

  /** Names, duplicates and types of one entry (docs/archives.md §2); the Member (body not yet placed). */
  private record(e: TarEntry, ordinal: number): Member {
    const rawName = e.path.toString('utf8');
    const name = normalizeMemberName(rawName);
    if (name === null)
      throw new ArchiveInvalidError(`archive member ${JSON.stringify(rawName)} contains '..'`, rawName);
    const type = memberType(e);
    if (type === 'file' && e.sparse)
      throw new ArchiveInvalidError(`archive member ${JSON.stringify(name)} is a sparse file`, name);
    const prev = this.members.get(name);
    if (prev && !(prev.type === 'dir' && type === 'dir') && isMetadataName(name)) {
      throw new ArchiveInvalidError(`archive member ${JSON.stringify(name)} appears twice`, name);
    }
    const size = type === 'file' ? e.size : 0;
    const empty = type === 'file' && size === 0; // nothing to read or copy, ever
    const m: Member = {
      name,
      type,
      size,
      link: type === 'symlink' || type === 'hardlink' ? e.linkpath.toString('utf8') : null,
      ordinal,
      file: empty ? '' : null,
      offset: 0,
      sha256: empty ? EMPTY_SHA256 : null,
      head: empty ? Buffer.alloc(0) : null,
    };
    this.members.set(name, m);
    return m;
  }

  /**
   * Makes the bodies of `list` readable: members of a compressed archive that the first pass
   * streamed past are copied to the spool in ONE more pass, which stops as soon as it has them.
   */
  async ensureResident(list: Iterable<Member>): Promise<void> {
    const wanted = new Map<number, Member>();
    for (const m of list) if (m.type === 'file' && m.file === null) wanted.set(m.ordinal, m);
    if (wanted.size === 0) return;
    const file = await this.members_();
    let ordinal = 0;
    let left = wanted.size;
    const reader: TarReader = new TarReader({
      limits: {
        maxPaxHeaderBytes: this.o.limits.maxPaxHeaderBytes,
        maxLayerEntries: Number.MAX_SAFE_INTEGER,
        maxFileBytes: Number.MAX_SAFE_INTEGER,
      },
      onEntry: async () => {
        const m = wanted.get(ordinal++);
        if (!m) return null;
        left--;
        return spoolSink(m, file, file.reserve(m.size));
      },
    });
    try {
      await runPass(fileChunks(this.source, this.compression), reader, {
        signal: this.o.signal,
        trailing: newTrailing(),
        done: () => left === 0 && [...wanted.values()].every((m) => m.file !== null),
      });
    } catch (err) {
      throw archiveError(err, this.compression, this.source);
    }
    for (const m of wanted.values())
      if (m.file === null) throw new ArchiveInvalidError(`archive member ${m.name} changed while it was read`, m.name);
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
    await this.ensureResident([m]);
    const path = m.file!;
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw toIoError(err, path);
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

  /** A stream of a member's body (copied out of a compressed archive first, if needed). */
  async stream(m: Member): Promise<Readable> {
    if (m.size === 0) return Readable.from([]);
    await this.ensureResident([m]);
    return createReadStream(m.file!, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: CHUNK });
  }

  /** Closes the spool files (the directory stays until `removeSpool`). */
  async close(): Promise<void> {
    await this.spool.close();
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

/**
 * The stream's chunks, each written to the spool copy before it is passed on (the copy is what
 * later passes read). Raw bytes after the tar's end are counted (`countRaw`) when `compressed`.
 * On any exit before the end, the input's iterator is closed (the input stream is destroyed).
 */
async function* teeToSpool(
  it: AsyncIterator<Buffer | string>,
  first: Buffer[],
  ended: boolean,
  copy: SpoolFile,
  trailing: Trailing,
  compressed: boolean,
): AsyncGenerator<Buffer> {
  let finished = ended;
  try {
    for (const c of first) {
      await copy.append(c);
      yield c;
    }
    while (!finished) {
      const r = await it.next();
      if (r.done) {
        finished = true;
        break;
      }
      const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      if (compressed) countRaw(trailing, c.length);
      await copy.append(c);
      yield c;
    }
  } finally {
    if (!finished) await it.return?.().catch(() => {});
  }
}

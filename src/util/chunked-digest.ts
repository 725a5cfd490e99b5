/**
 * The content digest of a cache artifact (docs/storage.md §10.1), `msb-chunked-sha256:<hex>`: the
 * SHA-256 of the concatenated SHA-256 of each 1 MiB chunk of the file (the last chunk may be
 * shorter; an empty file has no chunk). Unlike a plain SHA-256 it can be fed in any order, which
 * is how the EROFS writers produce a file (data first, the superblock last, holes never written),
 * so it is computed WHILE writing, never by a second read; and its chunks hash in parallel on the
 * thread pool (`crypto.subtle.digest`, which copies its input when called, so a caller's buffer is
 * free again as soon as the call returns).
 *
 * An all-zero chunk is hashed once (a constant), so holes cost nothing. Memory: the pending
 * partial chunks (those the writer has not finished; the writers report holes so these stay few),
 * at most MAX_IN_FLIGHT chunk copies in the thread pool, and 32 bytes per non-zero chunk.
 */
import { createHash } from 'node:crypto';
import { constants as C, promises as fsp } from 'node:fs';
import { CacheCorruptError, MsbError, throwIfAborted, toIoError } from '../errors.js';

export const CONTENT_DIGEST_KIND = 'msb-chunked-sha256';
export const DIGEST_CHUNK = 1 << 20;
const MAX_IN_FLIGHT = 4;
const PREFIX = `${CONTENT_DIGEST_KIND}:`;
const RE = /^msb-chunked-sha256:[0-9a-f]{64}$/;

/** True iff `s` is a well-formed content digest. */
export function isContentDigest(s: unknown): s is string {
  return typeof s === 'string' && RE.test(s);
}

// Computed on first use: a warm pull loads this module but never hashes.
let zeroChunk: Buffer | null = null;
let zeroHash: Buffer | null = null;
function zeroes(): Buffer {
  if (!zeroChunk) zeroChunk = Buffer.alloc(DIGEST_CHUNK);
  return zeroChunk;
}
function ZERO_HASH(): Buffer {
  if (!zeroHash) zeroHash = createHash('sha256').update(zeroes()).digest();
  return zeroHash;
}

function isZero(b: Buffer): boolean {
  return b.length === DIGEST_CHUNK ? b.equals(zeroes()) : b.equals(zeroes().subarray(0, b.length));
}

async function sha256(b: Buffer): Promise<Buffer> {
  return Buffer.from(await globalThis.crypto.subtle.digest('SHA-256', b as unknown as BufferSource));
}

interface Pending {
  buf: Buffer;
  covered: number;
}

/**
 * Accumulates a content digest from byte ranges reported in any order, each byte at most once
 * (`data` for written bytes, `zero` for holes); ranges never reported read as zero. `finish` takes
 * the final file length.
 */
export class ChunkedDigest {
  private readonly pending = new Map<number, Pending>();
  /** 32 bytes per chunk index; `known[i]` = 1 when `hashes` holds chunk i's hash. */
  private hashes = Buffer.alloc(32 * 64);
  private known = new Uint8Array(64);
  private readonly inFlight = new Set<Promise<void>>();
  private error: unknown = null;
  private finished = false;

  /** Bytes at `pos`. The buffer is the caller's again when this returns (or its promise resolves). */
  data(pos: number, buf: Buffer): void | Promise<void> {
    this.assertOpen();
    let off = 0;
    while (off < buf.length) {
      const p = pos + off;
      const i = Math.floor(p / DIGEST_CHUNK);
      const rel = p - i * DIGEST_CHUNK;
      const n = Math.min(buf.length - off, DIGEST_CHUNK - rel);
      if (n === DIGEST_CHUNK && !this.pending.has(i)) this.complete(i, buf.subarray(off, off + n));
      else this.fill(i, rel, n, buf.subarray(off, off + n));
      off += n;
    }
    return this.inFlight.size >= MAX_IN_FLIGHT ? this.waitOne() : undefined;
  }

  /** A hole of `len` bytes at `pos` (reads as zero). */
  zero(pos: number, len: number): void {
    this.assertOpen();
    let off = 0;
    while (off < len) {
      const p = pos + off;
      const i = Math.floor(p / DIGEST_CHUNK);
      const rel = p - i * DIGEST_CHUNK;
      const n = Math.min(len - off, DIGEST_CHUNK - rel);
      // A whole chunk never touched is zero already: nothing to keep.
      if (n < DIGEST_CHUNK || this.pending.has(i)) this.fill(i, rel, n, null);
      off += n;
    }
  }

  /** The digest of a file of `length` bytes (every range reported so far lies below it). */
  async finish(length: number): Promise<string> {
    this.assertOpen();
    this.finished = true;
    const n = Math.ceil(length / DIGEST_CHUNK);
    for (const [i, p] of this.pending) {
      if (i >= n) throw new Error(`ChunkedDigest: bytes reported beyond the length ${length}`);
      const len = Math.min(DIGEST_CHUNK, length - i * DIGEST_CHUNK);
      if (p.covered > len) throw new Error(`ChunkedDigest: bytes reported beyond the length ${length}`);
      this.start(i, p.buf.subarray(0, len));
    }
    this.pending.clear();
    // The last chunk when short and never touched: zeros of its own length.
    const tail = length % DIGEST_CHUNK;
    if (tail !== 0 && !this.has(n - 1)) this.start(n - 1, Buffer.alloc(tail));
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    if (this.error) throw this.error;
    const outer = createHash('sha256');
    for (let i = 0; i < n; i++) outer.update(this.has(i) ? this.hashes.subarray(32 * i, 32 * i + 32) : ZERO_HASH());
    return PREFIX + outer.digest('hex');
  }

  private assertOpen(): void {
    if (this.finished) throw new Error('ChunkedDigest: already finished');
    if (this.error) throw this.error;
  }

  private fill(i: number, rel: number, n: number, src: Buffer | null): void {
    let p = this.pending.get(i);
    if (!p) {
      if (this.has(i)) throw new Error(`ChunkedDigest: chunk ${i} reported twice`);
      p = { buf: Buffer.alloc(DIGEST_CHUNK), covered: 0 };
      this.pending.set(i, p);
    }
    if (src) src.copy(p.buf, rel);
    p.covered += n;
    if (p.covered > DIGEST_CHUNK) throw new Error(`ChunkedDigest: chunk ${i} reported twice`);
    if (p.covered === DIGEST_CHUNK) {
      this.pending.delete(i);
      this.complete(i, p.buf);
    }
  }

  private complete(i: number, chunk: Buffer): void {
    if (this.has(i)) throw new Error(`ChunkedDigest: chunk ${i} reported twice`);
    if (!isZero(chunk)) this.start(i, chunk);
  }

  /** Hashes chunk i on the thread pool (the input is copied by the call). */
  private start(i: number, chunk: Buffer): void {
    this.reserve(i);
    if (chunk.length === DIGEST_CHUNK && isZero(chunk)) return;
    const job = sha256(chunk).then(
      (h) => {
        h.copy(this.hashes, 32 * i);
        this.known[i] = 1;
      },
      (err: unknown) => {
        this.error ??= err;
      },
    );
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
    this.known[i] = 2; // hashing
  }

  private has(i: number): boolean {
    return i < this.known.length && this.known[i] !== 0;
  }

  private reserve(i: number): void {
    if (i < this.known.length) return;
    let size = this.known.length;
    while (size <= i) size *= 2;
    const k = new Uint8Array(size);
    k.set(this.known);
    this.known = k;
    const h = Buffer.alloc(32 * size);
    this.hashes.copy(h);
    this.hashes = h;
  }

  private async waitOne(): Promise<void> {
    await Promise.race([...this.inFlight]);
    if (this.error) throw this.error;
  }
}

/** The content digest of bytes held in memory (a VMDK descriptor). */
export function contentDigestOfBuffer(b: Buffer): string {
  const outer = createHash('sha256');
  for (let o = 0; o < b.length; o += DIGEST_CHUNK) {
    const c = b.subarray(o, o + DIGEST_CHUNK);
    outer.update(c.length === DIGEST_CHUNK && isZero(c) ? ZERO_HASH() : createHash('sha256').update(c).digest());
  }
  return PREFIX + outer.digest('hex');
}

/**
 * The content digest of the file at `path`, read once: opened with O_NOFOLLOW (a symlink is
 * refused, never followed) and checked to be a regular file. Returns the digest and the bytes read.
 */
export async function contentDigestOfFile(
  path: string,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<{ digest: string; length: number }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new CacheCorruptError(path, 'is a symbolic link');
    throw toIoError(err, path);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CacheCorruptError(path, 'not a regular file');
    const d = new ChunkedDigest();
    const bufs = [Buffer.allocUnsafe(DIGEST_CHUNK), Buffer.allocUnsafe(DIGEST_CHUNK)];
    let pos = 0;
    for (let k = 0; ; k++) {
      throwIfAborted(opts.signal);
      const buf = bufs[k & 1]!;
      let got = 0;
      while (got < DIGEST_CHUNK) {
        const { bytesRead } = await fh.read(buf, got, DIGEST_CHUNK - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === 0) break;
      const r = d.data(pos, buf.subarray(0, got));
      if (r) await r;
      pos += got;
      if (got < DIGEST_CHUNK) break;
    }
    return { digest: await d.finish(pos), length: pos };
  } catch (err) {
    throw err instanceof MsbError ? err : toIoError(err, path);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/**
 * The single-pass layer pipeline of docs/pull.md §7 and the Range resume of §4, independent of where
 * the bytes come from (registry blob API) and of the converter (injected), so that its stream
 * plumbing is testable on its own.
 *
 *                 ┌─► tmp/blob-<alg>_<hex>.part   (+ compressed hash, byte count ≤ size+1)
 *   blob body ────┤
 *                 └─► decompressor (by magic bytes) ─► writeLayer (tar parse, diff_id, EROFS)
 *
 * - Backpressure: every `.part` write is awaited and the decompressor's `write() === false` is
 *   awaited as well, so memory never grows with the layer size.
 * - Error precedence (§7): a decompressor or tar error never stops the compressed hash; the body
 *   is read (and discarded) up to size+1, the blob digest decides first (`DigestMismatchError
 *   {what:'blob'}`, which the caller retries once from zero), and only then is the decode error
 *   reported (`LayerInvalidError`, not retried), then the diff_id (`{what:'diffId'}`).
 * - Resume (§4): an existing `.part` of n bytes (n ≤ size) is resumed with `Range: bytes=n-`: a
 *   206 appends, a 200 starts over, and the prefix is re-hashed and re-fed through the pipeline
 *   from byte 0. A `.part` of exactly `size` bytes needs no request at all (the §4 "416 with n =
 *   size" case, decided locally); a longer one is discarded.
 * - Abort: the body, decompressor and writer are torn down, AbortedError (cause = reason) is
 *   thrown, and the `.part` is KEPT for a later resume (§11). The caller deletes the candidate.
 */
import { createReadStream } from 'node:fs';
import { open, lstat, unlink, type FileHandle } from 'node:fs/promises';
import { PassThrough, pipeline, type Readable, type Writable } from 'node:stream';
import { AbortedError, DigestMismatchError, LayerInvalidError, MsbError, toIoError } from '../errors.js';
import { digestAlgorithm, newHash, type DigestAlgorithm } from '../util/digest.js';
import type { Limits } from '../limits.js';
import { compressionOfMediaType, type Compression } from '../oci/media-types.js';
import { DETECT_BYTES } from '../layer/compression.js';
import type { PullEmitter } from './events.js';

import type { WriteLayerResult } from '../erofs/layer-writer.js';

/** Result of one converted layer (the subset of writeLayer's result the pull uses). */
export interface ConvertedLayer extends Omit<WriteLayerResult, 'root'> {
  /** The layer's in-memory tree, kept for stitching (`buildFsmeta`). */
  root?: unknown;
}

export interface ConverterDeps {
  /** Decides the decoder from the first bytes (≥ DETECT_BYTES unless the stream is shorter); null = unknown. */
  detectCompression(head: Buffer): Compression | null;
  createDecompressor(kind: Compression, opts: { signal: AbortSignal }): NodeJS.ReadWriteStream;
  /** Types a decoder error (default: LayerInvalidError). */
  mapDecodeError?(kind: Compression, err: unknown): MsbError;
  /** Consumes the WHOLE decompressed stream (draining bytes after the tar end marker). */
  writeLayer(
    tar: Readable,
    candidatePath: string,
    opts: {
      signal: AbortSignal;
      onProgress: (p: { tarBytes: number; entries: number }) => void;
      onWarning: (w: { code: string; message: string }) => void;
      diffIdAlgorithm: DigestAlgorithm;
      limits?: Partial<Limits>;
    },
  ): Promise<ConvertedLayer>;
}

/**
 * The blob as a stream of events (the registry client's `readBlob`): `open{rangeStart}` first and
 * again after every transparent resume (rangeStart = bytes already delivered) or restart
 * (rangeStart 0: everything delivered so far must be discarded); `data{chunk}` in order; at most
 * size + 1 bytes in all.
 */
export type BlobEvent =
  | { type: 'open'; rangeStart: number; endpointIndex: number; isMirror: boolean; source: string }
  | { type: 'data'; chunk: Buffer };

/** Opens the blob from byte `offset` (Range when > 0), trying endpoints from `startEndpoint`. */
export type BlobSource = (
  offset: number,
  opts: { signal: AbortSignal; startEndpoint: number },
) => AsyncIterable<BlobEvent>;

export interface BlobDescriptor {
  digest: string;
  size: number;
  mediaType: string;
}

export interface PipelineOptions {
  layerIndex: number;
  blob: BlobDescriptor;
  diffId: string;
  partPath: string;
  candidatePath: string;
  source: BlobSource;
  deps: ConverterDeps;
  emitter: PullEmitter;
  signal: AbortSignal;
  /** `pull.retries`: bound on restarts from zero (a 200 answer to a Range request). */
  retries?: number;
  /** Tar limits for the writer (docs/api.md §6). */
  limits?: Partial<Limits>;
  /** Called for warnings (MEDIA_TYPE_MISMATCH, MIRROR_FALLBACK, the writer's XATTR_DROPPED…). */
  onWarning?: (code: string, message: string) => void;
}

export interface PipelineResult extends ConvertedLayer {
  compression: Compression;
  /** Compressed bytes taken from the network in this call (0 when the `.part` was complete). */
  networkBytes: number;
  resumedFrom: number;
}

/**
 * Thrown inside a pass when the source restarted from byte 0 (a 200 answer to a Range request):
 * the pass is torn down and the next one continues on the same, already re-opened, iterator.
 */
class RestartFromZero extends Error {
  constructor(
    readonly reason: string,
    readonly it: AsyncIterator<BlobEvent>,
    readonly open: Extract<BlobEvent, { type: 'open' }>,
  ) {
    super(reason);
  }
}

const MEDIA_WARN = 'MEDIA_TYPE_MISMATCH';

async function fileSize(path: string): Promise<number | null> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) {
      await unlink(path).catch(() => {});
      return null;
    }
    return st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toIoError(err, path);
  }
}

export async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    /* absent already */
  }
}

function abortError(signal: AbortSignal): AbortedError {
  return new AbortedError(signal.reason);
}

/** Turns decoder/stream errors into LayerInvalidError; typed errors pass through. */
function asDecodeError(err: unknown, diffId: string, kind: Compression | null): MsbError {
  if (err instanceof MsbError) return err;
  const msg = (err as Error)?.message ?? String(err);
  return new LayerInvalidError(`${kind ?? 'layer'} stream is corrupt: ${msg}`, { diffId, cause: err });
}

interface PassStart {
  /** Forget the .part (restart, digest retry). */
  fromZero: boolean;
  /** Endpoint to start from (a mirror that served a bad blob is abandoned, docs/pull.md §12). */
  startEndpoint: number;
  /** An iterator already re-opened at byte 0 by the source (carried over from a restart). */
  carried: { it: AsyncIterator<BlobEvent>; open: Extract<BlobEvent, { type: 'open' }> } | null;
}

/**
 * Downloads (or resumes) one blob and converts it in the same pass. Retries a blob digest
 * mismatch once from zero (docs/pull.md §4; a mirror that served it is abandoned first, §12), restarts
 * from zero when the source does, and deletes the `.part` on success and on verification
 * failures; keeps it on abort and on transport errors.
 */
export async function downloadAndConvert(o: PipelineOptions): Promise<PipelineResult> {
  let digestRetried = false;
  let restarts = 0;
  const maxRestarts = Math.max(1, o.retries ?? 5);
  let attempt = 1;
  let start: PassStart = { fromZero: false, startEndpoint: 0, carried: null };
  const lastEndpoint = { index: 0, isMirror: false, source: '' };
  for (;;) {
    try {
      const r = await onePass(o, start, lastEndpoint);
      await unlinkQuiet(o.partPath);
      return r;
    } catch (err) {
      await unlinkQuiet(o.candidatePath);
      if (o.signal.aborted) throw abortError(o.signal);
      if (err instanceof RestartFromZero && restarts < maxRestarts) {
        restarts++;
        attempt++;
        o.emitter.emit({ type: 'retry', layerIndex: o.layerIndex, attempt, delayMs: 0, reason: err.reason });
        await unlinkQuiet(o.partPath);
        start = { fromZero: true, startEndpoint: err.open.endpointIndex, carried: { it: err.it, open: err.open } };
        continue;
      }
      if (err instanceof DigestMismatchError && err.what === 'blob' && lastEndpoint.isMirror) {
        // §12: a mirror that serves a bad blob is abandoned for the next endpoint.
        attempt++;
        o.onWarning?.(
          'MIRROR_FALLBACK',
          `blob ${o.blob.digest} from ${lastEndpoint.source} failed verification; trying the next endpoint`,
        );
        o.emitter.emit({ type: 'retry', layerIndex: o.layerIndex, attempt, delayMs: 0, reason: err.message });
        await unlinkQuiet(o.partPath);
        start = { fromZero: true, startEndpoint: lastEndpoint.index + 1, carried: null };
        continue;
      }
      if (err instanceof DigestMismatchError && err.what === 'blob' && !digestRetried) {
        digestRetried = true;
        attempt++;
        o.emitter.emit({ type: 'retry', layerIndex: o.layerIndex, attempt, delayMs: 0, reason: err.message });
        await unlinkQuiet(o.partPath);
        start = { fromZero: true, startEndpoint: lastEndpoint.index, carried: null };
        continue;
      }
      if (err instanceof RestartFromZero) await err.it.return?.().catch(() => {});
      // Verification failures leave nothing behind (§7); transport errors keep the .part (§4).
      if (err instanceof DigestMismatchError || err instanceof LayerInvalidError || err instanceof RestartFromZero) {
        await unlinkQuiet(o.partPath);
      }
      if (err instanceof RestartFromZero)
        throw new LayerInvalidError(`blob ${o.blob.digest}: ${err.reason} (too many restarts)`, { diffId: o.diffId });
      throw err;
    }
  }
}

async function onePass(
  o: PipelineOptions,
  start: PassStart,
  lastEndpoint: { index: number; isMirror: boolean; source: string },
): Promise<PipelineResult> {
  const { blob, signal, emitter, layerIndex } = o;
  if (signal.aborted) throw abortError(signal);
  const alg = digestAlgorithm(blob.digest);

  // 1. What is already on disk (a .part longer than the blob is discarded).
  let n = start.fromZero ? 0 : ((await fileSize(o.partPath)) ?? 0);
  if (n > blob.size) {
    await unlinkQuiet(o.partPath);
    n = 0;
  }

  // 2. Ask for the rest; a complete .part needs no request (the "416 at n = size" case).
  let it: AsyncIterator<BlobEvent> | null = null;
  if (start.carried) {
    it = start.carried.it;
    n = 0;
    Object.assign(lastEndpoint, {
      index: start.carried.open.endpointIndex,
      isMirror: start.carried.open.isMirror,
      source: start.carried.open.source,
    });
  } else if (!(n > 0 && n === blob.size)) {
    it = o.source(n, { signal, startEndpoint: start.startEndpoint })[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || first.value.type !== 'open') {
      await it.return?.().catch(() => {});
      throw new LayerInvalidError(`blob ${blob.digest}: the source yielded no response`, { diffId: o.diffId });
    }
    const op = first.value;
    Object.assign(lastEndpoint, { index: op.endpointIndex, isMirror: op.isMirror, source: op.source });
    if (op.rangeStart !== n) n = 0; // the server ignored Range: start over, nothing was fed yet
    if (n > 0 && op.rangeStart === blob.size) {
      await it.return?.().catch(() => {});
      it = null;
    }
  }

  emitter.resetProgress(layerIndex, 'download');
  emitter.resetProgress(layerIndex, 'materialize');
  emitter.emit({ type: 'layerDownloadStarted', layerIndex, digest: blob.digest, totalBytes: blob.size, resumeFrom: n });
  emitter.emit({ type: 'layerMaterializeStarted', layerIndex, diffId: o.diffId });

  // 3. The .part: appended after a 206, truncated otherwise.
  let part: FileHandle | null = null;
  const prefix = n;
  try {
    part = it ? await open(o.partPath, prefix > 0 ? 'a' : 'w', 0o644) : null;
  } catch (err) {
    await it?.return?.().catch(() => {});
    throw toIoError(err, o.partPath);
  }

  const partWriter = part ? new PartWriter(part, o.partPath) : null;
  const hash = newHash(alg);
  let count = 0;
  let networkBytes = 0;
  let tooLong = false;

  // Decoder side: sniffed on the first ≥ DETECT_BYTES, then streamed with backpressure.
  const dec = new DecodeSide(o);

  const onAbort = () => dec.destroy(abortError(signal));
  signal.addEventListener('abort', onAbort, { once: true });
  let itDone = false;
  try {
    const feedChunk = async (chunk: Buffer, fromNetwork: boolean) => {
      let c = chunk;
      if (count + c.length > blob.size) {
        c = c.subarray(0, blob.size + 1 - count);
        tooLong = true;
      }
      count += c.length;
      hash.update(c);
      let w: Promise<unknown> | undefined;
      if (fromNetwork) {
        networkBytes += c.length;
        // The byte past `size` is never written: the .part stays a prefix of a valid blob.
        const keep = tooLong ? c.subarray(0, Math.max(0, c.length - 1)) : c;
        if (keep.length > 0) w = partWriter!.add(keep);
      }
      const d = dec.write(c);
      if (w) await w;
      await d;
      emitter.progress({
        type: 'layerDownloadProgress',
        layerIndex,
        digest: blob.digest,
        downloadedBytes: Math.min(count, blob.size),
        totalBytes: blob.size,
      });
    };

    if (prefix > 0) {
      const rs = createReadStream(o.partPath, { start: 0, end: prefix - 1, highWaterMark: 256 * 1024 });
      try {
        for await (const c of rs) {
          if (signal.aborted) throw abortError(signal);
          await feedChunk(c as Buffer, false);
        }
      } finally {
        rs.destroy();
      }
    }
    if (it) {
      try {
        for (;;) {
          if (signal.aborted) throw abortError(signal);
          const r = await it.next();
          if (r.done) {
            itDone = true;
            break;
          }
          const ev = r.value;
          if (ev.type === 'open') {
            Object.assign(lastEndpoint, { index: ev.endpointIndex, isMirror: ev.isMirror, source: ev.source });
            if (ev.rangeStart === count) continue; // a transparent resume after a cut-off body
            const carriedIt = it;
            it = null; // handed over to the next pass
            throw new RestartFromZero(
              `the server restarted blob ${blob.digest} from byte ${ev.rangeStart}`,
              carriedIt,
              ev,
            );
          }
          await feedChunk(ev.chunk, true);
          if (tooLong) break; // reading stops at size + 1 (§7)
        }
      } finally {
        if (it && !itDone) await it.return?.().catch(() => {});
      }
    }
    if (signal.aborted) throw abortError(signal);
    await partWriter?.end();
    // No fsync: the .part is a transient resume aid; a torn one fails the blob digest and is
    // fetched again from zero (docs/pull.md §4), so durability buys nothing here.
    await part?.close();
    part = null;

    emitter.flushProgress(layerIndex, 'download', {
      type: 'layerDownloadProgress',
      layerIndex,
      digest: blob.digest,
      downloadedBytes: Math.min(count, blob.size),
      totalBytes: blob.size,
    });
    emitter.emit({
      type: 'layerDownloadComplete',
      layerIndex,
      digest: blob.digest,
      downloadedBytes: Math.min(count, blob.size),
    });

    // 4. Finish the decoder side; its outcome is judged only after the blob digest.
    const converted = await dec.finish();
    if (signal.aborted) throw abortError(signal);

    const actual = `${alg}:${hash.digest('hex')}`;
    if (count !== blob.size) {
      throw new DigestMismatchError(
        'blob',
        blob.digest,
        actual,
        `blob ${blob.digest} has ${tooLong ? 'more than ' : ''}${count} bytes, the descriptor says ${blob.size}`,
      );
    }
    if (actual !== blob.digest) throw new DigestMismatchError('blob', blob.digest, actual);
    if (!converted.ok) {
      const e = converted.error;
      throw !(e instanceof MsbError) && o.deps.mapDecodeError && dec.kind
        ? o.deps.mapDecodeError(dec.kind, e)
        : asDecodeError(e, o.diffId, dec.kind);
    }
    const layer = converted.value;
    if (layer.diffId !== o.diffId) throw new DigestMismatchError('diffId', o.diffId, layer.diffId);
    emitter.flushProgress(layerIndex, 'materialize');
    return { ...layer, compression: dec.kind ?? 'none', networkBytes, resumedFrom: prefix };
  } catch (err) {
    dec.destroy(err instanceof Error ? err : new Error(String(err)));
    await dec.settle();
    if (signal.aborted) throw abortError(signal);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (part) await part.close().catch(() => {});
  }
}

/** .part bytes gathered before one `writev` (network chunks are 16–64 KiB). */
const PART_BATCH = 1 << 20;

/**
 * Appends to the .part in order, in batches of ~1 MiB with at most one write in flight, so the
 * download does not pay one thread-pool round trip per network chunk. Memory: ≤ 2 batches.
 */
class PartWriter {
  private pending: Buffer[] = [];
  private bytes = 0;
  private inflight: Promise<void> | null = null;
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
  ) {}

  /** Queues `buf`; resolves once the previous batch is on disk when a new one had to start. */
  async add(buf: Buffer): Promise<void> {
    this.pending.push(buf);
    this.bytes += buf.length;
    if (this.bytes >= PART_BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.bytes === 0) return;
    const bufs = this.pending;
    this.pending = [];
    this.bytes = 0;
    this.inflight = writevAll(this.fh, bufs, this.path);
    // Awaited by the next flush or by end(); an abort may never get there.
    this.inflight.catch(() => {});
  }

  async end(): Promise<void> {
    await this.flush();
    if (this.inflight) await this.inflight;
    this.inflight = null;
  }
}

async function writevAll(fh: FileHandle, bufs: Buffer[], path: string): Promise<void> {
  try {
    let rest = bufs;
    while (rest.length > 0) {
      let { bytesWritten } = await fh.writev(rest);
      // A short write: drop what was written and go on with the remainder.
      while (rest.length > 0 && bytesWritten >= rest[0]!.length) {
        bytesWritten -= rest[0]!.length;
        rest = rest.slice(1);
      }
      if (rest.length > 0 && bytesWritten > 0) rest = [rest[0]!.subarray(bytesWritten), ...rest.slice(1)];
    }
  } catch (err) {
    throw toIoError(err, path);
  }
}

/** Compressed bytes allowed to queue in front of the decoder. */
const DECODE_BUFFER = 4 << 20;
/** Decompressed bytes allowed to queue between the decoder and the layer writer. */
const DECODED_BUFFER = 8 << 20;
/**
 * Compressed bytes gathered before one decoder write. A zlib stream runs one thread-pool job per
 * written chunk, one at a time: fed the ~64 KiB network chunks directly, a 95 MB layer costs
 * ~1,400 round trips through the main thread and inflating runs ~60% slower than with 1 MiB
 * inputs.
 */
const DECODE_CHUNK = 1 << 20;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * The decompressor + writer half of the tee. Once it fails, further input is discarded (the
 * compressed side keeps hashing); `finish()` reports the outcome instead of throwing.
 */
class DecodeSide {
  kind: Compression | null = null;
  private head: Buffer[] = [];
  private headLen = 0;
  /** Compressed input not yet handed to the decoder (< DECODE_CHUNK bytes). */
  private gather: Buffer[] = [];
  private gatherLen = 0;
  private stream: NodeJS.ReadWriteStream | null = null;
  private writer: Promise<Settled<ConvertedLayer>> | null = null;
  private settled: Settled<ConvertedLayer> | null = null;
  private failed: unknown = null;
  private warned = false;
  private readonly ac = new AbortController();

  constructor(private readonly o: PipelineOptions) {
    o.signal.addEventListener('abort', () => this.ac.abort(o.signal.reason), { once: true });
  }

  private fail(err: unknown): void {
    if (this.failed === null) this.failed = err ?? new Error('decoder failed');
  }

  /** Starts decoder + writer from the sniffed head. */
  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    let kind: Compression | null;
    try {
      kind = this.o.deps.detectCompression(head);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (kind === null) {
      this.fail(
        new LayerInvalidError(`layer ${this.o.blob.digest} is neither gzip, zstd nor tar`, { diffId: this.o.diffId }),
      );
      return;
    }
    this.kind = kind;
    const announced = compressionOfMediaType(this.o.blob.mediaType);
    if (announced !== null && announced !== kind && !this.warned) {
      this.warned = true;
      const name = (k: Compression) => (k === 'none' ? 'an uncompressed tar' : k);
      this.o.onWarning?.(
        MEDIA_WARN,
        `layer ${this.o.layerIndex + 1} (${this.o.blob.digest}): media type ${this.o.blob.mediaType} announces ${name(announced)}, but the content is ${name(kind)}; decoding it as ${name(kind)}`,
      );
    }
    let s: NodeJS.ReadWriteStream;
    try {
      s = this.o.deps.createDecompressor(kind, { signal: this.ac.signal });
    } catch (err) {
      this.fail(err);
      return;
    }
    this.stream = s;
    s.on('error', (err: unknown) => this.fail(err));
    // The decoder's readable buffer is small: without room to work ahead it would stop while the
    // writer hashes and writes each chunk. DECODED_BUFFER bytes of output may queue (bounded).
    const out = new PassThrough({ highWaterMark: DECODED_BUFFER });
    pipeline(s as unknown as Readable, out, () => {
      /* errors reach the writer through `out` */
    });
    const { layerIndex, diffId, emitter } = this.o;
    this.writer = this.o.deps
      .writeLayer(out, this.o.candidatePath, {
        signal: this.ac.signal,
        diffIdAlgorithm: digestAlgorithm(diffId),
        ...(this.o.limits ? { limits: this.o.limits } : {}),
        onProgress: (p) =>
          emitter.progress({
            type: 'layerMaterializeProgress',
            layerIndex,
            diffId,
            tarBytes: p.tarBytes,
            entries: p.entries,
          }),
        onWarning: (w) => this.o.onWarning?.(w.code, w.message),
      })
      .then(
        (value): Settled<ConvertedLayer> => ({ ok: true, value }),
        (error): Settled<ConvertedLayer> => ({ ok: false, error }),
      );
    void this.writer.then((r) => {
      this.settled = r;
      // A writer that stops early (parse error) must not leave the tee waiting for 'drain'.
      if (!r.ok) {
        this.fail(r.error);
        (this.stream as unknown as Readable).destroy?.();
      }
    });
    this.push(head);
  }

  /** Gathers `buf`; hands DECODE_CHUNK bytes (or, with `flush`, whatever is gathered) to the decoder. */
  private push(buf: Buffer | null, flush = false): Promise<void> | undefined {
    const s = this.stream;
    if (!s || this.failed !== null || this.settled) {
      this.gather = [];
      this.gatherLen = 0;
      return undefined;
    }
    if (buf && buf.length > 0) {
      this.gather.push(buf);
      this.gatherLen += buf.length;
    }
    if (this.gatherLen === 0 || (!flush && this.gatherLen < DECODE_CHUNK)) return undefined;
    buf = this.gather.length === 1 ? this.gather[0]! : Buffer.concat(this.gather, this.gatherLen);
    this.gather = [];
    this.gatherLen = 0;
    let ok: boolean;
    try {
      ok = (s as unknown as Writable).write(buf);
    } catch (err) {
      this.fail(err);
      return undefined;
    }
    // A decoder's writable buffer is small (16 KiB): waiting for 'drain' after every network chunk
    // would run download and decompression in lock-step. Up to DECODE_BUFFER bytes of compressed
    // input may queue (memory stays bounded, and the decoder in the thread pool keeps working).
    if (ok || (s as unknown as Writable).writableLength < DECODE_BUFFER) return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        s.off('drain', done);
        s.off('close', done);
        s.off('error', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
      s.on('error', done);
      void this.writer!.then(done);
    });
  }

  /** Feeds one compressed chunk; resolves when the decoder can take more. Never rejects. */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed !== null) return undefined;
    if (!this.stream) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < DETECT_BYTES) return undefined;
      this.start();
      return undefined;
    }
    return this.push(chunk);
  }

  /** Ends the input and waits for the writer. */
  async finish(): Promise<Settled<ConvertedLayer>> {
    if (!this.stream && this.failed === null) this.start(); // a stream shorter than DETECT_BYTES
    if (this.stream && this.failed === null) {
      this.push(null, true);
      (this.stream as unknown as Writable).end();
    }
    if (this.writer) {
      const r = await this.writer;
      if (!r.ok) return r;
      if (this.failed !== null) return { ok: false, error: this.failed };
      return r;
    }
    return { ok: false, error: this.failed ?? new LayerInvalidError('empty layer stream', { diffId: this.o.diffId }) };
  }

  destroy(err: Error): void {
    this.fail(err);
    this.ac.abort(err);
    (this.stream as unknown as Readable | null)?.destroy?.();
  }

  async settle(): Promise<void> {
    if (this.writer) await this.writer;
  }
}

/**
 * The decoding half of a layer's single pass (docs/pull.md §7): compressed bytes in, a layer EROFS
 * candidate out. The first ≥ DETECT_BYTES decide the decoder (a media type that disagrees is a
 * MEDIA_TYPE_MISMATCH warning), the decoder's output goes to the layer writer (diff_id, tar parse,
 * EROFS). Two implementations of one interface, `LayerConversion`:
 *
 * - `InProcessConversion` (here): decoder and writer on the calling thread, from `ConverterDeps`;
 * - a conversion in a worker thread (worker-pool.ts), which runs an `InProcessConversion` there, so
 *   that decoding, hashing and parsing leave the thread that reads the network.
 *
 * Once a conversion fails, further input is discarded (the caller keeps hashing the compressed
 * side, docs/pull.md §7 error precedence); `finish()` reports the outcome instead of throwing.
 */
import { PassThrough, pipeline, type Readable, type Writable } from 'node:stream';
import { LayerInvalidError, MsbError } from '../errors.js';
import type { Limits } from '../limits.js';
import type { WriteLayerResult } from '../erofs/layer-writer.js';
import { compressionOfMediaType, type Compression } from '../oci/media-types.js';
import { DETECT_BYTES } from '../layer/compression.js';
import { digestAlgorithm, type DigestAlgorithm } from '../util/digest.js';

/** Result of one converted layer (the subset of writeLayer's result the pull uses). */
export interface ConvertedLayer extends Omit<WriteLayerResult, 'root' | 'contentDigest'> {
  /** The layer's in-memory tree, kept for stitching (`buildFsmeta`). */
  root?: unknown;
  /** The file's content digest when the writer computed one (docs/storage.md §10.1). */
  contentDigest?: string | null | undefined;
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
  /**
   * Optional: runs whole conversions elsewhere (the default deps: worker threads). Without it a
   * conversion runs on the calling thread from the functions above.
   */
  pool?: ConversionPool | undefined;
}

/** Where conversions run when not on the calling thread (worker-pool.ts). */
export interface ConversionPool {
  start(o: ConversionOptions): LayerConversion;
  /** Starts up to `n` workers now, so that they boot while the caller does other work. */
  prepare(n: number): void;
  /** Stops the workers once their conversions ended; a later `start` starts new ones. */
  close(): Promise<void>;
}

/** What a conversion needs to know about its layer. */
export interface ConversionOptions {
  layerIndex: number;
  blob: { digest: string; mediaType: string };
  diffId: string;
  candidatePath: string;
  limits?: Partial<Limits> | undefined;
  signal: AbortSignal;
  onProgress(p: { tarBytes: number; entries: number }): void;
  onWarning(code: string, message: string): void;
}

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Compressed bytes in, a candidate out; see the module comment. */
export interface LayerConversion {
  /** The detected compression (null until known, or when the content is none of the three). */
  readonly kind: Compression | null;
  /** Feeds compressed bytes in order; a promise means: wait before the next write. Never rejects. */
  write(chunk: Buffer): Promise<void> | undefined;
  /** Ends the input and waits for the writer. Never rejects; decoder errors are typed by then. */
  finish(): Promise<Settled<ConvertedLayer>>;
  /** Tears the conversion down (abort, or a failure elsewhere); the candidate is removed. */
  destroy(err: Error): void;
  /** Resolves once the conversion stopped (and removed its candidate when it failed). */
  settle(): Promise<void>;
}

/**
 * Starts a conversion. A layer announced as zstd goes to the deps' pool when they have one: zstd
 * decodes on the calling thread (zstd-napi has no asynchronous API), so it would take the thread
 * that reads the network. gzip inflates in libuv's thread pool and stays here: a worker would add
 * an isolate, and with it a second allowance of garbage buffers, for little gain (docs/pull.md §7).
 * The announcement only chooses the place; the content still chooses the decoder.
 */
export function startConversion(deps: ConverterDeps, o: ConversionOptions): LayerConversion {
  if (deps.pool && runsInPool(o.blob.mediaType)) return deps.pool.start(o);
  return new InProcessConversion(deps, o);
}

/** Whether a layer of this media type is converted in the pool (see `startConversion`). */
export function runsInPool(mediaType: string): boolean {
  return compressionOfMediaType(mediaType) === 'zstd';
}

/** Compressed bytes allowed to queue in front of the decoder. */
const DECODE_BUFFER = 4 << 20;
/** Decompressed bytes allowed to queue between the decoder and the layer writer. */
const DECODED_BUFFER = 2 << 20;
/**
 * Compressed bytes gathered before one decoder write. A zlib stream runs one thread-pool job per
 * written chunk, one at a time: fed the ~64 KiB network chunks directly, a 95 MB layer costs
 * ~1,400 round trips through the main thread and inflating runs ~60% slower than with 1 MiB
 * inputs.
 */
export const DECODE_CHUNK = 1 << 20;

const MEDIA_WARN = 'MEDIA_TYPE_MISMATCH';

/** The MEDIA_TYPE_MISMATCH message when the content's compression is not the announced one (docs/pull.md §7). */
export function mediaTypeWarning(
  announced: Compression | null,
  kind: Compression,
  layerIndex: number,
  blob: { digest: string; mediaType: string },
): string | null {
  if (announced === null || announced === kind) return null;
  const name = (k: Compression) => (k === 'none' ? 'an uncompressed tar' : k);
  return `layer ${layerIndex + 1} (${blob.digest}): media type ${blob.mediaType} announces ${name(announced)}, but the content is ${name(kind)}; decoding it as ${name(kind)}`;
}

/** Turns decoder/stream errors into typed ones (LayerInvalidError unless the deps say otherwise). */
export function typeDecodeError(deps: ConverterDeps, kind: Compression | null, err: unknown, diffId: string): unknown {
  if (err instanceof MsbError) return err;
  if (deps.mapDecodeError && kind) return deps.mapDecodeError(kind, err);
  const msg = (err as Error)?.message ?? String(err);
  return new LayerInvalidError(`${kind ?? 'layer'} stream is corrupt: ${msg}`, { diffId, cause: err });
}

/** The conversion on the calling thread (see the module comment). */
export class InProcessConversion implements LayerConversion {
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
  private readonly ac = new AbortController();

  constructor(
    private readonly deps: ConverterDeps,
    private readonly o: ConversionOptions,
  ) {
    o.signal.addEventListener('abort', () => this.ac.abort(o.signal.reason), { once: true });
  }

  private fail(err: unknown): void {
    if (this.failed === null) this.failed = err ?? new Error('decoder failed');
  }

  /** Decides the decoder from the sniffed head (null when the content is none of the three). */
  private detect(head: Buffer): Compression | null {
    let kind: Compression | null;
    try {
      kind = this.deps.detectCompression(head);
    } catch (err) {
      this.fail(err);
      return null;
    }
    const { blob, layerIndex } = this.o;
    if (kind === null) {
      this.fail(new LayerInvalidError(`layer ${blob.digest} is neither gzip, zstd nor tar`, { diffId: this.o.diffId }));
      return null;
    }
    const warning = mediaTypeWarning(compressionOfMediaType(blob.mediaType), kind, layerIndex, blob);
    if (warning) this.o.onWarning(MEDIA_WARN, warning);
    return kind;
  }

  /** Starts decoder + writer from the sniffed head. */
  private start(): void {
    const head = Buffer.concat(this.head);
    this.head = [];
    const kind = this.detect(head);
    if (kind === null) return;
    this.kind = kind;
    let s: NodeJS.ReadWriteStream;
    try {
      s = this.deps.createDecompressor(kind, { signal: this.ac.signal });
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
    this.writer = this.deps
      .writeLayer(out, this.o.candidatePath, {
        signal: this.ac.signal,
        diffIdAlgorithm: digestAlgorithm(this.o.diffId),
        ...(this.o.limits ? { limits: this.o.limits } : {}),
        onProgress: (p) => this.o.onProgress(p),
        onWarning: (w) => this.o.onWarning(w.code, w.message),
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
    // A decoder's writable buffer is small (16 KiB): waiting for 'drain' after every chunk would
    // run the producer and decompression in lock-step. Up to DECODE_BUFFER bytes of compressed
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

  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed !== null) return undefined;
    if (!this.stream) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen >= DETECT_BYTES) this.start();
      return undefined;
    }
    return this.push(chunk);
  }

  async finish(): Promise<Settled<ConvertedLayer>> {
    if (!this.stream && this.failed === null) this.start(); // a stream shorter than DETECT_BYTES
    if (this.stream && this.failed === null) {
      this.push(null, true);
      (this.stream as unknown as Writable).end();
    }
    if (this.writer) {
      const r = await this.writer;
      const err = !r.ok ? r.error : this.failed;
      if (err !== null) return { ok: false, error: typeDecodeError(this.deps, this.kind, err, this.o.diffId) };
      return r;
    }
    const err = this.failed ?? new LayerInvalidError('empty layer stream', { diffId: this.o.diffId });
    return { ok: false, error: typeDecodeError(this.deps, this.kind, err, this.o.diffId) };
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

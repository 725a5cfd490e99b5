/**
 * One layer conversion inside a conversion worker (convert-worker.ts): compressed chunks in (from
 * the pool, transferred), a layer EROFS candidate out — the same steps as `InProcessConversion`
 * (sniff, MEDIA_TYPE_MISMATCH, decoder, `writeLayer`), arranged so that the steady state allocates
 * nothing per chunk: every input chunk goes back to the pool once consumed (its memory is reused
 * for a later chunk), zstd decodes into one reused buffer, and an uncompressed tar is parsed from
 * the input chunks themselves. Only gzip output is allocated per chunk (node:zlib's choice).
 *
 * After a failure, input keeps arriving (the pool hashes the compressed side to its end, docs/pull.md
 * §7) and is handed back at once.
 */
import type { Readable } from 'node:stream';
import { AbortedError, LayerInvalidError } from '../errors.js';
import { writeLayer } from '../erofs/layer-writer.js';
import {
  DETECT_BYTES,
  createDecompressor,
  decodeZstd,
  detectCompression,
  mapDecoderError,
} from '../layer/compression.js';
import type { Limits } from '../limits.js';
import { compressionOfMediaType, type Compression } from '../oci/media-types.js';
import { digestAlgorithm } from '../util/digest.js';
import { mediaTypeWarning, type ConvertedLayer, type Settled } from './conversion.js';

/** Input chunks in arrival order; each one is handed to `release` once consumed. */
export class InputQueue {
  private bufs: Buffer[] = [];
  private ended = false;
  private discard = false;
  private wake: (() => void) | null = null;

  constructor(private readonly release: (b: Buffer) => void) {}

  push(b: Buffer): void {
    if (this.discard) this.release(b);
    else this.bufs.push(b);
    this.signal();
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  /** From now on every chunk is released unread (after a failure). */
  drain(): void {
    this.discard = true;
    for (const b of this.bufs.splice(0)) this.release(b);
    this.signal();
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async waitFor(ok: () => boolean): Promise<void> {
    while (!ok()) await new Promise<void>((r) => (this.wake = r));
  }

  /** The first `n` bytes (fewer when the input is shorter), without consuming them. */
  async peek(n: number): Promise<Buffer> {
    const have = () => this.bufs.reduce((s, b) => s + b.length, 0);
    await this.waitFor(() => this.ended || this.discard || have() >= n);
    return Buffer.concat(this.bufs).subarray(0, n);
  }

  /** The next chunk (the caller releases it), or null at the end. */
  async next(): Promise<Buffer | null> {
    await this.waitFor(() => this.bufs.length > 0 || this.ended || this.discard);
    return this.bufs.shift() ?? null;
  }

  /** The chunks as a stream; each is released when the consumer asks for the next. */
  async *chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const b = await this.next();
      if (!b) return;
      try {
        yield b;
      } finally {
        this.release(b);
      }
    }
  }

  releaseChunk(b: Buffer): void {
    this.release(b);
  }
}

/** gzip through node:zlib; each input chunk is released once zlib has consumed it. */
function gunzip(input: InputQueue, signal: AbortSignal): Readable {
  const gz = createDecompressor('gzip');
  const stopped = () => gz.destroyed || gz.writableEnded;
  void (async () => {
    for (;;) {
      const b = await input.next();
      if (!b) break;
      if (stopped() || signal.aborted) {
        input.releaseChunk(b);
        continue;
      }
      if (gz.write(b, () => input.releaseChunk(b))) continue;
      await new Promise<void>((resolve) => {
        const done = () => {
          gz.off('drain', done).off('close', done).off('error', done);
          resolve();
        };
        gz.on('drain', done).on('close', done).on('error', done);
      });
    }
    if (!stopped()) gz.end();
  })();
  return gz;
}

export interface JobOptions {
  layerIndex: number;
  blob: { digest: string; mediaType: string };
  diffId: string;
  candidatePath: string;
  limits?: Partial<Limits> | undefined;
  onProgress(p: { tarBytes: number; entries: number }): void;
  onWarning(code: string, message: string): void;
}

export class WorkerJob {
  kind: Compression | null = null;
  readonly input: InputQueue;
  readonly result: Promise<Settled<ConvertedLayer>>;
  private readonly ac = new AbortController();

  constructor(
    private readonly o: JobOptions,
    release: (b: Buffer) => void,
  ) {
    this.input = new InputQueue(release);
    this.result = this.run().finally(() => this.input.drain());
  }

  abort(reason: unknown): void {
    this.ac.abort(reason);
    this.input.drain();
  }

  private async run(): Promise<Settled<ConvertedLayer>> {
    const { o } = this;
    const head = await this.input.peek(DETECT_BYTES);
    if (this.ac.signal.aborted) return { ok: false, error: new AbortedError(this.ac.signal.reason) };
    const kind = detectCompression(head);
    if (kind === null) {
      return {
        ok: false,
        error: new LayerInvalidError(`layer ${o.blob.digest} is neither gzip, zstd nor tar`, { diffId: o.diffId }),
      };
    }
    this.kind = kind;
    const warning = mediaTypeWarning(compressionOfMediaType(o.blob.mediaType), kind, o.layerIndex, o.blob);
    if (warning) o.onWarning('MEDIA_TYPE_MISMATCH', warning);
    const signal = this.ac.signal;
    const tar: AsyncIterable<Buffer> | Readable =
      kind === 'gzip'
        ? gunzip(this.input, signal)
        : kind === 'zstd'
          ? decodeZstd(this.input.chunks())
          : this.input.chunks();
    try {
      const value = await writeLayer(tar, o.candidatePath, {
        ...(o.limits ? { limits: o.limits } : {}),
        signal,
        diffIdAlgorithm: digestAlgorithm(o.diffId),
        // Computed while the worker writes the file; travels back with the result (docs/storage.md §10.1).
        contentDigest: true,
        onProgress: o.onProgress,
        onWarning: o.onWarning,
      });
      return { ok: true, value };
    } catch (err) {
      if (signal.aborted) return { ok: false, error: new AbortedError(signal.reason) };
      return { ok: false, error: mapDecoderError(kind, err) };
    } finally {
      (tar as Readable).destroy?.();
    }
  }
}

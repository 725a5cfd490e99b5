/**
 * The tar side of the streaming layer writer (layer-writer.ts): the tar parser, the tree builder
 * and the placement of each regular file's data at the block cursor, plus the read loop that
 * hashes every byte of the decompressed stream (the diff_id) and feeds the parser.
 */
import type { Hash } from 'node:crypto';
import { AbortedError, LimitExceededError, MsbError } from '../errors.js';
import type { Limits } from '../limits.js';
import { TarReader, type BodySink, type TarEntry } from '../tar/reader.js';
import type { BlockDataWriter } from './data-writer.js';
import { BLOCK_SIZE } from './format.js';
import { LayerTreeBuilder } from './ingest.js';
import { PROFILING, phaseAdd, phaseEnd, phaseStart } from '../util/profile.js';

export type Source = NodeJS.ReadableStream | AsyncIterable<Buffer>;

/** A source error (network, decompressor): the caller's to classify, passed through unchanged. */
export class SourceError extends Error {
  constructor(override readonly cause: unknown) {
    super('source error');
  }
}

/** Errors that come from the tar content (not from I/O or the source): the stream can still be hashed. */
function isContentError(e: unknown): boolean {
  return e instanceof MsbError && (e.code === 'LAYER_INVALID' || e.code === 'LIMIT_EXCEEDED');
}

/** Parser + tree + data placement for one layer. A content error is kept, not thrown, until the end. */
export class TarIngest {
  readonly builder: LayerTreeBuilder;
  readonly reader: TarReader;
  /** The next free block: block 0 holds the superblock (docs/erofs.md §2). */
  cursor = 1;
  parseError: unknown = null;
  private fileBase = 0;
  private sinkMs = 0;

  constructor(
    limits: Limits,
    private readonly data: BlockDataWriter,
  ) {
    this.builder = new LayerTreeBuilder(limits);
    const sink: BodySink = PROFILING
      ? { write: (buf, offset) => this.timedWrite(buf, offset) }
      : { write: (buf, offset) => data.write(this.fileBase + offset, buf) };
    this.reader = new TarReader({ limits, onEntry: (e) => this.place(e, sink) });
  }

  private place(e: TarEntry, sink: BodySink): BodySink | null {
    const file = this.builder.add(e);
    if (!file) return null;
    const nblocks = Math.ceil(file.size / BLOCK_SIZE);
    if (this.cursor + nblocks >= 2 ** 32)
      throw new LimitExceededError('diskBlocks', this.cursor + nblocks, 2 ** 32 - 1, 'layer image');
    file.data = { device: 0, startBlock: this.cursor };
    this.fileBase = this.cursor * BLOCK_SIZE;
    this.cursor += nblocks;
    return sink;
  }

  private timedWrite(buf: Buffer, offset: number): void | Promise<void> {
    const t = phaseStart();
    const r = this.data.write(this.fileBase + offset, buf);
    if (!r) {
      this.sinkMs += phaseStart() - t;
      return r;
    }
    return r.then(() => {
      this.sinkMs += phaseStart() - t;
    });
  }

  /** Parses one chunk (nothing after a content error or the end of the archive). */
  async write(chunk: Buffer): Promise<void> {
    if (this.parseError !== null || this.reader.done) return;
    try {
      const tp = phaseStart();
      await this.reader.write(chunk);
      if (PROFILING) {
        phaseAdd('tar-parse', phaseStart() - tp - this.sinkMs);
        phaseAdd('erofs-data-write', this.sinkMs);
        this.sinkMs = 0;
      }
    } catch (err) {
      if (!isContentError(err)) throw err;
      this.parseError = err;
    }
  }

  async end(): Promise<void> {
    if (this.parseError !== null) return;
    try {
      await this.reader.end();
    } catch (err) {
      if (!isContentError(err)) throw err;
      this.parseError = err;
    }
  }
}

/**
 * Reads `tar` to its end: every byte into `hash`, and into the parser until it stops. Bounded by
 * `maxLayerBytes` even after a content error. Returns the number of tar bytes.
 */
export async function readTar(
  tar: Source,
  ingest: TarIngest,
  hash: Hash,
  limits: Limits,
  signal: AbortSignal | undefined,
  onProgress: ((p: { tarBytes: number; entries: number }) => void) | undefined,
): Promise<number> {
  let tarBytes = 0;
  const it = (tar as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Buffer | string>;
      const tw = phaseStart();
      try {
        r = await it.next();
        phaseEnd('decompress-wait', tw);
      } catch (err) {
        throw new SourceError(err);
      }
      if (r.done) break;
      if (signal?.aborted) throw new AbortedError(signal.reason);
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      tarBytes += chunk.length;
      if (tarBytes > limits.maxLayerBytes)
        throw new LimitExceededError('maxLayerBytes', tarBytes, limits.maxLayerBytes, 'uncompressed layer');
      const th = phaseStart();
      hash.update(chunk);
      phaseEnd('diffid-hash', th);
      await ingest.write(chunk);
      onProgress?.({ tarBytes, entries: ingest.reader.entries });
    }
  } catch (err) {
    await it.return?.().catch(() => undefined);
    throw err;
  }
  return tarBytes;
}

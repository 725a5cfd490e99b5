/**
 * `convertLayer` (docs/api.md §5; docs/cli.md §9): one layer tar — plain, gzip or zstd, detected from the
 * magic bytes — to a layer EROFS exactly as the cache builds it (docs/erofs.md §5–§6). It needs no
 * backend. The image is written to `<out>.<rand>.partial` next to the output and renamed into
 * place; any failure leaves no output. With `expectDiffId`, a mismatch rejects with
 * DigestMismatchError and writes nothing; the decoded stream is hashed to its end even after a tar
 * error, so the diff_id check takes precedence (docs/pull.md §7).
 */
import { open, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { AbortedError, InvalidArgumentError, LayerInvalidError, MsbError, toIoError } from '../errors.js';
import type { Limits } from '../limits.js';
import { isDigest } from '../util/digest.js';
import { writeLayer, type WriteLayerResult } from './layer-writer.js';
import { renameDurable } from '../util/fs.js';
import {
  DETECT_BYTES,
  createDecompressor,
  detectCompression,
  mapDecoderError,
  takeHead,
  type Compression,
} from '../layer/compression.js';

export interface ConvertLayerResult extends Omit<WriteLayerResult, 'root' | 'contentDigest'> {
  compression: Compression;
}

export interface ConvertLayerOptions {
  expectDiffId?: string;
  limits?: Partial<Limits>;
  signal?: AbortSignal | undefined;
}

const READ_CHUNK = 1 << 20;

/** A file input: its head from a positional read, and a stream of it from byte 0 straight into the decoder (no re-injection layer on the hot path). */
async function openInputFile(path: string): Promise<{ src: NodeJS.ReadableStream; head: Buffer }> {
  try {
    const fh = await open(path, 'r');
    let head: Buffer;
    try {
      const buf = Buffer.alloc(DETECT_BYTES);
      const { bytesRead } = await fh.read(buf, 0, DETECT_BYTES, 0);
      head = buf.subarray(0, bytesRead);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return { src: fh.createReadStream({ start: 0, highWaterMark: READ_CHUNK, autoClose: true }), head };
  } catch (err) {
    throw toIoError(err, path);
  }
}

/** A stream input: its head taken from the iterator, and a stream that yields the head again, then the rest. */
async function sniffStream(
  it: AsyncIterator<Buffer | string>,
  inputPath: string,
): Promise<{ head: Buffer; raw: NodeJS.ReadableStream }> {
  let head: Buffer;
  let headChunks: Buffer[];
  try {
    ({ head, chunks: headChunks } = await takeHead(it));
  } catch (err) {
    throw mapDecoderError('none', err, inputPath);
  }
  const rest = async function* (): AsyncGenerator<Buffer> {
    for (const c of headChunks) yield c;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    }
  };
  return { head, raw: Readable.from(rest(), { objectMode: false, highWaterMark: READ_CHUNK }) };
}

export async function convertLayer(
  input: string | NodeJS.ReadableStream,
  outputPath: string,
  options: ConvertLayerOptions = {},
): Promise<ConvertLayerResult> {
  const { signal } = options;
  if (options.expectDiffId !== undefined && !isDigest(options.expectDiffId)) {
    const shown = JSON.stringify(options.expectDiffId);
    throw new InvalidArgumentError('expectDiffId', `expectDiffId ${shown} is not a digest`);
  }
  if (signal?.aborted) throw new AbortedError(signal.reason);
  const out = resolve(outputPath);
  const partial = `${out}.${randomBytes(6).toString('hex')}.partial`;
  const inputPath = typeof input === 'string' ? input : '<stdin>';
  let src: NodeJS.ReadableStream;
  let it: AsyncIterator<Buffer | string> | undefined;
  let kind: Compression | null = null;
  let fileHead: Buffer | undefined;
  if (typeof input === 'string') ({ src, head: fileHead } = await openInputFile(input));
  else src = input;
  const destroySrc = () => (src as Readable).destroy?.();
  signal?.addEventListener('abort', destroySrc, { once: true });
  try {
    let head: Buffer;
    let raw: NodeJS.ReadableStream;
    if (fileHead) {
      head = fileHead;
      raw = src;
    } else {
      it = (src as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
      ({ head, raw } = await sniffStream(it, inputPath));
    }
    kind = detectCompression(head);
    // Content that is neither gzip, zstd nor tar: hashed as-is when a diff_id is expected, so a
    // mismatch is still reported as such (the uncompressed rule of docs/pull.md §7).
    if (kind === null && options.expectDiffId === undefined) {
      throw new LayerInvalidError('layer content is neither gzip, zstd nor tar');
    }
    const effective: Compression = kind ?? 'none';
    let tar: AsyncIterable<Buffer>;
    if (effective === 'none') {
      tar = raw as AsyncIterable<Buffer>;
    } else {
      const dec = createDecompressor(effective);
      tar = pipeline(raw as NodeJS.ReadableStream, dec, () => undefined) as unknown as AsyncIterable<Buffer>;
    }
    let res: WriteLayerResult;
    try {
      res = await writeLayer(tar, partial, {
        ...(options.limits ? { limits: options.limits } : {}),
        ...(signal ? { signal } : {}),
        ...(options.expectDiffId !== undefined ? { expectDiffId: options.expectDiffId } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      throw mapDecoderError(effective, err, inputPath);
    }
    if (kind === null) throw new LayerInvalidError('layer content is neither gzip, zstd nor tar');
    await renameDurable(partial, out);
    return {
      diffId: res.diffId,
      sizeBytes: res.sizeBytes,
      inodes: res.inodes,
      blocks: res.blocks,
      entries: res.entries,
      xattrsDropped: res.xattrsDropped,
      compression: kind,
    };
  } catch (err) {
    // writeLayer already removed its candidate; this covers the not-a-tar path above.
    await unlink(partial).catch(() => undefined);
    if (signal?.aborted && !(err instanceof AbortedError)) throw new AbortedError(signal.reason);
    throw err instanceof MsbError ? err : toIoError(err, basename(out));
  } finally {
    signal?.removeEventListener('abort', destroySrc);
    await it?.return?.().catch(() => undefined);
    if (typeof input === 'string') destroySrc();
  }
}

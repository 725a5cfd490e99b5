/**
 * The byte sources of a load archive and the tar passes over them (docs/archives.md §2).
 *
 * Every stream here has its errors handled from the moment it exists: a decompressor is joined to
 * its source by `pipeline` (which listens to both at once) and is consumed by async iteration, so
 * a corrupt gzip or zstd stream rejects the pass instead of emitting an 'error' nobody hears (the
 * crash of a decoder failing while the spool directory was still being created).
 *
 * Bytes after the end-of-archive block are read (a gzip trailer, a record's zero padding) but at
 * most `archiveTrailingBytes` of them, counted in the decoded stream and, for a compressed
 * archive, in the raw one: `msb load < /dev/zero` ends with LIMIT_EXCEEDED.
 */
import { createReadStream } from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import { AbortedError, ArchiveInvalidError, LimitExceededError, MsbError, toIoError } from '../errors.js';
import { createDecompressor, type Compression } from '../layer/compression.js';
import { FIXED_LIMITS } from '../limits.js';
import type { TarReader } from '../tar/reader.js';

export const CHUNK = 1 << 20;
/** The reader is fed at most this much at once (the precision of the trailing-bytes count). */
const SLICE = 64 << 10;

/** Shared by the raw and decoded sides of one pass: set once the tar's end was seen. */
export interface Trailing {
  ended: boolean;
  /** Decoded bytes pushed after the end. */
  decoded: number;
  /** Raw (compressed) bytes read after the end. */
  raw: number;
}

export function newTrailing(): Trailing {
  return { ended: false, decoded: 0, raw: 0 };
}

function overTrailing(n: number): LimitExceededError {
  return new LimitExceededError(
    'archiveTrailingBytes',
    n,
    FIXED_LIMITS.archiveTrailingBytes,
    'bytes after the end of the archive',
  );
}

/** Counts raw bytes after the end of the tar (LIMIT_EXCEEDED `archiveTrailingBytes` beyond the limit). */
export function countRaw(t: Trailing, n: number): void {
  if (!t.ended) return;
  t.raw += n;
  if (t.raw > FIXED_LIMITS.archiveTrailingBytes) throw overTrailing(t.raw);
}

/** The bytes of a file, decoded when `kind` is a compression. Errors surface through iteration. */
export function fileChunks(path: string, kind: Compression, trailing?: Trailing): Readable {
  const raw = createReadStream(path, { highWaterMark: CHUNK });
  if (kind === 'none') return raw;
  return decoded(trailing ? counted(raw, trailing) : raw, kind);
}

/** `src` with its raw bytes after the tar's end counted. */
function counted(src: Readable, t: Trailing): Readable {
  return Readable.from(
    (async function* () {
      for await (const c of src as AsyncIterable<Buffer>) {
        countRaw(t, c.length);
        yield c;
      }
    })(),
    { objectMode: false, highWaterMark: CHUNK },
  );
}

/** `src` through a decompressor; both joined by `pipeline`, so an error of either reaches the reader. */
export function decoded(src: Readable, kind: Compression): Readable {
  const d = createDecompressor(kind);
  pipeline(src, d, () => {
    /* the error (if any) is the iterator's */
  });
  return d;
}

/**
 * A failure of a pass as the archive's error: a decoder or tar error is ARCHIVE_INVALID (the
 * archive, not a layer, is broken), an fs error IO naming `path`, other typed errors pass through.
 */
export function archiveError(err: unknown, kind: Compression, path: string): MsbError {
  const what = kind === 'none' ? 'tar' : `${kind}-compressed tar`;
  if (err instanceof MsbError) {
    if (err.code !== 'LAYER_INVALID') return err;
    const a = new ArchiveInvalidError(`the archive is not a valid ${what}: ${err.message}`);
    (a as { cause?: unknown }).cause = err;
    return a;
  }
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown } | null;
  if (typeof e?.syscall === 'string') return toIoError(err, path);
  const a = new ArchiveInvalidError(
    `the archive is not a valid ${what}: ${typeof e?.message === 'string' ? e.message : String(err)}`,
  );
  (a as { cause?: unknown }).cause = err;
  return a;
}

export interface PassOptions {
  signal?: AbortSignal | undefined;
  trailing: Trailing;
  /** Stop early (the source is dropped) once this returns true (a second pass that has what it needs). */
  done?: () => boolean;
}

/**
 * Feeds `chunks` to `reader` to the end of the input: after the end-of-archive block the bytes are
 * only counted (LIMIT_EXCEEDED beyond `archiveTrailingBytes`). `chunks` is destroyed on any exit.
 */
export async function runPass(chunks: Readable, reader: TarReader, o: PassOptions): Promise<void> {
  try {
    for await (const chunk of chunks as AsyncIterable<Buffer>) {
      if (o.signal?.aborted) throw new AbortedError(o.signal.reason);
      // In slices: a stream's read() may hand over everything buffered at once, the end of the
      // archive and megabytes after it in one chunk; the bytes past the end are counted to a slice.
      for (let off = 0; off < chunk.length; off += SLICE) {
        const piece = chunk.subarray(off, off + SLICE);
        if (o.trailing.ended) {
          o.trailing.decoded += piece.length;
          if (o.trailing.decoded > FIXED_LIMITS.archiveTrailingBytes) throw overTrailing(o.trailing.decoded);
          continue;
        }
        await reader.write(piece);
        if (reader.done) o.trailing.ended = true;
      }
      if (o.done?.()) return;
    }
    await reader.end();
  } finally {
    chunks.destroy();
  }
}

/**
 * The streaming layer writer (docs/erofs.md §5): one pass from a DECOMPRESSED tar stream to a layer
 * EROFS candidate. File data goes to blocks 1…F as it arrives (holes for zero blocks, bounded
 * write queue with backpressure); after the end of the archive and the diff_id check, the
 * directories, symlinks, metadata area and the superblock are written, the file is truncated to
 * B × 4096, fsynced and its length asserted. Any error or abort deletes the candidate.
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { AbortedError, DigestMismatchError, MsbError, toIoError } from '../errors.js';
import { resolveLimits, type Limits } from '../limits.js';
import { digestAlgorithm, digestUuid, isDigest, newHash, type DigestAlgorithm } from '../util/digest.js';
import { ChunkedDigest } from '../util/chunked-digest.js';
import { BlockDataWriter } from './data-writer.js';
import { BLOCK_SIZE } from './format.js';
import { readTar, SourceError, TarIngest, type Source } from './layer-ingest.js';
import { finishImage, layoutImage, writeImageBody } from './image-writer.js';
import type { DirNode } from './tree.js';
import { phaseEnd, phaseStart, timed } from '../util/profile.js';

export interface WriteLayerOptions {
  limits?: Partial<Limits>;
  signal?: AbortSignal | undefined;
  onProgress?: (p: { tarBytes: number; entries: number }) => void;
  onWarning?: (code: string, message: string) => void;
  /**
   * When given, the diff_id is checked before the image is finished: a mismatch rejects with
   * DigestMismatchError {what: 'diffId'}, and it takes precedence over a tar parse error (the
   * stream is hashed to its end either way; docs/pull.md §7).
   */
  expectDiffId?: string;
  /**
   * The diff_id's hash algorithm (docs/pull.md §7: sha256, sha384 or sha512, as the config's diff_id
   * names it). Default: the algorithm of `expectDiffId` when given, else sha256.
   */
  diffIdAlgorithm?: DigestAlgorithm;
  /** Compute the file's content digest while writing it (docs/storage.md §10.1). */
  contentDigest?: boolean | undefined;
}

export interface WriteLayerResult {
  diffId: string;
  sizeBytes: number;
  inodes: number;
  blocks: number;
  entries: number;
  xattrsDropped: number;
  /** The ingested tree with its data map (each regular file's `data.startBlock`), for stitching. */
  root: DirNode;
  /** `msb-chunked-sha256:<hex>` of the file when asked for (`contentDigest`), else null. */
  contentDigest: string | null;
}

/**
 * Converts a decompressed layer tar into a layer EROFS at `candidatePath` (created O_EXCL, mode
 * 0644). diffId = the digest (sha256 unless `diffIdAlgorithm`/`expectDiffId` say otherwise) over
 * every byte of the stream, trailing bytes included. On a tar error
 * the rest of the stream is still read and hashed (so callers can apply the digest precedence of
 * docs/pull.md §7) before the error is thrown; `maxLayerBytes` still bounds that drain.
 */
export async function writeLayer(
  tar: Source,
  candidatePath: string,
  opts: WriteLayerOptions = {},
): Promise<WriteLayerResult> {
  const limits = resolveLimits(opts.limits);
  const signal = opts.signal;
  if (signal?.aborted) throw new AbortedError(signal.reason);
  let fh: FileHandle;
  try {
    fh = await open(candidatePath, 'wx', 0o644);
  } catch (err) {
    throw toIoError(err, candidatePath);
  }
  const onAbort = () => {
    const s = tar as { destroy?: (e?: Error) => void };
    if (typeof s.destroy === 'function') s.destroy(new AbortedError(signal?.reason));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const digest = opts.contentDigest ? new ChunkedDigest() : null;
  const data = new BlockDataWriter(fh, undefined, digest);
  let ok = false;
  try {
    const alg: DigestAlgorithm =
      opts.diffIdAlgorithm ??
      (opts.expectDiffId !== undefined && isDigest(opts.expectDiffId) ? digestAlgorithm(opts.expectDiffId) : 'sha256');
    const hash = newHash(alg);
    const ingest = new TarIngest(limits, data);
    await readTar(tar, ingest, hash, limits, signal, opts.onProgress);
    if (signal?.aborted) throw new AbortedError(signal.reason);
    await ingest.end();
    const { builder, reader, cursor } = ingest;
    const diffId = `${alg}:${hash.digest('hex')}`;
    if (opts.expectDiffId !== undefined && opts.expectDiffId !== diffId) {
      throw new DigestMismatchError('diffId', opts.expectDiffId, diffId);
    }
    if (ingest.parseError !== null) throw ingest.parseError;
    await timed('erofs-data-write', () => data.flush());
    if (builder.xattrsDropped > 0) {
      opts.onWarning?.(
        'XATTR_DROPPED',
        `${builder.xattrsDropped} xattr(s) with unsupported or reserved names were dropped`,
      );
    }
    const tm = phaseStart();
    const layout = layoutImage(builder.root, { firstFreeBlock: cursor });
    await writeImageBody(fh, layout, { uuid: digestUuid(diffId), observer: digest ?? undefined });
    phaseEnd('erofs-metadata', tm);
    await timed('erofs-fsync', () => finishImage(fh, layout));
    const contentDigest = digest ? await digest.finish(layout.totalBlocks * BLOCK_SIZE) : null;
    ok = true;
    return {
      diffId,
      sizeBytes: layout.totalBlocks * BLOCK_SIZE,
      inodes: layout.inodes,
      blocks: layout.totalBlocks,
      entries: reader.entries,
      xattrsDropped: builder.xattrsDropped,
      root: builder.root,
      contentDigest,
    };
  } catch (err) {
    if (signal?.aborted) throw new AbortedError(signal.reason);
    if (err instanceof SourceError) throw err.cause;
    throw err instanceof MsbError ? err : toIoError(err, candidatePath);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!ok) await data.drain();
    await fh.close().catch(() => undefined);
    if (!ok) await unlink(candidatePath).catch(() => undefined);
  }
}

/**
 * The single-pass layer pipeline of docs/pull.md §7 and the Range resume of §4, independent of where
 * the bytes come from (registry blob API) and of the converter (injected), so that its stream
 * plumbing is testable on its own.
 *
 *                 ┌─► tmp/blob-<alg>_<hex>.part   (+ compressed hash, byte count ≤ size+1)
 *   blob body ────┤
 *                 └─► LayerConversion (conversion.ts; by default in a worker thread):
 *                     decompressor (by magic bytes) ─► writeLayer (tar parse, diff_id, EROFS)
 *
 * - Backpressure: every `.part` write is awaited and so is the conversion's `write()` promise, so
 *   memory never grows with the layer size.
 * - Error precedence (§7): a decompressor or tar error never stops the compressed hash; the body
 *   is read (and discarded) up to size+1, the blob digest decides first (`DigestMismatchError
 *   {what:'blob'}`, which the caller retries once from zero), and only then is the decode error
 *   reported (`LayerInvalidError`, not retried), then the diff_id (`{what:'diffId'}`).
 * - Resume (§4): an existing `.part` of n bytes (n ≤ size) is resumed with `Range: bytes=n-`: a
 *   206 appends, a 200 starts over, and the prefix is re-hashed and re-fed through the pipeline
 *   from byte 0. A `.part` of exactly `size` bytes needs no request at all (the §4 "416 with n =
 *   size" case, decided locally); a longer one is discarded.
 * - Abort: the body and the conversion are torn down, AbortedError (cause = reason) is thrown,
 *   and the `.part` is KEPT for a later resume (§11). The caller deletes the candidate.
 */
import { unlink } from 'node:fs/promises';
import { AbortedError, DigestMismatchError, LayerInvalidError } from '../errors.js';
import { BlobPass, RestartFromZero, type PassStart, type PipelineOptions, type PipelineResult } from './blob-pass.js';

export type { ConvertedLayer, ConverterDeps } from './conversion.js';
export type { BlobDescriptor, BlobEvent, BlobSource, PipelineOptions, PipelineResult } from './blob-pass.js';

export async function unlinkQuiet(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch {
    /* absent already */
  }
}

/** The state the retry rules of `downloadAndConvert` keep across passes. */
interface RetryState {
  digestRetried: boolean;
  restarts: number;
  maxRestarts: number;
  attempt: number;
  lastEndpoint: { index: number; isMirror: boolean; source: string };
}

/**
 * Downloads (or resumes) one blob and converts it in the same pass. Retries a blob digest
 * mismatch once from zero (docs/pull.md §4; a mirror that served it is abandoned first, §12), restarts
 * from zero when the source does, and deletes the `.part` on success and on verification
 * failures; keeps it on abort and on transport errors.
 */
export async function downloadAndConvert(o: PipelineOptions): Promise<PipelineResult> {
  const st: RetryState = {
    digestRetried: false,
    restarts: 0,
    maxRestarts: Math.max(1, o.retries ?? 5),
    attempt: 1,
    lastEndpoint: { index: 0, isMirror: false, source: '' },
  };
  let start: PassStart = { fromZero: false, startEndpoint: 0, carried: null };
  for (;;) {
    try {
      const r = await new BlobPass(o, st.lastEndpoint).run(start);
      await unlinkQuiet(o.partPath);
      return r;
    } catch (err) {
      await unlinkQuiet(o.candidatePath);
      if (o.signal.aborted) throw new AbortedError(o.signal.reason);
      const next = retryStart(o, st, err);
      if (!next) throw await giveUp(o, err);
      await unlinkQuiet(o.partPath);
      start = next;
    }
  }
}

/** The start of the next pass after `err`, or null when `err` is final (docs/pull.md §4, §12). */
function retryStart(o: PipelineOptions, st: RetryState, err: unknown): PassStart | null {
  const retry = (reason: string) => {
    st.attempt++;
    o.emitter.emit({ type: 'retry', layerIndex: o.layerIndex, attempt: st.attempt, delayMs: 0, reason });
  };
  if (err instanceof RestartFromZero && st.restarts < st.maxRestarts) {
    st.restarts++;
    retry(err.reason);
    return { fromZero: true, startEndpoint: err.open.endpointIndex, carried: { it: err.it, open: err.open } };
  }
  const badBlob = err instanceof DigestMismatchError && err.what === 'blob';
  if (badBlob && st.lastEndpoint.isMirror) {
    // §12: a mirror that serves a bad blob is abandoned for the next endpoint.
    o.onWarning?.(
      'MIRROR_FALLBACK',
      `blob ${o.blob.digest} from ${st.lastEndpoint.source} failed verification; trying the next endpoint`,
    );
    retry(err.message);
    return { fromZero: true, startEndpoint: st.lastEndpoint.index + 1, carried: null };
  }
  if (badBlob && !st.digestRetried) {
    st.digestRetried = true;
    retry(err.message);
    return { fromZero: true, startEndpoint: st.lastEndpoint.index, carried: null };
  }
  return null;
}

/** Cleans up after a final error and returns what to throw. */
async function giveUp(o: PipelineOptions, err: unknown): Promise<unknown> {
  if (err instanceof RestartFromZero) await err.it.return?.().catch(() => {});
  // Verification failures leave nothing behind (§7); transport errors keep the .part (§4).
  if (err instanceof DigestMismatchError || err instanceof LayerInvalidError || err instanceof RestartFromZero) {
    await unlinkQuiet(o.partPath);
  }
  if (err instanceof RestartFromZero)
    return new LayerInvalidError(`blob ${o.blob.digest}: ${err.reason} (too many restarts)`, { diffId: o.diffId });
  return err;
}

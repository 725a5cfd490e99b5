/**
 * Blobs (docs/pull.md §4, §6, §12): `GET /v2/<repo>/blobs/<digest>`, streamed with backpressure
 * for layers and resumed with `Range` when the body is cut off, so a flaky link costs the lost
 * bytes rather than the whole layer; read whole, under a limit and verified, for the config.
 * Layer verification is the consumer's (src/pull/), which hashes as it writes.
 */
import {
  AbortedError,
  DigestMismatchError,
  LimitExceededError,
  MsbError,
  NetworkError,
  RegistryError,
} from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import type { Descriptor } from '../oci/manifest.js';
import { digestAlgorithm, digestOf, isDigest } from '../util/digest.js';
import { collect, contentLength, discard, header } from './body.js';
import { describeNetworkError, errorCode, isRetryableNetworkError } from './http.js';
import type { Session } from './session.js';
import type { Endpoint, RepoRef } from './types.js';

export interface BlobResponse {
  /** 200 (whole blob), 206 (from `rangeStart`), or 416 (offset at/after the end). */
  status: 200 | 206 | 416;
  /** The body: consume it or destroy it. Empty for 416. */
  stream: AsyncIterable<Buffer> & { destroy(err?: Error): unknown };
  contentLength: number | null;
  /** Offset of the first body byte in the blob: `offset` for 206, 0 for 200. */
  rangeStart: number;
  endpoint: Endpoint;
  endpointIndex: number;
}

export type BlobEvent =
  /** (Re)opened: the consumer must hold exactly `rangeStart` bytes (0 = discard and start over). */
  | { type: 'open'; rangeStart: number; endpoint: Endpoint; endpointIndex: number; contentLength: number | null }
  | { type: 'data'; chunk: Buffer };

export interface ReadBlobOptions {
  /** Bytes the consumer already holds (a `.part` prefix it has re-hashed). */
  offset?: number;
  signal?: AbortSignal | undefined;
  /** For `retry` events. */
  layerIndex?: number | null;
  /** Skip the first N endpoints (after a digest mismatch from one of them, docs/pull.md §12). */
  startEndpoint?: number;
}

export interface OpenBlobOptions {
  offset?: number;
  signal?: AbortSignal | undefined;
  layerIndex?: number | null;
  startEndpoint?: number;
}

/**
 * Whether a `206`'s Content-Range starts at `offset` (pure). Anything else (no header, another
 * start, a malformed value) means the server did not honour our Range.
 */
export function rangeStartsAt(contentRange: string | null, offset: number): boolean {
  const m = contentRange ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange.trim()) : null;
  return offset > 0 && m !== null && Number(m[1]) === offset;
}

function emptyStream(): BlobResponse['stream'] {
  return {
    async *[Symbol.asyncIterator]() {
      /* empty */
    },
    destroy() {
      /* nothing */
    },
  };
}

/**
 * Opens a blob body, with `Range: bytes=<offset>-` when offset > 0, trying endpoints from
 * `startEndpoint` (docs/pull.md §12). The stream is undici's body: it applies backpressure and
 * is cancelled by the signal or by `destroy()`.
 */
export async function openBlob(
  s: Session,
  ref: RepoRef,
  digest: string,
  opts: OpenBlobOptions = {},
): Promise<BlobResponse> {
  if (!isDigest(digest)) throw new RegistryError(ref.domain, 0, `invalid blob digest ${JSON.stringify(digest)}`);
  const signal = s.signalFor(opts.signal);
  const offset = opts.offset ?? 0;
  const what = `blob ${ref.domain}/${ref.repository}@${digest}`;
  return s.fallback(ref.domain, 'pull', what, opts.startEndpoint ?? 0, (ep, index) =>
    openBlobAt(s, ep, index, ref, digest, offset, what, opts.layerIndex ?? null, signal),
  );
}

async function openBlobAt(
  s: Session,
  ep: Endpoint,
  index: number,
  ref: RepoRef,
  digest: string,
  offset: number,
  what: string,
  layerIndex: number | null,
  signal: AbortSignal | undefined,
): Promise<BlobResponse> {
  const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
  const path = `/v2/${ref.repository}/blobs/${digest}`;
  const res = await s.send(ep, ref.repository, 'GET', path, headers, what, layerIndex, signal);
  const at = { endpoint: ep, endpointIndex: index };
  if (res.statusCode === 416) {
    await discard(res);
    return { status: 416, stream: emptyStream(), contentLength: 0, rangeStart: offset, ...at };
  }
  const len = contentLength(res.headers);
  if (res.statusCode === 206) {
    if (rangeStartsAt(header(res.headers, 'content-range'), offset)) {
      return { status: 206, stream: res.body, contentLength: len, rangeStart: offset, ...at };
    }
    // A range we did not ask for: start over without Range.
    res.body.destroy();
    return openBlobAt(s, ep, index, ref, digest, 0, what, layerIndex, signal);
  }
  if (res.statusCode !== 200) {
    await discard(res);
    throw new RegistryError(ep.key, res.statusCode, `${what}: unexpected HTTP ${res.statusCode}`);
  }
  return { status: 200, stream: res.body, contentLength: len, rangeStart: 0, ...at };
}

/**
 * Streams a blob as events, resuming with Range after a body cut off mid-way (docs/pull.md §4):
 * - `open{rangeStart}` first, and again after every resume: the consumer must then hold exactly
 *   `rangeStart` bytes (0 means a restart: discard the `.part` and reset the hashes; the
 *   pipeline emits `retry` + `layerDownloadStarted{resumeFrom: 0}`);
 * - `data{chunk}` in order. At most `desc.size + 1` bytes are yielded in all, so an oversized
 *   blob is detected without reading it to the end; fewer than `desc.size` bytes at the end means
 *   the endpoint kept cutting the body and retries ran out (NetworkError is thrown instead).
 * - A `416` to a Range at exactly `desc.size` ends the stream (the `.part` was complete).
 * Digest verification is the consumer's: on a mismatch it restarts with `offset: 0` (and
 * `startEndpoint: endpointIndex + 1` to abandon a mirror, §12).
 * Breaking out of the loop (or aborting) destroys the HTTP body.
 */
export async function* readBlob(
  s: Session,
  ref: RepoRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: ReadBlobOptions = {},
): AsyncGenerator<BlobEvent, void, void> {
  const signal = s.signalFor(opts.signal);
  const layerIndex = opts.layerIndex ?? null;
  const cap = desc.size + 1;
  let pos = Math.min(opts.offset ?? 0, cap);
  if (pos > desc.size) pos = 0; // a .part longer than the blob is discarded (§4)
  let startEndpoint = opts.startEndpoint ?? 0;
  let resumes = 0;
  const what = `blob ${ref.domain}/${ref.repository}@${desc.digest}`;
  for (;;) {
    const r = await openBlob(s, ref, desc.digest, { offset: pos, signal, layerIndex, startEndpoint });
    startEndpoint = r.endpointIndex;
    const opened = { type: 'open', endpoint: r.endpoint, endpointIndex: r.endpointIndex } as const;
    if (r.status === 416) {
      if (pos === desc.size) {
        yield { ...opened, rangeStart: pos, contentLength: 0 };
        return;
      }
      pos = 0; // our offset is past what the server has: start over from zero
      continue;
    }
    pos = r.rangeStart;
    yield { ...opened, rangeStart: pos, contentLength: r.contentLength };
    const out = yield* pump(r, pos, cap, signal);
    pos = out.pos;
    if (pos >= cap || (out.failure === null && pos >= desc.size)) return;
    // Cut off (error or a clean end short of the size): resume with Range from `pos`.
    const why =
      out.failure === null ? `body ended after ${pos} of ${desc.size} bytes` : describeNetworkError(out.failure);
    if (out.failure !== null && !isRetryableNetworkError(out.failure)) {
      const cause = Object.assign(new Error(s.scrubber.scrub(why)), { code: errorCode(out.failure) });
      throw new NetworkError(r.endpoint.key, `${what}: ${s.scrubber.scrub(why)}`, cause);
    }
    resumes++;
    if (resumes >= s.retrier.attempts) {
      const msg = `${what}: transfer cut off ${resumes} times (last: ${s.scrubber.scrub(why)})`;
      throw new NetworkError(r.endpoint.key, msg);
    }
    await s.retrier.backoff(resumes, null, `${what}: ${why}; resuming at byte ${pos}`, layerIndex, signal);
  }
}

/**
 * Yields one opened body's chunks, at most up to `cap` bytes in the blob (the body is then
 * destroyed). Returns where it stopped and the network error that stopped it, if any; an abort or
 * an MsbError is thrown. The body is destroyed whenever this ends short of `cap`, including when
 * the consumer stops early.
 */
async function* pump(
  r: BlobResponse,
  start: number,
  cap: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<BlobEvent, { pos: number; failure: unknown }, void> {
  let pos = start;
  try {
    for await (const chunk of r.stream as AsyncIterable<Buffer>) {
      const room = cap - pos;
      if (chunk.length >= room) {
        if (room > 0) yield { type: 'data', chunk: chunk.subarray(0, room) };
        pos = cap;
        r.stream.destroy();
        return { pos, failure: null };
      }
      pos += chunk.length;
      yield { type: 'data', chunk };
    }
    return { pos, failure: null };
  } catch (e) {
    if (signal?.aborted) throw new AbortedError(signal.reason);
    if (e instanceof MsbError) throw e;
    return { pos, failure: e };
  } finally {
    // Early exit by the consumer (break/return/throw): cancel the transfer.
    if (pos < cap) r.stream.destroy();
  }
}

/**
 * Reads a whole small blob (the config, docs/pull.md §6): size ≤ `maxBytes` (LimitExceededError
 * maxManifestBytes, refused unread when the descriptor or Content-Length says so), exact size,
 * digest verified (DigestMismatchError {what}). A mismatch from a mirror falls back (§12).
 * `localBlob` (a copy already held) is tried first and used only if it verifies.
 */
export async function fetchBlobBytes(
  s: Session,
  ref: RepoRef,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  maxBytes: number = DEFAULT_LIMITS.maxManifestBytes,
  opts: { signal?: AbortSignal | undefined; what?: string } = {},
): Promise<Buffer> {
  const what = opts.what ?? 'config';
  if (desc.size > maxBytes)
    throw new LimitExceededError('maxManifestBytes', desc.size, maxBytes, `${what} ${desc.digest}`);
  const alg = digestAlgorithm(desc.digest);
  const local = await s.opts.localBlob?.(desc.digest);
  if (local && local.length === desc.size && digestOf(local, alg) === desc.digest) return local;
  const signal = s.signalFor(opts.signal);
  const label = `${what} ${ref.domain}/${ref.repository}@${desc.digest}`;
  const scrub = (m: string) => s.scrubber.scrub(m);
  return s.fallback(ref.domain, 'pull', label, 0, async (ep, index) => {
    const r = await openBlobAt(s, ep, index, ref, desc.digest, 0, label, null, signal);
    if (r.contentLength !== null && r.contentLength > maxBytes) {
      r.stream.destroy();
      throw new LimitExceededError('maxManifestBytes', r.contentLength, maxBytes, label);
    }
    const bytes = await collect(r.stream, maxBytes, 'maxManifestBytes', label, ep.key, signal, scrub);
    const actual = digestOf(bytes, alg);
    if (actual !== desc.digest)
      throw new DigestMismatchError(what, desc.digest, actual, `${label}: digest mismatch (got ${actual})`);
    if (bytes.length !== desc.size) {
      const msg = `${label}: size ${bytes.length} differs from the descriptor's ${desc.size}`;
      throw new DigestMismatchError(what, desc.digest, actual, msg);
    }
    return bytes;
  });
}

/**
 * Manifests (docs/pull.md §5.1): GET and HEAD of `/v2/<repo>/manifests/<tag|digest>`, and other
 * small JSON resources of a repository (`tags/list`). A manifest is read whole under a size
 * limit and its digest is computed over the exact bytes served, then checked against the digest
 * asked for and against `Docker-Content-Digest` — a registry or mirror that serves other bytes
 * is caught here, before anything is parsed. Parsing is src/oci/manifest.ts's.
 */
import { DigestMismatchError, RegistryError } from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { MANIFEST_ACCEPT } from '../oci/media-types.js';
import { digestAlgorithm, digestOf, isDigest, type DigestAlgorithm } from '../util/digest.js';
import { contentLength, discard, header, readLimited, type Resp } from './body.js';
import type { Session } from './session.js';
import type { Endpoint, RepoRef } from './types.js';

export interface ManifestResponse {
  bytes: Buffer;
  /** Digest of the exact bytes (algorithm of the requested digest, else sha256). */
  digest: string;
  contentType: string | null;
  /** `Docker-Content-Digest` when present and valid. */
  dockerContentDigest: string | null;
  source: string;
  endpoint: Endpoint;
}

export interface ManifestHead {
  digest: string | null;
  contentType: string | null;
  size: number | null;
  source: string;
  endpoint: Endpoint;
}

const ACCEPT = MANIFEST_ACCEPT.join(', ');

/** A valid `Docker-Content-Digest` value, or null. */
function dockerContentDigest(h: Resp['headers']): string | null {
  const v = header(h, 'docker-content-digest')?.trim() ?? null;
  return v && isDigest(v) ? v : null;
}

/**
 * The digest of manifest bytes (pure): in the algorithm of `expected` (else sha256), equal to
 * `expected` when one was asked for, and matching `dcd` (in its own algorithm) when the server
 * sent one. DigestMismatchError otherwise.
 */
export function verifyManifestBytes(bytes: Buffer, expected: string | null, dcd: string | null, what: string): string {
  const alg: DigestAlgorithm = expected ? digestAlgorithm(expected) : 'sha256';
  const digest = digestOf(bytes, alg);
  if (expected && digest !== expected) {
    const msg = `${what}: digest mismatch: expected ${expected}, got ${digest}`;
    throw new DigestMismatchError('manifest', expected, digest, msg);
  }
  if (dcd) {
    const dAlg = digestAlgorithm(dcd);
    const actual = dAlg === alg ? digest : digestOf(bytes, dAlg);
    if (actual !== dcd) {
      const msg = `${what}: Docker-Content-Digest ${dcd} does not match the bytes (${actual})`;
      throw new DigestMismatchError('manifest', dcd, actual, msg);
    }
  }
  return digest;
}

/** GET of a small repository resource whose body is read whole (a 416 is unexpected). */
async function getSmall(
  s: Session,
  ep: Endpoint,
  ref: RepoRef,
  resource: string,
  accept: string,
  what: string,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<{ res: Resp; bytes: Buffer }> {
  const path = `/v2/${ref.repository}/${resource}`;
  const res = await s.send(ep, ref.repository, 'GET', path, { accept }, what, null, signal);
  if (res.statusCode === 416) {
    await discard(res);
    throw new RegistryError(ep.key, 416, `${what}: unexpected HTTP 416`);
  }
  const at = { registry: ep.key, signal, scrub: (m: string) => s.scrubber.scrub(m) };
  return { res, bytes: await readLimited(res, maxBytes, 'maxManifestBytes', what, at) };
}

/**
 * GET a manifest or index by tag or digest: all four types in Accept, size limit with early
 * abort, digests verified (`verifyManifestBytes`). Tags go to resolve-capable endpoints.
 */
export async function fetchManifest(
  s: Session,
  ref: RepoRef,
  tagOrDigest: string,
  opts: { signal?: AbortSignal | undefined; maxBytes?: number; startEndpoint?: number } = {},
): Promise<ManifestResponse> {
  const maxBytes = opts.maxBytes ?? DEFAULT_LIMITS.maxManifestBytes;
  const signal = s.signalFor(opts.signal);
  const expected = isDigest(tagOrDigest) ? tagOrDigest : null;
  const what = `manifest ${ref.domain}/${ref.repository}${expected ? '@' : ':'}${tagOrDigest}`;
  const need = expected ? 'pull' : 'resolve';
  return s.fallback(ref.domain, need, what, opts.startEndpoint ?? 0, async (ep) => {
    const resource = `manifests/${tagOrDigest}`;
    const { res, bytes } = await getSmall(s, ep, ref, resource, ACCEPT, what, maxBytes, signal);
    const dcd = dockerContentDigest(res.headers);
    return {
      bytes,
      digest: verifyManifestBytes(bytes, expected, dcd, what),
      contentType: header(res.headers, 'content-type'),
      dockerContentDigest: dcd,
      source: ep.source,
      endpoint: ep,
    };
  });
}

/**
 * GET a small resource of a repository (`tags/list[?query]`) through the tag-resolving endpoints
 * from endpoint `start` on (the next pages of a list are asked of the endpoint that served the
 * first). Returns the body and the `Link` header.
 */
export async function getRepoResource(
  s: Session,
  ref: RepoRef,
  resource: string,
  opts: { signal?: AbortSignal | undefined; maxBytes?: number; start?: number } = {},
): Promise<{ bytes: Buffer; link: string | null; source: string; endpointIndex: number }> {
  const maxBytes = opts.maxBytes ?? DEFAULT_LIMITS.maxManifestBytes;
  const signal = s.signalFor(opts.signal);
  const what = `${resource.replace(/\?.*$/, '')} of ${ref.domain}/${ref.repository}`;
  return s.fallback(ref.domain, 'resolve', what, opts.start ?? 0, async (ep, index) => {
    const { res, bytes } = await getSmall(s, ep, ref, resource, 'application/json', what, maxBytes, signal);
    return { bytes, link: header(res.headers, 'link'), source: ep.source, endpointIndex: index };
  });
}

/** HEAD a manifest (policy `always`): its Docker-Content-Digest, type and size. */
export async function headManifest(
  s: Session,
  ref: RepoRef,
  tagOrDigest: string,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<ManifestHead> {
  const signal = s.signalFor(opts.signal);
  const what = `manifest ${ref.domain}/${ref.repository}:${tagOrDigest} (HEAD)`;
  const need = isDigest(tagOrDigest) ? 'pull' : 'resolve';
  return s.fallback(ref.domain, need, what, 0, async (ep) => {
    const path = `/v2/${ref.repository}/manifests/${tagOrDigest}`;
    const res = await s.send(ep, ref.repository, 'HEAD', path, { accept: ACCEPT }, what, null, signal);
    await discard(res);
    return {
      digest: dockerContentDigest(res.headers),
      contentType: header(res.headers, 'content-type'),
      size: contentLength(res.headers),
      source: ep.source,
      endpoint: ep,
    };
  });
}

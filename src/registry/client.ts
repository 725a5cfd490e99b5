/**
 * The registry client (docs/pull.md §1.3–§5.1, §12): one object for callers, composed of small
 * parts that each do one job —
 *
 * - session.ts: the wiring, and the authenticated request (ping → Authorization → request → re-auth);
 * - transport.ts: one request with a headers deadline and redirects followed by hand;
 * - retry.ts: retry decisions and full-jitter backoff; ping.ts: `GET /v2/` and the scheme;
 * - auth.ts, token.ts: credentials per endpoint, Basic/Bearer, the token fetch and cache;
 * - mirrors.ts, fallback.ts: the endpoints (mirrors, then the origin) and when to move on;
 * - manifests.ts, blobs.ts: the operations; body.ts: bounded bodies; scrub.ts: no secret in a message.
 *
 * How the pull pipeline drives it (see also src/registry/resolve.ts for the whole §8 step 4):
 *
 * ```ts
 * const client = new RegistryClient({ home, settings, auth, insecure, caCerts, signal,
 *   onRetry: (r) => emit({ type: 'retry', ...r }), onWarning: (w) => emit({ type: 'warning', ...w }),
 *   cache: backend.registryCache });             // ping/token cache shared per backend
 * const ref = parseReference('127.0.0.1:5000/peers/busybox');
 * const m = await client.fetchManifest(ref, ref.digest ?? ref.tag!);   // bytes, digest, source …
 * // blobs: an async iterator with backpressure; abort through `signal`
 * for await (const ev of client.readBlob(ref, layerDescriptor, { offset: partBytes, layerIndex: i })) {
 *   if (ev.type === 'open') { truncate .part + hashes to ev.rangeStart; }   // 0 = start over
 *   else { write ev.chunk to .part, hash it, feed the decompressor }
 * }
 * ```
 *
 * Everything thrown is an MsbError: RegistryError, RegistryAuthError, NetworkError,
 * DigestMismatchError, LimitExceededError, AbortedError, SettingsError. Messages carry redacted
 * URLs and never a credential or token: each secret this client learns is registered and scrubbed
 * from every message it builds, and causes are fresh secret-free errors.
 *
 * Choices where docs/pull.md is silent:
 * - `source` (PullResult) is the origin's domain (`docker.io`, `127.0.0.1:5000`) or the mirror
 *   URL as configured without its userinfo (`http://127.0.0.1:5000`).
 * - With Basic auth a 401 is retried once like a Bearer 401 (the challenge may have changed),
 *   then RegistryAuthError.
 * - A `206` whose Content-Range does not start at the requested offset is dropped and the blob is
 *   requested again without Range (the consumer sees `open{rangeStart: 0}`).
 * - Token responses, error bodies and /v2/ bodies are read up to 1 MiB / 64 KiB.
 * - The ping (and its http fallback) is not subject to mirror fallback reasons other than those
 *   of §12: an endpoint whose ping fails is abandoned for the next one.
 */
import { DEFAULT_LIMITS } from '../limits.js';
import type { Descriptor } from '../oci/manifest.js';
import * as blobs from './blobs.js';
import { checkLogin } from './login.js';
import * as manifests from './manifests.js';
import type { PingResult } from './ping.js';
import { type RegistryCache, type RegistryClientOptions, Session } from './session.js';
import type { Capability, Endpoint, RepoRef } from './types.js';

export type { BlobEvent, BlobResponse, OpenBlobOptions, ReadBlobOptions } from './blobs.js';
export type { ManifestHead, ManifestResponse } from './manifests.js';
export type { PingResult } from './ping.js';
export { fullJitterBackoff, parseRetryAfter } from './retry.js';
export { RegistryCache, type RegistryClientOptions } from './session.js';
export type { Endpoint, RepoRef } from './types.js';

export class RegistryClient {
  private readonly s: Session;

  constructor(opts: RegistryClientOptions) {
    this.s = new Session(opts);
  }

  /** The ping/token/challenge cache (the one given in the options, else this client's own). */
  get cache(): RegistryCache {
    return this.s.cache;
  }

  /** Closes the dispatchers this client owns. */
  close(): Promise<void> {
    return this.s.close();
  }

  /**
   * The mirrors able to do `need`, in configured order, then the origin (src/registry/mirrors.ts):
   * `resolve` for tags, `pull` for digests and blobs.
   */
  endpoints(domain: string, need: Capability = 'pull'): Endpoint[] {
    return this.s.endpoints(domain, need);
  }

  /** GET /v2/ once per endpoint per cache (docs/pull.md §2.2), choosing the scheme (§1.3). */
  ping(ep: Endpoint, signal?: AbortSignal): Promise<PingResult> {
    return this.s.pinger.ping(ep, this.s.signalFor(signal));
  }

  /** A manifest or index by tag or digest, verified (src/registry/manifests.ts). */
  fetchManifest(
    ref: RepoRef,
    tagOrDigest: string,
    opts: { signal?: AbortSignal | undefined; maxBytes?: number; startEndpoint?: number } = {},
  ): Promise<manifests.ManifestResponse> {
    return manifests.fetchManifest(this.s, ref, tagOrDigest, opts);
  }

  /** A small resource of a repository (`tags/list[?query]`) with its `Link` header. */
  getRepoResource(
    ref: RepoRef,
    resource: string,
    opts: { signal?: AbortSignal | undefined; maxBytes?: number; start?: number } = {},
  ): Promise<{ bytes: Buffer; link: string | null; source: string; endpointIndex: number }> {
    return manifests.getRepoResource(this.s, ref, resource, opts);
  }

  /** HEAD a manifest (policy `always`, docs/pull.md §5.1): its Docker-Content-Digest, type and size. */
  headManifest(
    ref: RepoRef,
    tagOrDigest: string,
    opts: { signal?: AbortSignal | undefined } = {},
  ): Promise<manifests.ManifestHead> {
    return manifests.headManifest(this.s, ref, tagOrDigest, opts);
  }

  /** Opens a blob body, with Range from `offset` (src/registry/blobs.ts). */
  openBlob(ref: RepoRef, digest: string, opts: blobs.OpenBlobOptions = {}): Promise<blobs.BlobResponse> {
    return blobs.openBlob(this.s, ref, digest, opts);
  }

  /** Streams a blob as `open`/`data` events, resuming with Range (src/registry/blobs.ts). */
  readBlob(
    ref: RepoRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: blobs.ReadBlobOptions = {},
  ): AsyncGenerator<blobs.BlobEvent, void, void> {
    return blobs.readBlob(this.s, ref, desc, opts);
  }

  /** A whole small blob (the config), verified; `localBlob` is consulted first (src/registry/blobs.ts). */
  fetchBlobBytes(
    ref: RepoRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    maxBytes: number = DEFAULT_LIMITS.maxManifestBytes,
    opts: { signal?: AbortSignal | undefined; what?: string } = {},
  ): Promise<Buffer> {
    return blobs.fetchBlobBytes(this.s, ref, desc, maxBytes, opts);
  }

  /** Checks that credentials work against a registry (msb registry login, src/registry/login.ts). */
  checkLogin(domain: string, signal?: AbortSignal): Promise<void> {
    return checkLogin(this.s, domain, signal);
  }

  /** Messages built by callers (e.g. the pipeline) can be scrubbed with the secrets this client knows. */
  redact(message: string): string {
    return this.s.scrubber.scrub(message);
  }
}

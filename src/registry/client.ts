/**
 * The registry client (docs/pull.md §1.3–§5.1, §12): ping, authentication, manual redirects, retries,
 * manifests, and streaming blobs with Range resume, across mirrors and the origin.
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
 * - Which mirrors exist, what each may be asked for (tags or digests) and with which TLS settings
 *   and credentials is src/registry/mirrors.ts's business.
 * - With Basic auth a 401 is retried once like a Bearer 401 (the challenge may have changed),
 *   then RegistryAuthError.
 * - A `206` whose Content-Range does not start at the requested offset is dropped and the blob is
 *   requested again without Range (the consumer sees `open{rangeStart: 0}`).
 * - Token responses, error bodies and /v2/ bodies are read up to 1 MiB / 64 KiB.
 * - The ping (and its http fallback) is not subject to mirror fallback reasons other than those
 *   of §12: an endpoint whose ping fails is abandoned for the next one.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { request } from './undici.js';
import {
  AbortedError,
  DigestMismatchError,
  LimitExceededError,
  MsbError,
  NetworkError,
  RegistryAuthError,
  RegistryError,
  redactUrl,
} from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import type { Descriptor } from '../oci/manifest.js';
import { MANIFEST_ACCEPT } from '../oci/media-types.js';
import { DOCKER_HUB_DOMAIN } from '../reference/reference.js';
import { digestAlgorithm, digestOf, isDigest, newHash, type DigestAlgorithm } from '../util/digest.js';
import { parseWwwAuthenticate, pickChallenge, type Challenge } from './challenge.js';
import type { CredentialContext } from './credentials.js';
import {
  DEFAULT_TIMEOUTS,
  DispatcherPool,
  describeNetworkError,
  errorCode,
  isRetryableNetworkError,
  isTlsError,
} from './http.js';
import { validateRealm, type Resolver } from './realm.js';
import { credentialKey, endpointCredential, mirrorUrlSecrets, registryEndpoints } from './mirrors.js';
import type {
  Capability,
  Credential,
  Endpoint,
  RegistryAuth,
  RegistrySettings,
  RetryInfo,
  WarningInfo,
} from './types.js';

export type { Endpoint };

/** Anything with a registry domain and a repository (a ParsedReference fits). */
export interface RepoRef {
  domain: string;
  repository: string;
}

/** In-memory state shared by every client of one backend (docs/pull.md §2.2 "once per host per backend", §2.3). */
export class RegistryCache {
  readonly pings = new Map<string, Promise<PingResult>>();
  readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  /** Challenges learnt from 401s after the ping (e.g. a registry whose /v2/ is open). */
  readonly challenges = new Map<string, Challenge>();
  clear(): void {
    this.pings.clear();
    this.tokens.clear();
    this.challenges.clear();
  }
}

export interface PingResult {
  /** `scheme://host[:port]` actually spoken to. */
  base: string;
  scheme: 'http' | 'https';
  challenges: Challenge[];
}

export interface RegistryClientOptions {
  /** MSB home: `<home>/secrets/` holds the secrets named by config.json. */
  home: string;
  settings: RegistrySettings;
  /** Explicit credentials for the reference's origin (never sent to mirrors). */
  auth?: RegistryAuth;
  /** Plain HTTP / unverified TLS allowed for the reference's origin (per-call `insecure`). */
  insecure?: boolean;
  /** Extra PEM files trusted for this call. */
  caCerts?: string[];
  onRetry?: (r: RetryInfo) => void;
  onWarning?: (w: WarningInfo) => void;
  signal?: AbortSignal | undefined;
  cache?: RegistryCache;
  env?: NodeJS.ProcessEnv;
  /** Overrides the backoff delay (tests); default full jitter over min(10 s, 200 ms × 2^attempt). */
  backoffMs?: (attempt: number) => number;
  /** DNS resolver for realm checks (tests). */
  resolve?: Resolver;
  /** Dispatchers, shared per backend if given; otherwise owned (and closed) by this client. */
  dispatchers?: DispatcherPool;
  /**
   * Small blobs already held locally (a config in the index), consulted by `fetchBlobBytes` before
   * the network. Whatever it returns is re-verified against the descriptor's size and digest.
   */
  localBlob?: (digest: string) => Promise<Buffer | undefined>;
}

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

const MAX_REDIRECTS = 5;
const ERROR_BODY_MAX = 64 * 1024;
const TOKEN_BODY_MAX = 1024 * 1024;
const RETRY_AFTER_MAX_MS = 60_000;
const TOKEN_EARLY_MS = 10_000;

function header(h: Record<string, string | string[] | undefined>, name: string): string | null {
  const v = h[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

/** Retry-After in ms (delta-seconds or HTTP-date), or null. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | null {
  if (v === null) return null;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const d = Date.parse(t);
  if (Number.isNaN(d)) return null;
  return Math.max(0, d - now);
}

/** Full jitter over min(10 s, 200 ms × 2^attempt) (docs/pull.md §4). */
export function fullJitterBackoff(attempt: number): number {
  return Math.floor(Math.random() * Math.min(10_000, 200 * 2 ** attempt));
}

type Resp = Dispatcher.ResponseData;

export class RegistryClient {
  readonly cache: RegistryCache;
  private readonly opts: RegistryClientOptions;
  private readonly env: NodeJS.ProcessEnv;
  private readonly pool: DispatcherPool;
  private readonly ownsPool: boolean;
  private readonly retries: number;
  private readonly creds = new Map<string, Promise<Credential>>();
  /** Every secret learnt (passwords, tokens, base64 forms): scrubbed from messages. */
  private readonly secrets = new Set<string>();

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.env = opts.env ?? process.env;
    this.cache = opts.cache ?? new RegistryCache();
    const t = opts.settings.pull?.timeouts ?? {};
    this.pool =
      opts.dispatchers ??
      new DispatcherPool(
        {
          connectMs: t.connectMs ?? DEFAULT_TIMEOUTS.connectMs,
          headersMs: t.headersMs ?? DEFAULT_TIMEOUTS.headersMs,
          idleMs: t.idleMs ?? DEFAULT_TIMEOUTS.idleMs,
        },
        this.env,
      );
    this.ownsPool = !opts.dispatchers;
    this.retries = Math.max(1, opts.settings.pull?.retries ?? 5);
    if (opts.auth && 'password' in opts.auth) this.addSecret(opts.auth.password, opts.auth.username);
    if (opts.auth && 'registryToken' in opts.auth) this.addSecret(opts.auth.registryToken);
  }

  /** Closes the dispatchers this client owns. */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.close();
  }

  // ───────────────────────────── endpoints ─────────────────────────────

  /**
   * The mirrors able to do `need`, in configured order, then the origin (src/registry/mirrors.ts):
   * `resolve` for tags, `pull` for digests and blobs.
   */
  endpoints(domain: string, need: Capability = 'pull'): Endpoint[] {
    const eps = registryEndpoints(domain, this.opts.settings, need, {
      env: this.env,
      ...(this.opts.insecure !== undefined ? { insecure: this.opts.insecure } : {}),
      ...(this.opts.caCerts ? { caCerts: this.opts.caCerts } : {}),
    });
    for (const ep of eps) this.addSecret(...mirrorUrlSecrets(ep));
    return eps;
  }

  // ───────────────────────────── secrets ─────────────────────────────

  private addSecret(...values: (string | undefined)[]): void {
    for (const v of values) {
      if (!v || v.length < 4) continue;
      this.secrets.add(v);
      this.secrets.add(Buffer.from(v).toString('base64'));
    }
  }

  private scrub(s: string): string {
    let out = s;
    for (const v of this.secrets) if (out.includes(v)) out = out.split(v).join('***');
    return out.replace(/(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 ***');
  }

  // ───────────────────────────── signals and events ─────────────────────────────

  private signalFor(extra?: AbortSignal): AbortSignal | undefined {
    const list = [this.opts.signal, extra].filter((s): s is AbortSignal => !!s);
    if (list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    return AbortSignal.any(list);
  }

  private checkAbort(signal?: AbortSignal): void {
    if (signal?.aborted) throw new AbortedError(signal.reason);
  }

  private warn(code: string, message: string): void {
    this.opts.onWarning?.({ code, message: this.scrub(message) });
  }

  private async backoff(
    attempt: number,
    delayMs: number | null,
    reason: string,
    layerIndex: number | null,
    signal?: AbortSignal,
  ): Promise<void> {
    const d = delayMs ?? (this.opts.backoffMs ?? fullJitterBackoff)(attempt);
    this.opts.onRetry?.({ layerIndex, attempt, delayMs: d, reason: this.scrub(reason) });
    try {
      await sleep(d, undefined, signal ? { signal } : undefined);
    } catch {
      throw new AbortedError(signal?.reason);
    }
  }

  // ───────────────────────────── raw HTTP with manual redirects ─────────────────────────────

  /**
   * One request, following redirects by hand (docs/pull.md §3): ≤ 5 hops, Authorization only to the
   * endpoint's origin, https→http refused unless insecure, Range/Accept carried.
   */
  private async rawRequest(
    ep: Endpoint,
    base: string,
    method: 'GET' | 'HEAD',
    url: string,
    headers: Record<string, string>,
    authorization: string | null,
    signal: AbortSignal | undefined,
  ): Promise<{ res: Resp; url: string }> {
    const origin = new URL(base).origin;
    let cur = new URL(url);
    for (let hop = 0; ; hop++) {
      const h: Record<string, string> = { ...headers, 'user-agent': 'msb-image' };
      if (authorization && cur.origin === origin) h.authorization = authorization;
      const verify = !(ep.insecure && cur.origin === origin);
      const res = await this.requestWithDeadline(
        cur,
        { method, headers: h, dispatcher: this.pool.get(ep.caFiles, verify) },
        signal,
      );
      if ([301, 302, 303, 307, 308].includes(res.statusCode) && header(res.headers, 'location')) {
        await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
        if (hop + 1 > MAX_REDIRECTS) {
          throw new RegistryError(
            ep.key,
            res.statusCode,
            `too many redirects (more than ${MAX_REDIRECTS}) for ${method} ${redactUrl(url)}`,
          );
        }
        let next: URL;
        try {
          next = new URL(header(res.headers, 'location')!, cur);
        } catch {
          throw new RegistryError(
            ep.key,
            res.statusCode,
            `invalid redirect location from ${redactUrl(cur.toString())}`,
          );
        }
        if (next.protocol !== 'https:' && next.protocol !== 'http:') {
          throw new RegistryError(ep.key, res.statusCode, `redirect to unsupported scheme ${next.protocol} refused`);
        }
        if (cur.protocol === 'https:' && next.protocol === 'http:' && !ep.insecure) {
          throw new RegistryError(
            ep.key,
            res.statusCode,
            `redirect from https to http refused: ${redactUrl(cur.toString())} → ${redactUrl(next.toString())}`,
          );
        }
        cur = next;
        continue;
      }
      return { res, url: cur.toString() };
    }
  }

  /**
   * undici `request` with a deadline on getting the response headers (connect + headers
   * timeouts). undici's own timeouts start once a socket is assigned; this one also covers a
   * dispatcher that never gets there (e.g. a proxy that keeps closing CONNECT tunnels, which
   * undici@7 retries without end). The deadline is cleared once headers arrive, so the body is
   * governed by the idle timeout only. A deadline hit is a retryable ETIMEDOUT network error.
   */
  private async requestWithDeadline(
    url: URL,
    o: { method: 'GET' | 'HEAD' | 'POST'; headers: Record<string, string>; dispatcher: Dispatcher; body?: string },
    signal: AbortSignal | undefined,
  ): Promise<Resp> {
    const t = this.opts.settings.pull?.timeouts ?? {};
    const ms = (t.connectMs ?? DEFAULT_TIMEOUTS.connectMs) + (t.headersMs ?? DEFAULT_TIMEOUTS.headersMs);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, fail) => {
      timer = setTimeout(() => {
        // undici may not end such a request even when aborted: drop its dispatcher altogether.
        this.pool.evict(o.dispatcher);
        fail(Object.assign(new Error(`no response headers within ${ms} ms`), { code: 'ETIMEDOUT' }));
      }, ms);
    });
    deadline.catch(() => undefined);
    try {
      return await Promise.race([request(url, { ...o, ...(signal ? { signal } : {}) }), deadline]);
    } catch (e) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  // ───────────────────────────── ping ─────────────────────────────

  /** GET /v2/ once per endpoint per cache (docs/pull.md §2.2), choosing the scheme (§1.3). */
  async ping(ep: Endpoint, signal?: AbortSignal): Promise<PingResult> {
    const key = `${ep.key}|${ep.host}|${ep.schemes.join(',')}|${ep.insecure}`;
    let p = this.cache.pings.get(key);
    if (!p) {
      p = this.doPing(ep, this.signalFor(signal));
      this.cache.pings.set(key, p);
      p.catch(() => this.cache.pings.delete(key));
    }
    return p;
  }

  private async doPing(ep: Endpoint, signal?: AbortSignal): Promise<PingResult> {
    let lastErr: unknown;
    for (let i = 0; i < ep.schemes.length; i++) {
      const scheme = ep.schemes[i]!;
      const base = `${scheme}://${ep.host}`;
      const last = i === ep.schemes.length - 1;
      try {
        const res = await this.withRetries(ep, `GET ${base}/v2/`, null, signal, last ? this.retries : 1, () =>
          this.rawRequest(ep, base, 'GET', `${base}/v2/`, {}, null, signal).then((r) => r.res),
        );
        const status = res.statusCode;
        if (status === 200) {
          await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
          return { base, scheme, challenges: [] };
        }
        if (status === 401) {
          const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
          await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
          return { base, scheme, challenges };
        }
        await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
        throw new RegistryError(
          ep.key,
          status,
          `${ep.source} is not an OCI distribution registry (GET /v2/ answered ${status})`,
        );
      } catch (e) {
        lastErr = e;
        if (e instanceof AbortedError || last) throw e;
        // https failed at the TLS/connection level: the next scheme (http) is tried (§1.3).
        if (!(e instanceof NetworkError)) throw e;
      }
    }
    throw lastErr;
  }

  // ───────────────────────────── retries ─────────────────────────────

  /**
   * Runs `fn` (one request) with the retry rules of docs/pull.md §4: network errors and
   * 408/429/500/502/503/504 are retried up to `attempts` in all; Retry-After ≤ 60 s is honoured,
   * a longer one fails at once. Returns the first other response. TLS errors are not retried.
   */
  private async withRetries(
    ep: Endpoint,
    what: string,
    layerIndex: number | null,
    signal: AbortSignal | undefined,
    attempts: number,
    fn: () => Promise<Resp>,
  ): Promise<Resp> {
    for (let attempt = 1; ; attempt++) {
      this.checkAbort(signal);
      let res: Resp;
      try {
        res = await fn();
      } catch (e) {
        if (e instanceof MsbError) throw e;
        if (signal?.aborted) throw new AbortedError(signal.reason);
        const desc = this.scrub(describeNetworkError(e));
        if (isRetryableNetworkError(e) && !isTlsError(e) && attempt < attempts) {
          await this.backoff(attempt, null, `${redactUrl(what)}: ${desc}`, layerIndex, signal);
          continue;
        }
        throw new NetworkError(
          ep.key,
          `${redactUrl(what)}: ${desc}`,
          Object.assign(new Error(desc), { code: errorCode(e) }),
        );
      }
      const s = res.statusCode;
      if (s === 408 || s === 429 || s === 500 || s === 502 || s === 503 || s === 504) {
        const ra = parseRetryAfter(header(res.headers, 'retry-after'));
        const body = await readSmall(res, ERROR_BODY_MAX).catch(() => Buffer.alloc(0));
        const details = rateLimitDetails(res.headers);
        if (ra !== null && ra > RETRY_AFTER_MAX_MS) {
          throw new RegistryError(
            ep.key,
            s,
            `${redactUrl(what)}: HTTP ${s} with Retry-After ${Math.round(ra / 1000)} s (over 60 s)`,
            { retryAfterMs: ra, ...details, ...registryCodeOf(body) },
          );
        }
        if (attempt < attempts) {
          await this.backoff(attempt, ra, `${redactUrl(what)}: HTTP ${s}`, layerIndex, signal);
          continue;
        }
        throw new RegistryError(ep.key, s, `${redactUrl(what)}: HTTP ${s} after ${attempts} attempts`, {
          ...(ra !== null ? { retryAfterMs: ra } : {}),
          ...details,
          ...registryCodeOf(body),
        });
      }
      return res;
    }
  }

  // ───────────────────────────── authentication ─────────────────────────────

  private credentialFor(ep: Endpoint, signal?: AbortSignal): Promise<Credential> {
    const cacheKey = credentialKey(ep);
    let p = this.creds.get(cacheKey);
    if (!p) {
      const ctx: CredentialContext = {
        home: this.opts.home,
        settings: this.opts.settings,
        env: this.env,
        signal: this.signalFor(signal),
      };
      p = endpointCredential(ep, ctx, this.opts.auth).then((c) => {
        if (c.kind === 'basic') this.addSecret(c.password, `${c.username}:${c.password}`);
        if (c.kind === 'token') this.addSecret(c.token);
        if (c.kind === 'identity') this.addSecret(c.identityToken);
        return c;
      });
      this.creds.set(cacheKey, p);
      p.catch(() => this.creds.delete(cacheKey));
    }
    return p;
  }

  private static credFingerprint(c: Credential): string {
    const h = createHash('sha256');
    h.update(JSON.stringify(c));
    return h.digest('hex').slice(0, 16);
  }

  /**
   * The Authorization header for a request to `ep` about `repo`, or null (anonymous / no auth).
   * `challenge` is the one in force (ping or a later 401).
   */
  private async authorization(
    ep: Endpoint,
    ping: PingResult,
    challenge: Challenge | null,
    repo: string | null,
    signal: AbortSignal | undefined,
  ): Promise<string | null> {
    const cred = await this.credentialFor(ep, signal);
    if (cred.kind === 'token') return `Bearer ${cred.token}`;
    if (!challenge) return null;
    if (challenge.scheme === 'basic') {
      if (cred.kind !== 'basic') {
        throw new RegistryAuthError(
          ep.key,
          401,
          `${ep.source} requires a username and password (Basic authentication)${cred.kind === 'anonymous' ? '; none are configured' : ''}`,
        );
      }
      return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    }
    // Bearer.
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryAuthError(ep.key, 401, `${ep.source} sent a Bearer challenge without a realm`);
    const service = challenge.params.service ?? '';
    const scopes: string[] = [];
    if (repo) scopes.push(`repository:${repo}:pull`);
    for (const s of (challenge.params.scope ?? '').split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
    const key = `${ep.host}|${service}|${scopes.join(' ')}|${RegistryClient.credFingerprint(cred)}`;
    const cached = this.cache.tokens.get(key);
    if (cached && cached.expiresAt - TOKEN_EARLY_MS > Date.now()) return `Bearer ${cached.token}`;
    const tok = await this.fetchToken(ep, ping, realm, service, scopes, cred, signal);
    this.cache.tokens.set(key, tok);
    return `Bearer ${tok.token}`;
  }

  private dropTokens(ep: Endpoint): void {
    for (const k of [...this.cache.tokens.keys()]) if (k.startsWith(`${ep.host}|`)) this.cache.tokens.delete(k);
  }

  /** Token request (docs/pull.md §2.2, §2.3): GET with Basic or nothing; POST for a refresh token. */
  private async fetchToken(
    ep: Endpoint,
    ping: PingResult,
    realm: string,
    service: string,
    scopes: string[],
    cred: Credential,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number }> {
    const u = await validateRealm(realm, {
      registry: ep.key,
      registryScheme: ping.scheme,
      registryHostname: ep.hostname,
      registryInsecure: ep.insecure,
      ...(this.opts.resolve ? { resolve: this.opts.resolve } : {}),
    });
    const shown = redactUrl(u.toString());
    const realmEp: Endpoint = { ...ep, caFiles: ep.caFiles, insecure: false };
    let res: Resp;
    if (cred.kind === 'identity') {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        service,
        client_id: 'msb-image',
        refresh_token: cred.identityToken,
      });
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.withRetries(ep, `POST ${shown}`, null, signal, this.retries, async () => {
        return this.requestWithDeadline(
          u,
          {
            method: 'POST',
            dispatcher: this.pool.get(realmEp.caFiles, true),
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'msb-image' },
            body: form.toString(),
          },
          signal,
        );
      });
    } else {
      const q = new URL(u);
      if (service) q.searchParams.set('service', service);
      for (const s of scopes) q.searchParams.append('scope', s);
      const headers: Record<string, string> = { 'user-agent': 'msb-image' };
      if (cred.kind === 'basic')
        headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      res = await this.withRetries(ep, `GET ${shown}`, null, signal, this.retries, async () => {
        // The realm gets the Basic credentials for this request only; no redirects are followed for it.
        return this.requestWithDeadline(
          q,
          { method: 'GET', headers, dispatcher: this.pool.get(realmEp.caFiles, true) },
          signal,
        );
      });
    }
    const body = await readSmall(res, TOKEN_BODY_MAX).catch(() => Buffer.alloc(0));
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new RegistryAuthError(
        ep.key,
        res.statusCode,
        `token request to ${shown} was refused (HTTP ${res.statusCode}): check the credentials for ${ep.key}`,
      );
    }
    if (res.statusCode !== 200)
      throw new RegistryAuthError(
        ep.key,
        res.statusCode,
        `token request to ${shown} failed with HTTP ${res.statusCode}`,
      );
    let v: {
      token?: unknown;
      access_token?: unknown;
      expires_in?: unknown;
      issued_at?: unknown;
      refresh_token?: unknown;
    };
    try {
      v = JSON.parse(body.toString('utf8')) as typeof v;
    } catch {
      throw new RegistryAuthError(ep.key, 200, `token response from ${shown} is not JSON`);
    }
    const token =
      typeof v.token === 'string' && v.token
        ? v.token
        : typeof v.access_token === 'string' && v.access_token
          ? v.access_token
          : null;
    if (!token) throw new RegistryAuthError(ep.key, 200, `token response from ${shown} has no token`);
    this.addSecret(token);
    if (typeof v.refresh_token === 'string') this.addSecret(v.refresh_token);
    const expiresIn = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : 60;
    const issued = typeof v.issued_at === 'string' ? Date.parse(v.issued_at) : NaN;
    const start = Number.isNaN(issued) ? Date.now() : issued;
    return { token, expiresAt: start + expiresIn * 1000 };
  }

  // ───────────────────────────── authenticated requests ─────────────────────────────

  /**
   * An authenticated request to an endpoint, with retries, redirects and the single re-auth of
   * docs/pull.md §2.3. Returns a 2xx/206/416 response (body unread); anything else is thrown.
   */
  private async send(
    ep: Endpoint,
    repo: string,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    what: string,
    layerIndex: number | null,
    signal: AbortSignal | undefined,
  ): Promise<{ res: Resp; url: string }> {
    const ping = await this.ping(ep, signal);
    const url = `${ping.base}${path}`;
    const chKey = `${ep.key}|${ep.host}`;
    let reauthed = false;
    for (;;) {
      const challenge = this.cache.challenges.get(chKey) ?? pickChallenge(ping.challenges);
      const authz = await this.authorization(ep, ping, challenge, repo, signal);
      let finalUrl = url;
      const res = await this.withRetries(ep, `${method} ${url}`, layerIndex, signal, this.retries, async () => {
        const r = await this.rawRequest(ep, ping.base, method, url, headers, authz, signal);
        finalUrl = r.url;
        return r.res;
      });
      const s = res.statusCode;
      if ((s >= 200 && s < 300) || s === 416) return { res, url: finalUrl };
      const body =
        method === 'HEAD' ? Buffer.alloc(0) : await readSmall(res, ERROR_BODY_MAX).catch(() => Buffer.alloc(0));
      if (method === 'HEAD') await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
      const bodyText = body.toString('utf8');
      const wwwAuth = parseWwwAuthenticate(res.headers['www-authenticate']);
      const invalidToken = /invalid_token/.test(bodyText) || wwwAuth.some((c) => c.params.error === 'invalid_token');
      if (s === 401 || ((s === 403 || s === 400) && invalidToken)) {
        if (reauthed)
          throw new RegistryAuthError(
            ep.key,
            s,
            `${what}: authentication failed at ${ep.source} (HTTP ${s} after re-authenticating)`,
          );
        reauthed = true;
        this.dropTokens(ep);
        const ch = pickChallenge(wwwAuth);
        if (ch) this.cache.challenges.set(chKey, ch);
        else if (!challenge)
          throw new RegistryAuthError(ep.key, s, `${what}: HTTP ${s} from ${ep.source} without a usable challenge`);
        continue;
      }
      if (s === 403) throw new RegistryAuthError(ep.key, 403, `${what}: access denied by ${ep.source}`);
      const code = registryCodeOf(body);
      throw new RegistryError(
        ep.key,
        s,
        `${what}: HTTP ${s} from ${ep.source}${code.registryCode ? ` (${code.registryCode})` : ''}`,
        code,
      );
    }
  }

  /**
   * Runs `op` against each endpoint in order from `start`, abandoning one for the next on the
   * reasons of docs/pull.md §12 (connection error, 404, 401/403 after its own auth, 5xx after retries,
   * digest mismatch), with a MIRROR_FALLBACK warning. The origin's error is the one thrown.
   */
  private async withFallback<T>(
    domain: string,
    need: Capability,
    what: string,
    start: number,
    op: (ep: Endpoint, index: number) => Promise<T>,
  ): Promise<T> {
    const eps = this.endpoints(domain, need);
    let lastErr: unknown = new RegistryError(domain, 0, `${what}: no endpoint left to try`);
    for (let i = Math.min(start, eps.length - 1); i < eps.length; i++) {
      const ep = eps[i]!;
      try {
        return await op(ep, i);
      } catch (e) {
        lastErr = e;
        const fallbackable =
          e instanceof NetworkError ||
          e instanceof RegistryAuthError ||
          e instanceof DigestMismatchError ||
          (e instanceof RegistryError && (e.status === 404 || e.status >= 500 || e.status === 429 || e.status === 0));
        if (i === eps.length - 1 || !fallbackable) throw e;
        this.warn(
          'MIRROR_FALLBACK',
          `${what}: ${ep.source} failed (${(e as Error).message}); trying ${eps[i + 1]!.source}`,
        );
      }
    }
    throw lastErr;
  }

  // ───────────────────────────── manifests ─────────────────────────────

  /**
   * GET a manifest or index by tag or digest (docs/pull.md §5.1): all four types in Accept, size
   * limit with early abort, digest computed over the exact bytes and checked against the
   * requested digest and Docker-Content-Digest. Parsing is the caller's (src/pull/manifest.ts).
   */
  async fetchManifest(
    ref: RepoRef,
    tagOrDigest: string,
    opts: { signal?: AbortSignal | undefined; maxBytes?: number; startEndpoint?: number } = {},
  ): Promise<ManifestResponse> {
    const maxBytes = opts.maxBytes ?? DEFAULT_LIMITS.maxManifestBytes;
    const signal = this.signalFor(opts.signal);
    const expected = isDigest(tagOrDigest) ? tagOrDigest : null;
    const what = `manifest ${ref.domain}/${ref.repository}${expected ? '@' : ':'}${tagOrDigest}`;
    return this.withFallback(ref.domain, expected ? 'pull' : 'resolve', what, opts.startEndpoint ?? 0, async (ep) => {
      const { res } = await this.send(
        ep,
        ref.repository,
        'GET',
        `/v2/${ref.repository}/manifests/${tagOrDigest}`,
        { accept: MANIFEST_ACCEPT.join(', ') },
        what,
        null,
        signal,
      );
      if (res.statusCode === 416) {
        await res.body.dump().catch(() => undefined);
        throw new RegistryError(ep.key, 416, `${what}: unexpected HTTP 416`);
      }
      const bytes = await readLimited(res, maxBytes, 'maxManifestBytes', what, signal);
      const dcdRaw = header(res.headers, 'docker-content-digest');
      const dcd = dcdRaw && isDigest(dcdRaw.trim()) ? dcdRaw.trim() : null;
      const alg: DigestAlgorithm = expected ? digestAlgorithm(expected) : 'sha256';
      const digest = `${alg}:${newHash(alg).update(bytes).digest('hex')}`;
      if (expected && digest !== expected)
        throw new DigestMismatchError(
          'manifest',
          expected,
          digest,
          `${what}: digest mismatch: expected ${expected}, got ${digest}`,
        );
      if (dcd) {
        const dAlg = digestAlgorithm(dcd);
        const actual = dAlg === alg ? digest : `${dAlg}:${newHash(dAlg).update(bytes).digest('hex')}`;
        if (actual !== dcd)
          throw new DigestMismatchError(
            'manifest',
            dcd,
            actual,
            `${what}: Docker-Content-Digest ${dcd} does not match the bytes (${actual})`,
          );
      }
      return {
        bytes,
        digest,
        contentType: header(res.headers, 'content-type'),
        dockerContentDigest: dcd,
        source: ep.source,
        endpoint: ep,
      };
    });
  }

  /**
   * GET a small resource of a repository (`tags/list[?query]`) through the tag-resolving endpoints
   * with the usual auth, retries and fallback, from endpoint `start` on (the next pages of a list
   * are asked of the endpoint that served the first). Returns the body and the `Link` header.
   */
  async getRepoResource(
    ref: RepoRef,
    resource: string,
    opts: { signal?: AbortSignal | undefined; maxBytes?: number; start?: number } = {},
  ): Promise<{ bytes: Buffer; link: string | null; source: string; endpointIndex: number }> {
    const maxBytes = opts.maxBytes ?? DEFAULT_LIMITS.maxManifestBytes;
    const signal = this.signalFor(opts.signal);
    const what = `${resource.replace(/\?.*$/, '')} of ${ref.domain}/${ref.repository}`;
    return this.withFallback(ref.domain, 'resolve', what, opts.start ?? 0, async (ep, index) => {
      const { res } = await this.send(
        ep,
        ref.repository,
        'GET',
        `/v2/${ref.repository}/${resource}`,
        { accept: 'application/json' },
        what,
        null,
        signal,
      );
      if (res.statusCode === 416) {
        await res.body.dump().catch(() => undefined);
        throw new RegistryError(ep.key, 416, `${what}: unexpected HTTP 416`);
      }
      const bytes = await readLimited(res, maxBytes, 'maxManifestBytes', what, signal);
      return { bytes, link: header(res.headers, 'link'), source: ep.source, endpointIndex: index };
    });
  }

  /** HEAD a manifest (policy `always`, docs/pull.md §5.1): its Docker-Content-Digest, type and size. */
  async headManifest(
    ref: RepoRef,
    tagOrDigest: string,
    opts: { signal?: AbortSignal | undefined } = {},
  ): Promise<ManifestHead> {
    const signal = this.signalFor(opts.signal);
    const what = `manifest ${ref.domain}/${ref.repository}:${tagOrDigest} (HEAD)`;
    return this.withFallback(ref.domain, isDigest(tagOrDigest) ? 'pull' : 'resolve', what, 0, async (ep) => {
      const { res } = await this.send(
        ep,
        ref.repository,
        'HEAD',
        `/v2/${ref.repository}/manifests/${tagOrDigest}`,
        { accept: MANIFEST_ACCEPT.join(', ') },
        what,
        null,
        signal,
      );
      await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
      const dcd = header(res.headers, 'docker-content-digest')?.trim() ?? null;
      const len = header(res.headers, 'content-length');
      return {
        digest: dcd && isDigest(dcd) ? dcd : null,
        contentType: header(res.headers, 'content-type'),
        size: len !== null && /^\d+$/.test(len) ? Number(len) : null,
        source: ep.source,
        endpoint: ep,
      };
    });
  }

  // ───────────────────────────── blobs ─────────────────────────────

  /**
   * Opens a blob body: `GET /v2/<repo>/blobs/<digest>`, with `Range: bytes=<offset>-` when
   * offset > 0. Tries endpoints from `startEndpoint` (docs/pull.md §12). The stream is undici's body:
   * it applies backpressure and is cancelled by the signal or by `destroy()`.
   */
  async openBlob(
    ref: RepoRef,
    digest: string,
    opts: {
      offset?: number;
      signal?: AbortSignal | undefined;
      layerIndex?: number | null;
      startEndpoint?: number;
    } = {},
  ): Promise<BlobResponse> {
    if (!isDigest(digest)) throw new RegistryError(ref.domain, 0, `invalid blob digest ${JSON.stringify(digest)}`);
    const signal = this.signalFor(opts.signal);
    const offset = opts.offset ?? 0;
    const what = `blob ${ref.domain}/${ref.repository}@${digest}`;
    return this.withFallback(ref.domain, 'pull', what, opts.startEndpoint ?? 0, (ep, index) =>
      this.openBlobAt(ep, index, ref, digest, offset, what, opts.layerIndex ?? null, signal),
    );
  }

  private async openBlobAt(
    ep: Endpoint,
    index: number,
    ref: RepoRef,
    digest: string,
    offset: number,
    what: string,
    layerIndex: number | null,
    signal: AbortSignal | undefined,
  ): Promise<BlobResponse> {
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const { res } = await this.send(
      ep,
      ref.repository,
      'GET',
      `/v2/${ref.repository}/blobs/${digest}`,
      headers,
      what,
      layerIndex,
      signal,
    );
    const len = header(res.headers, 'content-length');
    const contentLength = len !== null && /^\d+$/.test(len) ? Number(len) : null;
    if (res.statusCode === 416) {
      await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
      return {
        status: 416,
        stream: emptyStream(),
        contentLength: 0,
        rangeStart: offset,
        endpoint: ep,
        endpointIndex: index,
      };
    }
    if (res.statusCode === 206) {
      const cr = header(res.headers, 'content-range');
      const m = cr ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(cr.trim()) : null;
      if (offset > 0 && m && Number(m[1]) === offset) {
        return { status: 206, stream: res.body, contentLength, rangeStart: offset, endpoint: ep, endpointIndex: index };
      }
      // A range we did not ask for: start over without Range.
      res.body.destroy();
      return this.openBlobAt(ep, index, ref, digest, 0, what, layerIndex, signal);
    }
    if (res.statusCode !== 200) {
      await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
      throw new RegistryError(ep.key, res.statusCode, `${what}: unexpected HTTP ${res.statusCode}`);
    }
    return { status: 200, stream: res.body, contentLength, rangeStart: 0, endpoint: ep, endpointIndex: index };
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
  async *readBlob(
    ref: RepoRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: ReadBlobOptions = {},
  ): AsyncGenerator<BlobEvent, void, void> {
    const signal = this.signalFor(opts.signal);
    const layerIndex = opts.layerIndex ?? null;
    const cap = desc.size + 1;
    let pos = Math.min(opts.offset ?? 0, cap);
    if (pos > desc.size) pos = 0; // a .part longer than the blob is discarded (§4)
    let startEndpoint = opts.startEndpoint ?? 0;
    let resumes = 0;
    const what = `blob ${ref.domain}/${ref.repository}@${desc.digest}`;
    for (;;) {
      const r = await this.openBlob(ref, desc.digest, { offset: pos, signal, layerIndex, startEndpoint });
      startEndpoint = r.endpointIndex;
      if (r.status === 416) {
        if (pos === desc.size) {
          yield {
            type: 'open',
            rangeStart: pos,
            endpoint: r.endpoint,
            endpointIndex: r.endpointIndex,
            contentLength: 0,
          };
          return;
        }
        // Our offset is past what the server has: start over from zero.
        pos = 0;
        continue;
      }
      pos = r.rangeStart;
      yield {
        type: 'open',
        rangeStart: pos,
        endpoint: r.endpoint,
        endpointIndex: r.endpointIndex,
        contentLength: r.contentLength,
      };
      let failure: unknown = null;
      try {
        for await (const chunk of r.stream as AsyncIterable<Buffer>) {
          const room = cap - pos;
          if (chunk.length >= room) {
            if (room > 0) yield { type: 'data', chunk: chunk.subarray(0, room) };
            pos = cap;
            r.stream.destroy();
            return;
          }
          pos += chunk.length;
          yield { type: 'data', chunk };
        }
      } catch (e) {
        if (signal?.aborted) throw new AbortedError(signal.reason);
        if (e instanceof MsbError) throw e;
        failure = e;
      } finally {
        // Early exit by the consumer (break/return/throw): cancel the transfer.
        if (pos < cap) r.stream.destroy();
      }
      if (failure === null && pos >= desc.size) return;
      // Cut off (error or a clean end short of the size): resume with Range from `pos`.
      const why = failure === null ? `body ended after ${pos} of ${desc.size} bytes` : describeNetworkError(failure);
      if (failure !== null && !isRetryableNetworkError(failure)) {
        throw new NetworkError(
          r.endpoint.key,
          `${what}: ${this.scrub(why)}`,
          Object.assign(new Error(this.scrub(why)), { code: errorCode(failure) }),
        );
      }
      resumes++;
      if (resumes >= this.retries) {
        throw new NetworkError(r.endpoint.key, `${what}: transfer cut off ${resumes} times (last: ${this.scrub(why)})`);
      }
      await this.backoff(resumes, null, `${what}: ${why}; resuming at byte ${pos}`, layerIndex, signal);
    }
  }

  /**
   * Reads a whole small blob (the config, docs/pull.md §6): size ≤ `maxBytes` (LimitExceededError
   * maxManifestBytes, refused unread when the descriptor or Content-Length says so), exact size,
   * digest verified (DigestMismatchError {what}). A mismatch from a mirror falls back (§12).
   */
  async fetchBlobBytes(
    ref: RepoRef,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    maxBytes: number = DEFAULT_LIMITS.maxManifestBytes,
    opts: { signal?: AbortSignal | undefined; what?: string } = {},
  ): Promise<Buffer> {
    const what = opts.what ?? 'config';
    if (desc.size > maxBytes)
      throw new LimitExceededError('maxManifestBytes', desc.size, maxBytes, `${what} ${desc.digest}`);
    const local = await this.opts.localBlob?.(desc.digest);
    if (local && local.length === desc.size && digestOf(local, digestAlgorithm(desc.digest)) === desc.digest)
      return local;
    const signal = this.signalFor(opts.signal);
    const label = `${what} ${ref.domain}/${ref.repository}@${desc.digest}`;
    return this.withFallback(ref.domain, 'pull', label, 0, async (ep, index) => {
      const r = await this.openBlobAt(ep, index, ref, desc.digest, 0, label, null, signal);
      if (r.contentLength !== null && r.contentLength > maxBytes) {
        r.stream.destroy();
        throw new LimitExceededError('maxManifestBytes', r.contentLength, maxBytes, label);
      }
      const chunks: Buffer[] = [];
      let n = 0;
      try {
        for await (const c of r.stream as AsyncIterable<Buffer>) {
          n += c.length;
          if (n > maxBytes) {
            r.stream.destroy();
            throw new LimitExceededError('maxManifestBytes', n, maxBytes, label);
          }
          chunks.push(c);
        }
      } catch (e) {
        if (e instanceof MsbError) throw e;
        if (signal?.aborted) throw new AbortedError(signal.reason);
        throw new NetworkError(ep.key, `${label}: ${this.scrub(describeNetworkError(e))}`);
      }
      const bytes = Buffer.concat(chunks);
      const alg = digestAlgorithm(desc.digest);
      const actual = `${alg}:${newHash(alg).update(bytes).digest('hex')}`;
      if (actual !== desc.digest)
        throw new DigestMismatchError(what, desc.digest, actual, `${label}: digest mismatch (got ${actual})`);
      if (bytes.length !== desc.size)
        throw new DigestMismatchError(
          what,
          desc.digest,
          actual,
          `${label}: size ${bytes.length} differs from the descriptor's ${desc.size}`,
        );
      return bytes;
    });
  }

  /**
   * Checks that credentials work against a registry (msb registry login, docs/cli.md §7 step 3): ping,
   * then a 2xx with Basic, or a token fetched with them for a Bearer challenge.
   */
  async checkLogin(domain: string, signal?: AbortSignal): Promise<void> {
    const eps = this.endpoints(domain);
    const ep = eps[eps.length - 1]!;
    const sig = this.signalFor(signal);
    const ping = await this.ping(ep, sig);
    const ch = pickChallenge(ping.challenges);
    if (!ch) return; // an open registry accepts anything
    const authz = await this.authorization(ep, ping, ch, null, sig);
    if (ch.scheme === 'basic') {
      const res = await this.withRetries(ep, `GET ${ping.base}/v2/`, null, sig, this.retries, () =>
        this.rawRequest(ep, ping.base, 'GET', `${ping.base}/v2/`, {}, authz, sig).then((r) => r.res),
      );
      await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
      if (res.statusCode < 200 || res.statusCode >= 300)
        throw new RegistryAuthError(ep.key, res.statusCode, `login to ${domain} failed (HTTP ${res.statusCode})`);
    }
  }

  /** Messages built by callers (e.g. the pipeline) can be scrubbed with the secrets this client knows. */
  redact(message: string): string {
    return this.scrub(message);
  }
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

/** Reads a body up to `max` bytes (the rest is discarded). */
async function readSmall(res: Resp, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    if (n + c.length > max) {
      chunks.push(c.subarray(0, max - n));
      res.body.destroy();
      break;
    }
    chunks.push(c);
    n += c.length;
  }
  return Buffer.concat(chunks);
}

/** Reads a body of at most `max` bytes: a larger Content-Length is refused unread; streaming stops past the limit. */
async function readLimited(res: Resp, max: number, limit: string, what: string, signal?: AbortSignal): Promise<Buffer> {
  const len = header(res.headers, 'content-length');
  if (len !== null && /^\d+$/.test(len) && Number(len) > max) {
    res.body.destroy();
    throw new LimitExceededError(limit, Number(len), max, what);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > max) {
        res.body.destroy();
        throw new LimitExceededError(limit, n, max, what);
      }
      chunks.push(c);
    }
  } catch (e) {
    if (e instanceof MsbError) throw e;
    if (signal?.aborted) throw new AbortedError(signal.reason);
    throw new NetworkError(what, `${what}: ${describeNetworkError(e)}`);
  }
  return Buffer.concat(chunks);
}

function registryCodeOf(body: Buffer): { registryCode?: string } {
  try {
    const v = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown }[] };
    const c = v.errors?.[0]?.code;
    return typeof c === 'string' ? { registryCode: c } : {};
  } catch {
    return {};
  }
}

function rateLimitDetails(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  const rem = header(h, 'ratelimit-remaining');
  const lim = header(h, 'ratelimit-limit');
  if (rem !== null) out.rateLimitRemaining = rem;
  if (lim !== null) out.rateLimitLimit = lim;
  return out;
}

export { DOCKER_HUB_DOMAIN };

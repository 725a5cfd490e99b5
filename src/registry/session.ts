/**
 * One client's wiring: the parts every registry operation needs (scrubber, dispatchers,
 * transport, retries, ping, authentication), built once from the client options, and the
 * authenticated request all operations go through — ping, Authorization for the challenge in
 * force, the request with retries and redirects, and one re-authentication after a 401 or an
 * invalid token (docs/pull.md §2.3). Manifests (src/registry/manifests.ts) and blobs
 * (src/registry/blobs.ts) are written against this; `RegistryClient` is their facade.
 */
import { RegistryAuthError, RegistryError } from '../errors.js';
import { Authenticator, needsReauth } from './auth.js';
import { discard, ERROR_BODY_MAX, readSmallOrEmpty, registryCodeOf, type Resp } from './body.js';
import { parseWwwAuthenticate, pickChallenge, type Challenge } from './challenge.js';
import { withFallback } from './fallback.js';
import { DEFAULT_TIMEOUTS, DispatcherPool } from './http.js';
import { mirrorUrlSecrets, registryEndpoints } from './mirrors.js';
import { Pinger, type PingResult } from './ping.js';
import type { Resolver } from './realm.js';
import { Retrier } from './retry.js';
import { SecretScrubber } from './scrub.js';
import { fetchToken } from './token.js';
import { Transport } from './transport.js';
import type { Capability, Endpoint, RegistryAuth, RegistrySettings, RetryInfo, WarningInfo } from './types.js';

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

export class Session {
  readonly opts: RegistryClientOptions;
  readonly env: NodeJS.ProcessEnv;
  readonly cache: RegistryCache;
  readonly scrubber = new SecretScrubber();
  readonly transport: Transport;
  readonly retrier: Retrier;
  readonly pinger: Pinger;
  readonly auth: Authenticator;
  private readonly pool: DispatcherPool;
  private readonly ownsPool: boolean;

  constructor(opts: RegistryClientOptions) {
    this.opts = opts;
    this.env = opts.env ?? process.env;
    this.cache = opts.cache ?? new RegistryCache();
    const t = opts.settings.pull?.timeouts ?? {};
    const connectMs = t.connectMs ?? DEFAULT_TIMEOUTS.connectMs;
    const headersMs = t.headersMs ?? DEFAULT_TIMEOUTS.headersMs;
    const idleMs = t.idleMs ?? DEFAULT_TIMEOUTS.idleMs;
    this.pool = opts.dispatchers ?? new DispatcherPool({ connectMs, headersMs, idleMs }, this.env);
    this.ownsPool = !opts.dispatchers;
    const scrub = (s: string) => this.scrubber.scrub(s);
    this.transport = new Transport(this.pool, connectMs + headersMs);
    this.retrier = new Retrier({
      attempts: Math.max(1, opts.settings.pull?.retries ?? 5),
      backoffMs: opts.backoffMs,
      onRetry: opts.onRetry,
      scrub,
    });
    this.pinger = new Pinger(this.cache.pings, this.transport, this.retrier);
    const tokenDeps = { transport: this.transport, retrier: this.retrier, resolve: opts.resolve };
    this.auth = new Authenticator({
      context: { home: opts.home, settings: opts.settings, env: this.env },
      explicit: opts.auth,
      tokens: this.cache.tokens,
      scrubber: this.scrubber,
      fetchToken: (req, signal) => fetchToken(tokenDeps, req, signal),
    });
    if (opts.auth && 'password' in opts.auth) this.scrubber.add(opts.auth.password, opts.auth.username);
    if (opts.auth && 'registryToken' in opts.auth) this.scrubber.add(opts.auth.registryToken);
  }

  /** Closes the dispatchers this session owns. */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.close();
  }

  /** The endpoints able to do `need` (src/registry/mirrors.ts); passwords in mirror URLs become secrets. */
  endpoints(domain: string, need: Capability = 'pull'): Endpoint[] {
    const eps = registryEndpoints(domain, this.opts.settings, need, {
      env: this.env,
      ...(this.opts.insecure !== undefined ? { insecure: this.opts.insecure } : {}),
      ...(this.opts.caCerts ? { caCerts: this.opts.caCerts } : {}),
    });
    for (const ep of eps) this.scrubber.add(...mirrorUrlSecrets(ep));
    return eps;
  }

  /** The client's signal combined with a call's own. */
  signalFor(extra?: AbortSignal): AbortSignal | undefined {
    const list = [this.opts.signal, extra].filter((s): s is AbortSignal => !!s);
    if (list.length === 0) return undefined;
    if (list.length === 1) return list[0];
    return AbortSignal.any(list);
  }

  warn(code: string, message: string): void {
    this.opts.onWarning?.({ code, message: this.scrubber.scrub(message) });
  }

  /** `op` on the endpoints able to do `need`, from `start` on, with mirror fallback (src/registry/fallback.ts). */
  async fallback<T>(
    domain: string,
    need: Capability,
    what: string,
    start: number,
    op: (ep: Endpoint, index: number) => Promise<T>,
  ): Promise<T> {
    return withFallback(this.endpoints(domain, need), domain, what, start, op, (c, m) => this.warn(c, m));
  }

  /**
   * An authenticated request to an endpoint, with retries, redirects and the single re-auth of
   * docs/pull.md §2.3. Returns a 2xx/206/416 response (body unread); anything else is thrown.
   */
  async send(
    ep: Endpoint,
    repo: string,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    what: string,
    layerIndex: number | null,
    signal: AbortSignal | undefined,
  ): Promise<Resp> {
    const ping = await this.pinger.ping(ep, signal);
    const url = `${ping.base}${path}`;
    const chKey = `${ep.key}|${ep.host}`;
    for (let reauthed = false; ; reauthed = true) {
      const challenge = this.cache.challenges.get(chKey) ?? pickChallenge(ping.challenges);
      const authz = await this.auth.authorization(ep, ping, challenge, repo, signal);
      const res = await this.retrier.run(ep.key, `${method} ${url}`, layerIndex, signal, () =>
        this.transport.follow(ep, ping.base, method, url, headers, authz, signal).then((r) => r.res),
      );
      const s = res.statusCode;
      if ((s >= 200 && s < 300) || s === 416) return res;
      const body =
        method === 'HEAD'
          ? await discard(res).then(() => Buffer.alloc(0))
          : await readSmallOrEmpty(res, ERROR_BODY_MAX);
      const wwwAuth = parseWwwAuthenticate(res.headers['www-authenticate']);
      if (!needsReauth(s, body.toString('utf8'), wwwAuth)) throw refusal(ep, s, what, body);
      if (reauthed) {
        const msg = `${what}: authentication failed at ${ep.source} (HTTP ${s} after re-authenticating)`;
        throw new RegistryAuthError(ep.key, s, msg);
      }
      this.auth.dropTokens(ep);
      const ch = pickChallenge(wwwAuth);
      if (ch) this.cache.challenges.set(chKey, ch);
      else if (!challenge)
        throw new RegistryAuthError(ep.key, s, `${what}: HTTP ${s} from ${ep.source} without a usable challenge`);
    }
  }
}

/** The error for an answer that is neither success nor a reason to authenticate again. */
function refusal(ep: Endpoint, status: number, what: string, body: Buffer): Error {
  if (status === 403) return new RegistryAuthError(ep.key, 403, `${what}: access denied by ${ep.source}`);
  const code = registryCodeOf(body);
  const named = code.registryCode ? ` (${code.registryCode})` : '';
  return new RegistryError(ep.key, status, `${what}: HTTP ${status} from ${ep.source}${named}`, code);
}

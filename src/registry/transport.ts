/**
 * Sending one request (docs/pull.md §3): undici with a deadline on the response headers, and
 * redirects followed by hand, because the rules for them are ours to enforce, not the HTTP
 * library's — at most 5 hops, the Authorization header only to the endpoint's own origin (a blob
 * redirect to a CDN must not carry our token), https→http refused unless the endpoint is
 * insecure, TLS verification skipped only on an insecure endpoint's own origin.
 */
import type { Dispatcher } from 'undici';
import { AbortedError, RegistryError, redactUrl } from '../errors.js';
import { discard, header, type Resp } from './body.js';
import type { DispatcherPool } from './http.js';
import type { Endpoint } from './types.js';
import { request } from './undici.js';

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'msb-image';

export type Method = 'GET' | 'HEAD' | 'POST';

export interface RequestInit {
  method: Method;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  body?: string;
}

/**
 * Where a redirect leads (pure). Throws RegistryError for a location that is not a URL, a scheme
 * other than http(s), or an https→http downgrade on an endpoint that is not insecure.
 */
export function redirectTarget(
  from: URL,
  location: string,
  o: { insecure: boolean; registry: string; status: number },
): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new RegistryError(o.registry, o.status, `invalid redirect location from ${redactUrl(from.toString())}`);
  }
  if (next.protocol !== 'https:' && next.protocol !== 'http:') {
    throw new RegistryError(o.registry, o.status, `redirect to unsupported scheme ${next.protocol} refused`);
  }
  if (from.protocol === 'https:' && next.protocol === 'http:' && !o.insecure) {
    throw new RegistryError(
      o.registry,
      o.status,
      `redirect from https to http refused: ${redactUrl(from.toString())} → ${redactUrl(next.toString())}`,
    );
  }
  return next;
}

/**
 * The headers and TLS verification for one hop to `url` (pure): Authorization only to the
 * endpoint's `origin`; verification off only for an insecure endpoint's own origin.
 */
export function hopPolicy(
  url: URL,
  origin: string,
  insecure: boolean,
  headers: Record<string, string>,
  authorization: string | null,
): { headers: Record<string, string>; verify: boolean } {
  const h: Record<string, string> = { ...headers, 'user-agent': USER_AGENT };
  const own = url.origin === origin;
  if (authorization && own) h.authorization = authorization;
  return { headers: h, verify: !(insecure && own) };
}

export class Transport {
  /**
   * @param pool dispatchers per trust set (src/registry/http.ts)
   * @param deadlineMs connect + headers timeouts: the most a request may wait for its headers
   */
  constructor(
    private readonly pool: DispatcherPool,
    private readonly deadlineMs: number,
  ) {}

  /** The dispatcher for a trust set (`verify=false` only for insecure hosts). */
  dispatcher(caFiles: string[], verify: boolean): Dispatcher {
    return this.pool.get(caFiles, verify);
  }

  /**
   * undici `request` with a deadline on getting the response headers. undici's own timeouts start
   * once a socket is assigned; this one also covers a dispatcher that never gets there (e.g. a
   * proxy that keeps closing CONNECT tunnels, which undici@7 retries without end). The deadline
   * is cleared once headers arrive, so the body is governed by the idle timeout only. A deadline
   * hit is a retryable ETIMEDOUT network error.
   */
  async request(url: URL, init: RequestInit, signal: AbortSignal | undefined): Promise<Resp> {
    const ms = this.deadlineMs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, fail) => {
      timer = setTimeout(() => {
        // undici may not end such a request even when aborted: drop its dispatcher altogether.
        this.pool.evict(init.dispatcher);
        fail(Object.assign(new Error(`no response headers within ${ms} ms`), { code: 'ETIMEDOUT' }));
      }, ms);
    });
    deadline.catch(() => undefined);
    try {
      return await Promise.race([request(url, { ...init, ...(signal ? { signal } : {}) }), deadline]);
    } catch (e) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One request to an endpoint, following redirects by hand (see the file comment); Range and
   * Accept are carried to every hop. Returns the final response (body unread) and its URL.
   */
  async follow(
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
      const p = hopPolicy(cur, origin, ep.insecure, headers, authorization);
      const res = await this.request(
        cur,
        { method, headers: p.headers, dispatcher: this.pool.get(ep.caFiles, p.verify) },
        signal,
      );
      const location = header(res.headers, 'location');
      if (!REDIRECT_STATUSES.has(res.statusCode) || !location) return { res, url: cur.toString() };
      await discard(res);
      if (hop + 1 > MAX_REDIRECTS) {
        throw new RegistryError(
          ep.key,
          res.statusCode,
          `too many redirects (more than ${MAX_REDIRECTS}) for ${method} ${redactUrl(url)}`,
        );
      }
      cur = redirectTarget(cur, location, { insecure: ep.insecure, registry: ep.key, status: res.statusCode });
    }
  }
}

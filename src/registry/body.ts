/**
 * Response headers and bodies read with a bound. Every body the registry code reads whole goes
 * through here, so no answer (an error page, a token response, a manifest) can make memory grow
 * past a fixed limit, and a body nobody wants is discarded rather than left to hold a socket.
 */
import type { Dispatcher } from 'undici';
import { AbortedError, LimitExceededError, MsbError, NetworkError } from '../errors.js';
import { describeNetworkError } from './http.js';

export type Resp = Dispatcher.ResponseData;
type Headers = Record<string, string | string[] | undefined>;

/** Error bodies, /v2/ bodies and redirects are read or drained up to this much. */
export const ERROR_BODY_MAX = 64 * 1024;

/** One header's value (the first one when repeated), or null. */
export function header(h: Headers, name: string): string | null {
  const v = h[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

/** Content-Length as a number when it is a plain decimal, else null. */
export function contentLength(h: Headers): number | null {
  const len = header(h, 'content-length');
  return len !== null && /^\d+$/.test(len) ? Number(len) : null;
}

/** Drains a body we do not need (up to ERROR_BODY_MAX, then the connection is dropped). */
export async function discard(res: Resp): Promise<void> {
  await res.body.dump({ limit: ERROR_BODY_MAX }).catch(() => undefined);
}

/** Reads a body up to `max` bytes (the rest is discarded). */
export async function readSmall(res: Resp, max: number): Promise<Buffer> {
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

/** Like `readSmall`, but an unreadable body is an empty one (for error bodies). */
export function readSmallOrEmpty(res: Resp, max: number): Promise<Buffer> {
  return readSmall(res, max).catch(() => Buffer.alloc(0));
}

/**
 * Reads a body of at most `max` bytes: a larger Content-Length is refused unread
 * (LimitExceededError `limit`); streaming stops as soon as the count passes the limit. A body
 * cut off is NetworkError(`registry`), its description cleaned by `scrub`.
 */
export async function readLimited(
  res: Resp,
  max: number,
  limit: string,
  what: string,
  at: { registry: string; signal?: AbortSignal | undefined; scrub: (s: string) => string },
): Promise<Buffer> {
  const len = contentLength(res.headers);
  if (len !== null && len > max) {
    res.body.destroy();
    throw new LimitExceededError(limit, len, max, what);
  }
  return collect(res.body, max, limit, what, at.registry, at.signal, at.scrub);
}

/**
 * Collects a stream of at most `max` bytes (LimitExceededError `limit` past it, the stream
 * destroyed). A network error is NetworkError(`registry`, `what: …`); an abort is AbortedError.
 * `scrub` cleans the network error's description.
 */
export async function collect(
  stream: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
  max: number,
  limit: string,
  what: string,
  registry: string,
  signal?: AbortSignal,
  scrub: (s: string) => string = (s) => s,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of stream) {
      n += c.length;
      if (n > max) {
        stream.destroy();
        throw new LimitExceededError(limit, n, max, what);
      }
      chunks.push(c);
    }
  } catch (e) {
    if (e instanceof MsbError) throw e;
    if (signal?.aborted) throw new AbortedError(signal.reason);
    throw new NetworkError(registry, `${what}: ${scrub(describeNetworkError(e))}`);
  }
  return Buffer.concat(chunks);
}

/** The first `errors[].code` of a distribution error body (`MANIFEST_UNKNOWN`, `TOOMANYREQUESTS`…). */
export function registryCodeOf(body: Buffer): { registryCode?: string } {
  try {
    const v = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown }[] };
    const c = v.errors?.[0]?.code;
    return typeof c === 'string' ? { registryCode: c } : {};
  } catch {
    return {};
  }
}

/** Docker Hub's rate-limit headers, for the details of a 429. */
export function rateLimitDetails(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  const rem = header(h, 'ratelimit-remaining');
  const lim = header(h, 'ratelimit-limit');
  if (rem !== null) out.rateLimitRemaining = rem;
  if (lim !== null) out.rateLimitLimit = lim;
  return out;
}

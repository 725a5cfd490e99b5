/**
 * The ping (docs/pull.md §1.3, §2.2): `GET /v2/` tells whether a host is a registry at all, which
 * scheme it speaks, and how it wants to be authenticated (its challenges). It is asked once per
 * endpoint per cache, so a pull of many blobs pays for it once. An endpoint with both schemes
 * (loopback or insecure) is asked over https first; a connection-level failure falls to http.
 */
import { AbortedError, NetworkError, RegistryError } from '../errors.js';
import { discard } from './body.js';
import { parseWwwAuthenticate, type Challenge } from './challenge.js';
import type { Retrier } from './retry.js';
import type { Transport } from './transport.js';
import type { Endpoint } from './types.js';

export interface PingResult {
  /** `scheme://host[:port]` actually spoken to. */
  base: string;
  scheme: 'http' | 'https';
  challenges: Challenge[];
}

/** What makes two endpoints' pings different (their TLS settings and schemes included). */
export function pingKey(ep: Endpoint): string {
  return `${ep.key}|${ep.host}|${ep.schemes.join(',')}|${ep.insecure}`;
}

/**
 * Pings in flight: how many callers still wait with a signal of their own, and the controller
 * that stops the ping once every one of them has given up. A ping is shared by every client of
 * one cache (concurrent pulls of one backend), so no single caller's signal may end it for all.
 */
interface Flight {
  waiters: number;
  ctl: AbortController;
}
const flights = new WeakMap<Promise<PingResult>, Flight>();

/** Waits for a shared ping as one caller: its abort ends its own wait, and the ping only with the last one. */
function waitFor(p: Promise<PingResult>, signal: AbortSignal | undefined): Promise<PingResult> {
  const f = flights.get(p);
  if (!f || !signal) {
    if (f) f.waiters = Number.POSITIVE_INFINITY; // a caller that never gives up keeps it going
    return p;
  }
  if (signal.aborted) return Promise.reject(new AbortedError(signal.reason));
  f.waiters++;
  return new Promise<PingResult>((resolve, reject) => {
    const onAbort = () => {
      if (--f.waiters === 0) f.ctl.abort(signal.reason);
      reject(new AbortedError(signal.reason));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export class Pinger {
  constructor(
    private readonly cache: Map<string, Promise<PingResult>>,
    private readonly transport: Transport,
    private readonly retrier: Retrier,
  ) {}

  /**
   * The endpoint's ping, from the cache or asked now (a failed ping is forgotten). `signal` ends
   * this caller's wait; the ping itself stops only when no caller is left waiting for it.
   */
  ping(ep: Endpoint, signal: AbortSignal | undefined): Promise<PingResult> {
    const key = pingKey(ep);
    let p = this.cache.get(key);
    if (!p || flights.get(p)?.ctl.signal.aborted) {
      const ctl = new AbortController();
      const flight = this.pingSchemes(ep, ctl.signal);
      flights.set(flight, { waiters: 0, ctl });
      this.cache.set(key, flight);
      flight.then(
        () => flights.delete(flight),
        () => {
          flights.delete(flight);
          if (this.cache.get(key) === flight) this.cache.delete(key);
        },
      );
      p = flight;
    }
    return waitFor(p, signal);
  }

  private async pingSchemes(ep: Endpoint, signal: AbortSignal | undefined): Promise<PingResult> {
    let lastErr: unknown;
    for (let i = 0; i < ep.schemes.length; i++) {
      const scheme = ep.schemes[i]!;
      const last = i === ep.schemes.length - 1;
      try {
        // Only the last scheme gets retries: an https that fails at once is someone speaking http.
        return await this.pingOnce(ep, scheme, last ? this.retrier.attempts : 1, signal);
      } catch (e) {
        lastErr = e;
        if (e instanceof AbortedError || last) throw e;
        // https failed at the TLS/connection level: the next scheme (http) is tried (§1.3).
        if (!(e instanceof NetworkError)) throw e;
      }
    }
    throw lastErr;
  }

  private async pingOnce(
    ep: Endpoint,
    scheme: 'http' | 'https',
    attempts: number,
    signal: AbortSignal | undefined,
  ): Promise<PingResult> {
    const base = `${scheme}://${ep.host}`;
    const res = await this.retrier.run(
      ep.key,
      `GET ${base}/v2/`,
      null,
      signal,
      () => this.transport.follow(ep, base, 'GET', `${base}/v2/`, {}, null, signal).then((r) => r.res),
      attempts,
    );
    const status = res.statusCode;
    const challenges = status === 401 ? parseWwwAuthenticate(res.headers['www-authenticate']) : [];
    await discard(res);
    if (status === 200 || status === 401) return { base, scheme, challenges };
    throw new RegistryError(
      ep.key,
      status,
      `${ep.source} is not an OCI distribution registry (GET /v2/ answered ${status})`,
    );
  }
}

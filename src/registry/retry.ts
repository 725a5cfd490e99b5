/**
 * Retries (docs/pull.md §4). Registries and the networks in front of them fail in passing —
 * resets, timeouts, 429 and 5xx — and a pull must ride that out without hammering the server:
 * network errors and 408/429/500/502/503/504 are retried with full-jitter backoff, a
 * `Retry-After` up to 60 s is honoured and a longer one fails at once, TLS errors never retry.
 * The decisions are pure functions; `Retrier` runs them around one request.
 */
import { AbortedError, MsbError, NetworkError, RegistryError, redactUrl, throwIfAborted } from '../errors.js';
import { sleep } from '../util/abort.js';
import { ERROR_BODY_MAX, header, rateLimitDetails, readSmallOrEmpty, registryCodeOf, type Resp } from './body.js';
import { describeNetworkError, errorCode, isRetryableNetworkError, isTlsError } from './http.js';
import type { RetryInfo } from './types.js';

/** Statuses worth another attempt. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
/** A longer Retry-After is not waited for: the request fails at once. */
export const RETRY_AFTER_MAX_MS = 60_000;

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

/**
 * What to do with a response (pure): `pass` it to the caller, `retry` it, or fail because the
 * server asked for too long a wait (`too-long`) or the attempts ran out (`exhausted`).
 * `attempt` counts from 1; `attempts` is the total allowed.
 */
export function statusDecision(
  status: number,
  retryAfterMs: number | null,
  attempt: number,
  attempts: number,
): 'pass' | 'retry' | 'too-long' | 'exhausted' {
  if (!RETRYABLE_STATUSES.has(status)) return 'pass';
  if (retryAfterMs !== null && retryAfterMs > RETRY_AFTER_MAX_MS) return 'too-long';
  return attempt < attempts ? 'retry' : 'exhausted';
}

/** Whether a network error (a thrown non-MsbError) gets another attempt (pure). */
export function retryNetworkError(e: unknown, attempt: number, attempts: number): boolean {
  return isRetryableNetworkError(e) && !isTlsError(e) && attempt < attempts;
}

export interface RetrierOptions {
  /** Attempts in all for one request (settings `pull.retries`, at least 1). */
  attempts: number;
  /** Delay before attempt `attempt + 1`; default `fullJitterBackoff`. */
  backoffMs?: ((attempt: number) => number) | undefined;
  /** Told about every wait (the `retry` progress event). */
  onRetry?: ((r: RetryInfo) => void) | undefined;
  /** Cleans reasons and descriptions of secrets. */
  scrub: (s: string) => string;
}

export class Retrier {
  readonly attempts: number;
  constructor(private readonly o: RetrierOptions) {
    this.attempts = o.attempts;
  }

  /** Waits before another attempt (`delayMs`, else the backoff), telling `onRetry` why. */
  async backoff(
    attempt: number,
    delayMs: number | null,
    reason: string,
    layerIndex: number | null,
    signal?: AbortSignal,
  ): Promise<void> {
    const d = delayMs ?? (this.o.backoffMs ?? fullJitterBackoff)(attempt);
    this.o.onRetry?.({ layerIndex, attempt, delayMs: d, reason: this.o.scrub(reason) });
    await sleep(d, signal);
  }

  /**
   * Runs `send` (one request) until it gives a response that is not to be retried, or fails:
   * NetworkError for a network error that is final, RegistryError for a retryable status that
   * ran out of attempts or came with too long a Retry-After. `registry` names the registry in errors.
   */
  async run(
    registry: string,
    what: string,
    layerIndex: number | null,
    signal: AbortSignal | undefined,
    send: () => Promise<Resp>,
    attempts: number = this.attempts,
  ): Promise<Resp> {
    const shown = redactUrl(what);
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      let res: Resp;
      try {
        res = await send();
      } catch (e) {
        if (e instanceof MsbError) throw e;
        if (signal?.aborted) throw new AbortedError(signal.reason);
        const desc = this.o.scrub(describeNetworkError(e));
        if (!retryNetworkError(e, attempt, attempts)) {
          throw new NetworkError(registry, `${shown}: ${desc}`, Object.assign(new Error(desc), { code: errorCode(e) }));
        }
        await this.backoff(attempt, null, `${shown}: ${desc}`, layerIndex, signal);
        continue;
      }
      const s = res.statusCode;
      const ra = RETRYABLE_STATUSES.has(s) ? parseRetryAfter(header(res.headers, 'retry-after')) : null;
      const decision = statusDecision(s, ra, attempt, attempts);
      if (decision === 'pass') return res;
      const body = await readSmallOrEmpty(res, ERROR_BODY_MAX);
      if (decision === 'retry') {
        await this.backoff(attempt, ra, `${shown}: HTTP ${s}`, layerIndex, signal);
        continue;
      }
      const details = { ...rateLimitDetails(res.headers), ...registryCodeOf(body) };
      if (decision === 'too-long') {
        const msg = `${shown}: HTTP ${s} with Retry-After ${Math.round(ra! / 1000)} s (over 60 s)`;
        throw new RegistryError(registry, s, msg, { retryAfterMs: ra!, ...details });
      }
      throw new RegistryError(registry, s, `${shown}: HTTP ${s} after ${attempts} attempts`, {
        ...(ra !== null ? { retryAfterMs: ra } : {}),
        ...details,
      });
    }
  }
}

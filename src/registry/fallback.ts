/**
 * Mirror fallback (docs/pull.md §12): an operation is tried on each endpoint in turn — the
 * mirrors of src/registry/mirrors.ts, then the origin — and a mirror is abandoned for the next
 * one only for failures another endpoint might not have (it is down, lacks the content, refuses
 * us, or served bytes that do not verify). Anything else (a bad manifest, a limit, an abort) is
 * the same everywhere and is thrown at once. The origin's error is the one the caller sees.
 */
import { DigestMismatchError, NetworkError, RegistryAuthError, RegistryError } from '../errors.js';
import type { Endpoint } from './types.js';

/** Whether a failure on one endpoint is a reason to try the next (pure). */
export function isFallbackable(e: unknown): boolean {
  return (
    e instanceof NetworkError ||
    e instanceof RegistryAuthError ||
    e instanceof DigestMismatchError ||
    (e instanceof RegistryError && (e.status === 404 || e.status >= 500 || e.status === 429 || e.status === 0))
  );
}

/**
 * Runs `op` against `eps` in order from `start` (clamped to the last one), warning
 * `MIRROR_FALLBACK` through `warn` each time one is abandoned. `domain` and `what` name the
 * operation in the error when there is no endpoint at all.
 */
export async function withFallback<T>(
  eps: Endpoint[],
  domain: string,
  what: string,
  start: number,
  op: (ep: Endpoint, index: number) => Promise<T>,
  warn: (code: string, message: string) => void,
): Promise<T> {
  let lastErr: unknown = new RegistryError(domain, 0, `${what}: no endpoint left to try`);
  for (let i = Math.min(start, eps.length - 1); i < eps.length; i++) {
    const ep = eps[i]!;
    try {
      return await op(ep, i);
    } catch (e) {
      lastErr = e;
      if (i === eps.length - 1 || !isFallbackable(e)) throw e;
      warn('MIRROR_FALLBACK', `${what}: ${ep.source} failed (${(e as Error).message}); trying ${eps[i + 1]!.source}`);
    }
  }
  throw lastErr;
}

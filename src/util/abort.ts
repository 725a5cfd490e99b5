/** Waiting that honours an AbortSignal. */
import { AbortedError } from '../errors.js';

/** Resolves after `ms`, or rejects with AbortedError when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError(signal.reason));
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError(signal!.reason));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Long CPU work in slices: runs `step(i)` for i in [0, count), yielding to the event loop every
 * `sliceMs` so that a signal handler (SIGINT/SIGTERM) can run, and rejecting with AbortedError
 * once `signal` has fired. Without a signal it still yields, so the process stays responsive.
 */
export async function forEachSliced(
  count: number,
  step: (i: number) => void,
  signal?: AbortSignal,
  sliceMs = 20,
): Promise<void> {
  let deadline = Date.now() + sliceMs;
  for (let i = 0; i < count; i++) {
    step(i);
    if ((i & 15) === 15 && Date.now() >= deadline) {
      await new Promise<void>((r) => setImmediate(r));
      if (signal?.aborted) throw new AbortedError(signal.reason);
      deadline = Date.now() + sliceMs;
    }
  }
  if (signal?.aborted) throw new AbortedError(signal.reason);
}

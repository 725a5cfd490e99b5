/**
 * The cache's striped locks (docs/storage.md §2, §6.1): one lock file per kind and key stripe, taken
 * with the kernel flock primitive of util/flock.ts. Lock order: gc → ref → layer → image; hold at
 * most one `layer` lock at a time.
 */
import { acquireFileLock, LOCK_BUSY, type LockBusy } from '../util/flock.js';

export { LOCK_BUSY, type LockBusy };
import type { CachePaths, LockKind } from './paths.js';

/**
 * Runs `fn` under the lock of `key` (docs/storage.md §2 "the lock of X" = the lock file of X's
 * stripe): `ref` → canonical reference, `layer` → diff_id, `image` → manifest digest, `gc` → no key.
 * With `tryOnly`, a busy lock resolves to `LOCK_BUSY` without running `fn`.
 */
export async function withLock<T>(
  store: { readonly paths: CachePaths },
  kind: LockKind,
  key: string | null,
  fn: () => Promise<T> | T,
  opts: { signal?: AbortSignal | undefined; tryOnly: true },
): Promise<T | LockBusy>;
export async function withLock<T>(
  store: { readonly paths: CachePaths },
  kind: LockKind,
  key: string | null,
  fn: () => Promise<T> | T,
  opts?: { signal?: AbortSignal | undefined; tryOnly?: false },
): Promise<T>;
export async function withLock<T>(
  store: { readonly paths: CachePaths },
  kind: LockKind,
  key: string | null,
  fn: () => Promise<T> | T,
  opts: { signal?: AbortSignal | undefined; tryOnly?: boolean } = {},
): Promise<T | LockBusy> {
  const path = store.paths.lock(kind, key ?? undefined);
  const lock = opts.tryOnly
    ? await acquireFileLock(path, { signal: opts.signal, tryOnly: true })
    : await acquireFileLock(path, { signal: opts.signal });
  if (lock === LOCK_BUSY) return LOCK_BUSY;
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

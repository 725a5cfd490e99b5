/**
 * Kernel advisory locks (docs/storage.md §6.1): `flock(2)` on zero-length lock files that are never
 * deleted, so every process locks the same inode and a dead process never blocks anyone.
 *
 * - Files are opened `O_RDONLY|O_CREAT|O_NOFOLLOW|O_CLOEXEC`, mode 0644: a symlink planted in the
 *   lock directory fails the open, and no child process (credential helper) inherits a lock.
 * - Only `flock(fd, LOCK_EX|LOCK_NB)` is ever called: waiters poll with a 5 → 250 ms backoff, so
 *   neither the event loop nor a libuv thread ever blocks in `flock`, and every wait honours an
 *   AbortSignal.
 * - In one process, waiters for one lock path queue on an in-process FIFO in front of the
 *   `flock`, and only the current owner holds a descriptor (one fd per lock path per process).
 *   That queue is the only in-process registry shared between backends: two backends on one home
 *   serialize correctly, two homes never share a path.
 */
import { closeSync, constants as C, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { AbortedError, throwIfAborted, toIoError } from '../errors.js';
import { sleep } from './abort.js';
import { ensureDirSync } from './fs.js';

const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as { flockSync(fd: number, flags: 'exnb' | 'un'): void };

/** Linux O_CLOEXEC (Node does not export it; libuv sets it too, this keeps it explicit). */
const O_CLOEXEC = process.platform === 'linux' ? 0o2000000 : 0;
const OPEN_FLAGS = C.O_RDONLY | C.O_CREAT | C.O_NOFOLLOW | O_CLOEXEC;

export const LOCK_POLL_MIN_MS = 5;
export const LOCK_POLL_MAX_MS = 250;

/** Returned by a `tryOnly` acquisition whose lock is held elsewhere. */
export const LOCK_BUSY: unique symbol = Symbol('LOCK_BUSY');
export type LockBusy = typeof LOCK_BUSY;

export interface HeldLock {
  readonly path: string;
  /** Closes the descriptor (which drops the flock) and hands the path to the next in-process waiter. */
  release(): void;
}

interface PathQueue {
  held: boolean;
  waiters: (() => void)[];
}
const queues = new Map<string, PathQueue>();

function enterQueue(path: string, tryOnly: boolean, signal?: AbortSignal): Promise<boolean> {
  let q = queues.get(path);
  if (!q) {
    q = { held: false, waiters: [] };
    queues.set(path, q);
  }
  if (!q.held) {
    q.held = true;
    return Promise.resolve(true);
  }
  if (tryOnly) return Promise.resolve(false);
  const queue = q;
  return new Promise((resolve, reject) => {
    const wake = () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    };
    const onAbort = () => {
      const i = queue.waiters.indexOf(wake);
      if (i >= 0) queue.waiters.splice(i, 1);
      reject(new AbortedError(signal!.reason));
    };
    if (signal?.aborted) {
      reject(new AbortedError(signal.reason));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    queue.waiters.push(wake);
  });
}

function leaveQueue(path: string): void {
  const q = queues.get(path);
  if (!q) return;
  const next = q.waiters.shift();
  if (next)
    next(); // ownership passes directly: `held` stays true
  else {
    q.held = false;
    queues.delete(path);
  }
}

function openLockFile(path: string): number {
  try {
    return openSync(path, OPEN_FLAGS, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(err, path);
    try {
      ensureDirSync(dirname(path), 0o700);
      return openSync(path, OPEN_FLAGS, 0o644);
    } catch (err2) {
      throw toIoError(err2, path);
    }
  }
}

function tryFlock(fd: number, path: string): boolean {
  try {
    fsExt.flockSync(fd, 'exnb');
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
    throw toIoError(err, path);
  }
}

/**
 * Takes the exclusive lock on `path`. Waits (abortably) unless `tryOnly`, in which case a lock
 * held by this or another process yields `LOCK_BUSY` at once.
 */
export async function acquireFileLock(
  path: string,
  opts: { signal?: AbortSignal | undefined; tryOnly: true },
): Promise<HeldLock | LockBusy>;
export async function acquireFileLock(
  path: string,
  opts?: { signal?: AbortSignal | undefined; tryOnly?: false },
): Promise<HeldLock>;
export async function acquireFileLock(
  path: string,
  opts: { signal?: AbortSignal | undefined; tryOnly?: boolean } = {},
): Promise<HeldLock | LockBusy> {
  const { signal, tryOnly = false } = opts;
  throwIfAborted(signal);
  if (!(await enterQueue(path, tryOnly, signal))) return LOCK_BUSY;
  let fd = -1;
  try {
    fd = openLockFile(path);
    let delay = LOCK_POLL_MIN_MS;
    while (!tryFlock(fd, path)) {
      if (tryOnly) {
        closeSync(fd);
        fd = -1;
        leaveQueue(path);
        return LOCK_BUSY;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, LOCK_POLL_MAX_MS);
    }
  } catch (err) {
    if (fd >= 0)
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    leaveQueue(path);
    throw err;
  }
  let released = false;
  const heldFd = fd;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      try {
        closeSync(heldFd);
      } finally {
        leaveQueue(path);
      }
    },
  };
}

/** Runs `fn` while holding the lock on `path`; always releases, even when `fn` throws. */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T> | T,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<T> {
  const lock = await acquireFileLock(path, { signal: opts.signal });
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/**
 * Pull progress events (docs/api.md §2.6, docs/pull.md §10): the `PullEvent` union, the throttled emitter
 * that stamps `elapsedMs` and delivers synchronously to `onProgress`, and the `PullOperation`
 * queue whose async iterator coalesces only *pending* `…Progress` events of one layer and kind.
 */

import type { Platform } from '../oci/platform.js';
import { markCallerError } from '../errors.js';

/** Event payloads without `elapsedMs`; the emitter stamps it. */
export type PullEventBody =
  | { type: 'resolving'; reference: string }
  | {
      type: 'resolved';
      reference: string;
      manifestDigest: string;
      indexDigest: string | null;
      platform: Platform;
      layerCount: number;
      totalDownloadBytes: number | null;
      cached: boolean;
      /** The endpoint that answered the manifest request (a mirror URL without userinfo, or the registry domain); null when nothing was asked. */
      source: string | null;
    }
  | { type: 'layerDownloadStarted'; layerIndex: number; digest: string; totalBytes: number | null; resumeFrom: number }
  | {
      type: 'layerDownloadProgress';
      layerIndex: number;
      digest: string;
      downloadedBytes: number;
      totalBytes: number | null;
    }
  | { type: 'layerDownloadComplete'; layerIndex: number; digest: string; downloadedBytes: number }
  | { type: 'layerMaterializeStarted'; layerIndex: number; diffId: string }
  | { type: 'layerMaterializeProgress'; layerIndex: number; diffId: string; tarBytes: number; entries: number }
  | { type: 'layerMaterializeComplete'; layerIndex: number; diffId: string; erofsSizeBytes: number; reused: boolean }
  | { type: 'retry'; layerIndex: number | null; attempt: number; delayMs: number; reason: string }
  | { type: 'warning'; code: string; message: string }
  | { type: 'stitchStarted'; layerCount: number }
  | { type: 'stitchComplete'; fsmetaSizeBytes: number; reused: boolean }
  | { type: 'complete'; reference: string; manifestDigest: string; cached: boolean; layerCount: number };

type WithElapsed<T> = T extends unknown ? T & { elapsedMs: number } : never;
/** Every event carries `type` and `elapsedMs` (ms since the operation started). */
export type PullEvent = WithElapsed<PullEventBody>;

export type ProgressKind = 'download' | 'materialize';

/** docs/pull.md §10 rate: at most every 100 ms AND only after ≥ 256 KiB more progress. */
export const PROGRESS_MIN_INTERVAL_MS = 100;
export const PROGRESS_MIN_BYTES = 256 * 1024;

interface ThrottleState {
  lastEmitAt: number;
  lastEmitValue: number;
  /** The newest suppressed event (cumulative counters), emitted at completion if still pending. */
  pending: PullEventBody | null;
  emittedAny: boolean;
}

function layerOf(e: PullEventBody): number | null {
  return 'layerIndex' in e && typeof e.layerIndex === 'number' ? e.layerIndex : null;
}

function progressKey(e: PullEventBody): string | null {
  if (e.type === 'layerDownloadProgress') return `d:${e.layerIndex}`;
  if (e.type === 'layerMaterializeProgress') return `m:${e.layerIndex}`;
  return null;
}

/**
 * The single place events are produced. `emit` delivers synchronously (in order) to every
 * listener; a listener that throws poisons the emitter: the error is remembered, `onListenerError`
 * is called once (the pull aborts on it) and no further events are delivered to that listener.
 */
export class PullEmitter {
  readonly startedAt: number;
  private readonly listeners: { fn: (e: PullEvent) => void; dead: boolean }[] = [];
  private readonly throttle = new Map<string, ThrottleState>();
  /** The first error thrown by `onProgress`; the pull rejects with exactly this value. */
  listenerError: { error: unknown } | null = null;
  onListenerError: ((error: unknown) => void) | null = null;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.startedAt = now();
  }

  addListener(fn: (e: PullEvent) => void): void {
    this.listeners.push({ fn, dead: false });
  }

  elapsedMs(): number {
    return Math.max(0, Math.round(this.now() - this.startedAt));
  }

  /** Delivers one event now, stamped with `elapsedMs`. Non-progress events reset nothing. */
  emit(body: PullEventBody): void {
    const ev = { ...body, elapsedMs: this.elapsedMs() } as PullEvent;
    for (const l of this.listeners) {
      if (l.dead) continue;
      try {
        l.fn(ev);
      } catch (error) {
        l.dead = true;
        if (!this.listenerError) {
          markCallerError(error); // returned to the caller unchanged (not wrapped as INTERNAL)
          this.listenerError = { error };
          this.onListenerError?.(error);
        }
      }
    }
  }

  /**
   * Throttled `…Progress`: emitted only when ≥ 100 ms passed AND the counter grew ≥ 256 KiB since
   * the last emitted one for this layer and kind. Otherwise remembered for `flushProgress`.
   */
  progress(body: Extract<PullEventBody, { type: 'layerDownloadProgress' | 'layerMaterializeProgress' }>): void {
    const key = progressKey(body)!;
    const value = body.type === 'layerDownloadProgress' ? body.downloadedBytes : body.tarBytes;
    let st = this.throttle.get(key);
    if (!st) {
      st = { lastEmitAt: -Infinity, lastEmitValue: 0, pending: null, emittedAny: false };
      this.throttle.set(key, st);
    }
    const t = this.now();
    if (t - st.lastEmitAt >= PROGRESS_MIN_INTERVAL_MS && value - st.lastEmitValue >= PROGRESS_MIN_BYTES) {
      st.lastEmitAt = t;
      st.lastEmitValue = value;
      st.pending = null;
      st.emittedAny = true;
      this.emit(body);
    } else {
      st.pending = body;
    }
  }

  /**
   * The "one more at completion": emits the newest suppressed progress of this layer and kind,
   * or `final` when none was ever emitted, so the last progress value equals the total.
   */
  flushProgress(
    layerIndex: number,
    kind: ProgressKind,
    final?: Extract<PullEventBody, { type: 'layerDownloadProgress' | 'layerMaterializeProgress' }>,
  ): void {
    const key = `${kind === 'download' ? 'd' : 'm'}:${layerIndex}`;
    const st = this.throttle.get(key);
    const last = final ?? st?.pending ?? null;
    if (last) {
      const value =
        last.type === 'layerDownloadProgress'
          ? last.downloadedBytes
          : last.type === 'layerMaterializeProgress'
            ? last.tarBytes
            : 0;
      if (!st?.emittedAny || value !== st.lastEmitValue) this.emit(last);
    }
    this.throttle.delete(key);
  }

  /** A new `…Started` for a layer (first start or restart): counters start over. */
  resetProgress(layerIndex: number, kind: ProgressKind): void {
    this.throttle.delete(`${kind === 'download' ? 'd' : 'm'}:${layerIndex}`);
  }
}

interface QueueItem {
  ev: PullEvent;
  key: string | null;
}

/**
 * Unbounded FIFO feeding `PullOperation`'s async iterator (docs/pull.md §10 "never silently dropped").
 * A `…Progress` event replaces, in place, a still-pending progress event of the same layer and
 * kind, unless any other event of that layer was queued after it (then the new one is appended:
 * coalescing never reorders a progress event across a state change of its layer).
 */
export class EventQueue implements AsyncIterable<PullEvent> {
  private items: (QueueItem | undefined)[] = [];
  private head = 0;
  private readonly pendingProgress = new Map<string, QueueItem>();
  private waiters: (() => void)[] = [];
  private closed = false;

  push(ev: PullEvent): void {
    if (this.closed) return;
    const key = progressKey(ev);
    if (key) {
      const prev = this.pendingProgress.get(key);
      if (prev) {
        prev.ev = ev;
      } else {
        const item = { ev, key };
        this.items.push(item);
        this.pendingProgress.set(key, item);
      }
    } else {
      const layer = layerOf(ev);
      // A state change of this layer is a barrier: later progress must queue after it.
      if (layer !== null) {
        this.pendingProgress.delete(`d:${layer}`);
        this.pendingProgress.delete(`m:${layer}`);
      }
      this.items.push({ ev, key: null });
    }
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  get size(): number {
    return this.items.length - this.head;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private shift(): PullEvent | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.items[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (item.key && this.pendingProgress.get(item.key) === item) this.pendingProgress.delete(item.key);
    return item.ev;
  }

  async next(): Promise<IteratorResult<PullEvent>> {
    for (;;) {
      const ev = this.shift();
      if (ev) return { value: ev, done: false };
      if (this.closed) return { value: undefined, done: true };
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<PullEvent> {
    return {
      next: () => this.next(),
      // Breaking out of `for await` just stops reading; the pull itself goes on.
      return: async () => ({ value: undefined, done: true }),
    };
  }
}

/** What `pullWithProgress` returns (docs/api.md §2.6). */
export interface PullOperationLike<R> extends AsyncIterable<PullEvent> {
  readonly result: Promise<R>;
  abort(reason?: unknown): void;
}

/**
 * An operation's own abort controller, linked to the caller's `outer` signal and, when given, to
 * a throwing listener of `emitter` (the operation then rejects with that error). `dispose()`
 * unhooks it from `outer` once the operation settled.
 */
export function linkedAbort(
  outer: AbortSignal | undefined,
  emitter?: PullEmitter,
): { signal: AbortSignal; abort(reason?: unknown): void; dispose(): void } {
  const ac = new AbortController();
  const onOuter = () => ac.abort(outer!.reason);
  if (outer?.aborted) ac.abort(outer.reason);
  else outer?.addEventListener('abort', onOuter, { once: true });
  if (emitter) emitter.onListenerError = (e) => ac.abort(e);
  return {
    signal: ac.signal,
    abort: (reason) => ac.abort(reason),
    dispose: () => outer?.removeEventListener('abort', onOuter),
  };
}

/**
 * Builds a PullOperation around `run(signal, emitterListener)`: events flow into an unbounded
 * queue; the iterator ends normally when the run settles (successfully or not); `result` has an
 * internal no-op rejection handler so a failed pull never raises `unhandledRejection`.
 */
export function makeOperation<R>(
  outerSignal: AbortSignal | undefined,
  run: (signal: AbortSignal, onEvent: (e: PullEvent) => void) => Promise<R>,
): PullOperationLike<R> {
  const ac = linkedAbort(outerSignal);
  const queue = new EventQueue();
  const result = (async () => {
    // Start on the next tick so the caller can attach its iterator first; nothing is lost anyway.
    await Promise.resolve();
    return run(ac.signal, (e) => queue.push(e));
  })().finally(() => {
    ac.dispose();
    queue.close();
  });
  result.catch(() => {});
  return {
    result,
    abort(reason?: unknown) {
      ac.abort(reason);
    },
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
  };
}

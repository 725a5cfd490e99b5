/**
 * Where the cache stands against its size budget (docs/storage.md §11). The watermarks are percent
 * of the file system in use (kubelet's image GC: `100 − available × 100 / size`, reserved blocks
 * counting as used); `cache.max_bytes` bounds the cache's own allocated bytes. Both are expressed as
 * cache sizes — the high mark is the cache size at which eviction starts, the low mark the size it
 * evicts down to — so one rule covers either setting and both together (the smaller mark wins).
 */
import { promises as fsp } from 'node:fs';
import { toIoError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import type { Store } from './store.js';
import type { BudgetStatus } from './types.js';

export interface FsUsage {
  sizeBytes: number;
  availableBytes: number;
}

/** True when a budget is set. */
export function budgetConfigured(c: Settings['cache']): boolean {
  return c.maxBytes !== null || c.highWatermark !== null;
}

/** The status for a cache of `cacheBytes` on a file system `fs` (pure). */
export function computeBudget(c: Settings['cache'], cacheBytes: number, fs: FsUsage | null): BudgetStatus {
  const out: BudgetStatus = {
    configured: budgetConfigured(c),
    maxBytes: c.maxBytes,
    highWatermark: c.highWatermark,
    lowWatermark: c.lowWatermark,
    cacheBytes,
    filesystem: null,
    highMarkBytes: null,
    lowMarkBytes: null,
    overBytes: 0,
    headroomBytes: null,
    toFreeBytes: 0,
  };
  if (!out.configured) return out;
  let high = c.maxBytes ?? Number.POSITIVE_INFINITY;
  let low = high;
  if (c.highWatermark !== null && fs) {
    const used = fs.sizeBytes - fs.availableBytes;
    out.filesystem = {
      sizeBytes: fs.sizeBytes,
      availableBytes: fs.availableBytes,
      usedPercent: fs.sizeBytes > 0 ? Math.round((used * 10000) / fs.sizeBytes) / 100 : 0,
    };
    // The rest of the file system stays as it is: the cache may grow by (mark − used).
    const asCache = (pct: number) => Math.max(0, Math.floor(cacheBytes + (pct / 100) * fs.sizeBytes - used));
    high = Math.min(high, asCache(c.highWatermark));
    low = Math.min(low, asCache(c.lowWatermark ?? c.highWatermark));
  }
  out.highMarkBytes = high;
  out.lowMarkBytes = Math.min(low, high);
  out.headroomBytes = high - cacheBytes;
  out.overBytes = Math.max(0, cacheBytes - high);
  out.toFreeBytes = out.overBytes > 0 ? cacheBytes - out.lowMarkBytes : 0;
  return out;
}

/** statfs of the cache directory. */
export async function fsUsage(path: string): Promise<FsUsage> {
  try {
    const s = await fsp.statfs(path);
    return { sizeBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize };
  } catch (err) {
    throw toIoError(err, path);
  }
}

/** The status of an open cache whose size (`cacheBytes`) was just measured. */
export async function budgetStatus(store: Store, cacheBytes: number): Promise<BudgetStatus> {
  const c = store.settings.cache;
  const fs = c.highWatermark !== null ? await fsUsage(store.cacheDir) : null;
  return computeBudget(c, cacheBytes, fs);
}

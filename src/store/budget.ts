/**
 * The size budget's eviction (docs/storage.md §11), run after each successful pull or load and by
 * `prune({budget: true})`. Under `locks/gc.lock`: measure the cache (usage.ts), compare it with the
 * budget (budget-status.ts), plan which images go (`planEviction`, the pure rule in gc.ts), and
 * remove them with prune's own steps — the refs of exactly the planned images (each only if unused
 * since the plan), then everything the GC rules free — so eviction deletes under the same locks,
 * re-checks and leases as prune, and never touches what a sandbox, snapshot or running operation
 * holds. After a pull the GC lock is only tried: another prune or eviction already running is
 * enough, and a pull never waits for one.
 */
import { acquireFileLock, LOCK_BUSY } from '../util/flock.js';
import { budgetConfigured, budgetStatus } from './budget-status.js';
import { planEviction } from './gc.js';
import { findStaleLeases } from './lease.js';
import { emptyPruneReport, gcSnapshot, pruneDryRun, type ResolvedPrune } from './prune.js';
import { pruneLocked } from './prune-steps.js';
import type { Store } from './store.js';
import type { BudgetReport, ImagePruneReport } from './types.js';
import { measureCache, readUsageSnapshot } from './usage.js';

export interface BudgetRunOptions {
  dryRun?: boolean;
  /** 'wait' (prune --budget) or 'try' (after a pull or load: skip when a prune is running). */
  lock: 'wait' | 'try';
  tempGraceMs: number;
  signal?: AbortSignal | undefined;
  /** Called when pinned or in-use data alone keeps the cache above its budget. */
  onWarning?: (code: string, message: string) => void;
}

/**
 * After a successful pull or load (its lease still holds what it just published): enforces the
 * budget without waiting for the GC lock; never fails the operation (a failure is a warning).
 */
export async function budgetAfterWrite(store: Store, warn: (code: string, message: string) => void): Promise<void> {
  if (!budgetConfigured(store.settings.cache)) return;
  try {
    await enforceBudget(store, { lock: 'try', tempGraceMs: store.tempGraceMs, onWarning: warn });
  } catch (err) {
    warn('BUDGET_FAILED', `enforcing the cache budget failed: ${(err as Error).message}`);
  }
}

/**
 * Enforces the budget (or predicts it, `dryRun`); null when the GC lock is busy (lock 'try'). Without
 * a budget nothing is evicted and the report's `budget` says so.
 */
export async function enforceBudget(store: Store, o: BudgetRunOptions): Promise<ImagePruneReport | null> {
  if (o.dryRun || !budgetConfigured(store.settings.cache)) return evict(store, o);
  const path = store.paths.lock('gc');
  const gc =
    o.lock === 'try'
      ? await acquireFileLock(path, { signal: o.signal, tryOnly: true })
      : await acquireFileLock(path, { signal: o.signal });
  if (gc === LOCK_BUSY) return null;
  try {
    return await evict(store, o);
  } finally {
    gc.release();
  }
}

async function evict(store: Store, o: BudgetRunOptions): Promise<ImagePruneReport> {
  const files = await measureCache(store, await readUsageSnapshot(store));
  const status = await budgetStatus(store, files.total);
  const now = Date.now();
  const stale = await findStaleLeases(store.index, { now, signal: o.signal });
  const s = await store.index.read(() => gcSnapshot(store.index, now, stale), { signal: o.signal });
  const freed = (p: string) => files.freed.get(p) ?? 0;
  const plan = planEviction(
    s,
    {
      manifest: (d) => freed(store.paths.fsmeta(d)) + freed(store.paths.vmdk(d)),
      layer: (d) => freed(store.paths.layer(d)),
    },
    status.toFreeBytes,
  );
  const budget: BudgetReport = { ...status, evicted: [], pinnedBytes: plan.heldBytes, enough: true };
  if (!status.configured || status.toFreeBytes <= 0) return { ...emptyPruneReport(o.dryRun === true), budget };
  budget.enough = plan.enough;
  const resolved: ResolvedPrune = {
    dryRun: o.dryRun === true,
    filter: {
      patterns: null,
      usedBefore: null,
      references: new Map(plan.refs.map((r) => [r.reference, r.lastUsedAt])),
    },
    restricted: false,
    strays: false,
    tempGraceMs: o.tempGraceMs,
    signal: o.signal,
  };
  const report = o.dryRun ? await pruneDryRun(store, resolved) : await pruneLocked(store, resolved);
  budget.evicted = report.removed.references;
  if (!plan.enough)
    o.onWarning?.(
      'BUDGET_EXCEEDED',
      `the cache is ${status.overBytes} bytes over its budget and images in use (pinned by a sandbox or snapshot, ` +
        `or held by a running operation) hold ${plan.heldBytes} bytes: evicting everything else is not enough`,
    );
  return { ...report, budget };
}

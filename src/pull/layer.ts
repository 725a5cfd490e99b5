/**
 * Layers of one pull (docs/pull.md §7 Dedup/Concurrency, §8 step 5, docs/storage.md §4–§6):
 *
 * - one task per DISTINCT diff_id (a diff_id repeated in the manifest is processed once; later
 *   positions get `layerMaterializeComplete{reused:true}`), at most `concurrency` at a time;
 * - each task, under the layer lock of its diff_id (its diff_id is already a lease item): re-check
 *   the cache (row + file, docs/storage.md §5) → reuse; otherwise lease the blob and the candidate,
 *   download + convert in one pass (blob-pipeline.ts), publish the candidate (rename; losing to a
 *   valid existing file counts as success), then upsert its `layer` row in its own transaction;
 * - one failing task aborts the others; the first error is thrown after every task settled.
 *
 * Across processes the lock + re-check make concurrent pullers converge on one copy: the second
 * one waits for the lock, then finds the published file and its row.
 */
import { AbortedError, MsbError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { Lease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { upsertLayerRow } from '../store/publish.js';
import type { DirNode } from '../erofs/tree.js';
import type { Limits } from '../limits.js';
import {
  downloadAndConvert,
  unlinkQuiet,
  type BlobDescriptor,
  type BlobSource,
  type ConverterDeps,
} from './blob-pipeline.js';
import { checkLayer, publishLayerCandidate } from '../store/artifacts.js';
import type { PullHookPoint } from './deps.js';
import type { PullEmitter } from './events.js';
import { phaseEnd, phaseStart } from '../util/profile.js';

export interface LayerPosition {
  position: number;
  diffId: string;
  blob: BlobDescriptor;
}

export interface LayerOutcome {
  diffId: string;
  /** Length of the layer file (a multiple of 4096). */
  sizeBytes: number;
  /** In-memory tree when this pull converted it (reused layers are read back at stitch time). */
  root: DirNode | null;
  downloaded: boolean;
  materialized: boolean;
}

export interface LayerContext {
  backend: StoreOpener;
  store: Store;
  lease: Lease;
  emitter: PullEmitter;
  signal: AbortSignal;
  force: boolean;
  /** diff_ids converted again and renamed over a file that passes the checks (verify --repair). */
  refetch?: ReadonlySet<string>;
  retries: number;
  concurrency: number;
  deps: ConverterDeps;
  limits: Limits;
  /** The blob source for one descriptor (registry client, mirrors and auth behind it). */
  sourceFor(blob: BlobDescriptor, layerIndex: number): BlobSource;
  warn(code: string, message: string): void;
  /** Test hook: awaited at named points (crash-injection tests). */
  hook?: (point: PullHookPoint) => void | Promise<void>;
}

/** The outcome of a layer already in the cache (`sizeBytes` of its file), with its event. */
function reused(ctx: LayerContext, p: LayerPosition, sizeBytes: number): LayerOutcome {
  ctx.emitter.emit({
    type: 'layerMaterializeComplete',
    layerIndex: p.position,
    diffId: p.diffId,
    erofsSizeBytes: sizeBytes,
    reused: true,
  });
  return { diffId: p.diffId, sizeBytes, root: null, downloaded: false, materialized: false };
}

/** Whether this layer is converted again even when its file passes the checks. */
function forced(ctx: LayerContext, diffId: string): boolean {
  return ctx.force || (ctx.refetch?.has(diffId) ?? false);
}

/** Converts one distinct diff_id (first position `p`) under its layer lock. */
async function runLayer(ctx: LayerContext, p: LayerPosition, signal: AbortSignal): Promise<LayerOutcome> {
  const { store } = ctx;
  const force = forced(ctx, p.diffId);
  return withLock(
    store,
    'layer',
    p.diffId,
    async (): Promise<LayerOutcome> => {
      if (signal.aborted) throw new AbortedError(signal.reason);
      const check = await checkLayer(store, p.diffId);
      if (check.valid && !force) return reused(ctx, p, check.sizeBytes);
      if (!check.valid && check.orphan && !force) {
        // A file published by a process that died before its row (docs/storage.md §9): adopt it.
        const sb = check.orphan;
        await upsertLayerRow(
          ctx.store,
          { diffId: p.diffId, erofsSizeBytes: sb.length, inodes: Number(sb.inos), blocks: sb.blocks },
          { signal },
        );
        return reused(ctx, p, sb.length);
      }
      if (!check.valid && (check.fileExists || check.row)) {
        ctx.warn('ARTIFACT_REBUILT', `layer ${p.diffId} is invalid (${check.reason}); fetching it again`);
      }
      return fetchLayer(ctx, p, signal);
    },
    { signal },
  ) as Promise<LayerOutcome>; // never LOCK_BUSY: not tryOnly
}

/** Under the layer lock: lease, download + convert in one pass, publish, then its row. */
async function fetchLayer(ctx: LayerContext, p: LayerPosition, signal: AbortSignal): Promise<LayerOutcome> {
  const { store, emitter } = ctx;
  await ctx.lease.addItem('blob', p.blob.digest);
  const cand = store.paths.tmp('layer', p.diffId);
  await ctx.lease.addItem('temp', cand.name);
  try {
    const r = await downloadAndConvert({
      layerIndex: p.position,
      blob: p.blob,
      diffId: p.diffId,
      partPath: store.paths.part(p.blob.digest),
      candidatePath: cand.path,
      source: ctx.sourceFor(p.blob, p.position),
      deps: ctx.deps,
      emitter,
      signal,
      retries: ctx.retries,
      limits: ctx.limits,
      onWarning: (code, message) => ctx.warn(code, message),
    });
    await ctx.hook?.('layer-converted');
    if (signal.aborted) throw new AbortedError(signal.reason);
    const tp = phaseStart();
    await publishLayerCandidate(cand.path, store.paths.layer(p.diffId), p.diffId, forced(ctx, p.diffId));
    await ctx.hook?.('layer-renamed');
    await upsertLayerRow(ctx.store, {
      diffId: p.diffId,
      erofsSizeBytes: r.sizeBytes,
      inodes: r.inodes,
      blocks: r.blocks,
      contentDigest: r.contentDigest,
    });
    phaseEnd('layer-publish', tp, p.position);
    emitter.emit({
      type: 'layerMaterializeComplete',
      layerIndex: p.position,
      diffId: p.diffId,
      erofsSizeBytes: r.sizeBytes,
      reused: false,
    });
    return {
      diffId: p.diffId,
      sizeBytes: r.sizeBytes,
      root: (r.root as DirNode | undefined) ?? null,
      downloaded: r.networkBytes > 0 || r.resumedFrom > 0,
      materialized: true,
    };
  } finally {
    await unlinkQuiet(cand.path);
  }
}

/**
 * Materializes every position: distinct diff_ids run under the concurrency limit, duplicates are
 * reported as reused once their first position is done. Resolves to one outcome per diff_id.
 */
export async function materializeLayers(
  ctx: LayerContext,
  positions: LayerPosition[],
): Promise<Map<string, LayerOutcome>> {
  const first = new Map<string, LayerPosition>();
  const later = new Map<string, LayerPosition[]>();
  for (const p of positions) {
    if (!first.has(p.diffId)) first.set(p.diffId, p);
    else later.set(p.diffId, [...(later.get(p.diffId) ?? []), p]);
  }
  const tasks = [...first.values()];
  const out = new Map<string, LayerOutcome>();
  const ac = new AbortController();
  const onOuter = () => ac.abort(ctx.signal.reason);
  if (ctx.signal.aborted) ac.abort(ctx.signal.reason);
  else ctx.signal.addEventListener('abort', onOuter, { once: true });
  let firstError: { error: unknown } | null = null;
  let next = 0;
  const worker = async () => {
    while (next < tasks.length && !ac.signal.aborted) {
      const t = tasks[next++]!;
      try {
        const o = await runLayer(ctx, t, ac.signal);
        out.set(t.diffId, o);
        for (const d of later.get(t.diffId) ?? []) {
          ctx.emitter.emit({
            type: 'layerMaterializeComplete',
            layerIndex: d.position,
            diffId: d.diffId,
            erofsSizeBytes: o.sizeBytes,
            reused: true,
          });
        }
      } catch (error) {
        // The first real failure wins; the AbortedErrors it causes in siblings are not reported.
        if (!firstError) {
          firstError = { error };
          ac.abort(error);
        }
      }
    }
  };
  try {
    const n = Math.max(1, Math.min(ctx.concurrency, tasks.length));
    await Promise.all(Array.from({ length: n }, worker));
  } finally {
    ctx.signal.removeEventListener('abort', onOuter);
  }
  if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
  if (firstError) {
    const e = (firstError as { error: unknown }).error;
    throw e instanceof MsbError || e instanceof Error ? e : new Error(String(e));
  }
  return out;
}

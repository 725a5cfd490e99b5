/**
 * `prune(options)` exactly as docs/storage.md §8, and its dry run. The real run (prune-steps.ts)
 * deletes under the same locks a pull takes (try-lock only, so an in-flight pull is never waited
 * on: busy items count in `skippedInUse`), re-checks every item inside its own transaction, and
 * records per-item errors instead of stopping. The dry run evaluates the same predicates (gc.ts) on
 * one read snapshot and measures would-be deletions with `lstat`; it takes no lock and touches no
 * lease.
 */
import { join } from 'node:path';
import { throwIfAborted } from '../errors.js';
import type { IndexDb } from '../catalog/db.js';
import { gcTables } from '../catalog/gc.js';
import { allPins, pinnedDigests } from '../catalog/pins.js';
import { familiarOf } from '../reference/reference.js';
import { acquireFileLock } from '../util/flock.js';
import { pinnedKept, planPrune, precomputeMatches, type GcState, type PrunePlan } from './gc.js';
import { findStaleLeases, liveLeaseItems } from './lease.js';
import { readMarker } from './marker.js';
import { Measures, predictUnlink, removeTreeMeasured } from './measure.js';
import { emptyPruneReport, type ResolvedPrune } from './prune-options.js';
import { itemError, pruneLocked, removeStrays } from './prune-steps.js';
import { artifactFiles, ORPHAN_DIRS, tempCandidates } from './strays.js';
import type { Store } from './store.js';
import type { ImagePruneReport } from './types.js';

export { emptyPruneReport, resolvePruneOptions, type ResolvedPrune } from './prune-options.js';

/** One consistent read of everything the GC predicates need. */
export function gcSnapshot(
  index: IndexDb,
  now: number,
  stale: Set<string>,
): GcState & { leasedBlobs: Set<string>; leasedTemps: Set<string>; pins: ReturnType<typeof allPins> } {
  const leased = liveLeaseItems(index, now, stale);
  return {
    ...gcTables(index),
    pins: allPins(index),
    pinned: pinnedDigests(index),
    leasedManifests: leased.manifest,
    leasedLayers: leased.layer,
    leasedBlobs: leased.blob,
    leasedTemps: leased.temp,
  };
}

/** The pinned images the run keeps, for the report (docs/api.md §2.5). */
function keptPinnedOf(
  s: ReturnType<typeof gcSnapshot>,
  filter: Parameters<typeof pinnedKept>[3],
  restricted: boolean,
): ReturnType<typeof pinnedKept> {
  const digestOf = new Map(s.manifests.map((x) => [x.id, x.digest]));
  const cached = new Set(digestOf.values());
  const refs = s.refs.map((r) => ({ ...r, digest: digestOf.get(r.manifestId)! }));
  return pinnedKept(refs, s.pins, (d) => cached.has(d), filter, restricted);
}

/** The dry run (also diskUsage().reclaimableBytes). `store` null = no index: nothing to prune. */
export async function pruneDryRun(store: Store | null, o: ResolvedPrune): Promise<ImagePruneReport> {
  const report = emptyPruneReport(true);
  if (!store) return report;
  const index = store.index;
  const now = Date.now();
  const stale = await findStaleLeases(index, { now, signal: o.signal });
  const s = await index.read(() => gcSnapshot(index, now, stale), { signal: o.signal });
  const filter = await precomputeMatches(
    o.filter,
    s.refs.map((r) => r.reference),
    o.signal,
  );
  const plan = planPrune(s, filter, o.restricted);
  report.keptPinned = keptPinnedOf(s, filter, o.restricted);
  const m = new Measures();
  report.imageRefsRemoved = plan.refs.length;
  report.removed.references = plan.refs.map((r) => familiarOf(r.reference));
  await predictArtifacts(store, plan, report, m, o.signal);
  if (o.strays) await predictStrays(store, s, now, o, report, m);
  report.bytesReclaimed = m.bytes;
  return report;
}

/** The dry run's steps 5–6: the planned manifests' fsmeta and VMDK, the planned layers. */
async function predictArtifacts(
  store: Store,
  plan: PrunePlan,
  report: ImagePruneReport,
  m: Measures,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const man of plan.manifests) {
    throwIfAborted(signal);
    report.manifestsRemoved++;
    report.removed.manifests.push(man.digest);
    try {
      const f = await predictUnlink(store.paths.fsmeta(man.digest));
      if (f.deleted) {
        report.fsmetaRemoved++;
        m.add(f.bytes);
      }
      const v = await predictUnlink(store.paths.vmdk(man.digest));
      if (v.deleted) {
        report.vmdkRemoved++;
        m.add(v.bytes);
      }
    } catch (err) {
      report.errors.push(itemError('manifest', man.digest, err)); // a damaged row: recorded, the run goes on
    }
  }
  for (const l of plan.layers) {
    throwIfAborted(signal);
    report.layersRemoved++;
    report.removed.layers.push(l.diffId);
    try {
      const r = await predictUnlink(store.paths.layer(l.diffId));
      if (r.deleted) m.add(r.bytes);
    } catch (err) {
      report.errors.push(itemError('layer', l.diffId, err));
    }
  }
}

/** The dry run's steps 7–8: temp files past the grace period, orphans. */
async function predictStrays(
  store: Store,
  s: ReturnType<typeof gcSnapshot>,
  now: number,
  o: ResolvedPrune,
  report: ImagePruneReport,
  m: Measures,
): Promise<void> {
  for (const t of await tempCandidates(store, now, o.tempGraceMs, s.leasedBlobs, s.leasedTemps)) {
    await removeTreeMeasured(t.path, m, true);
    report.tempRemoved++;
  }
  if (readMarker(store.cacheDir, store.index.indexId).kind !== 'ours') return;
  const rows = {
    layer: new Set(s.layers.map((l) => l.diffId)),
    manifest: new Set(s.manifests.map((x) => x.digest)),
  };
  const leased = { layer: s.leasedLayers, manifest: s.leasedManifests };
  for (const d of ORPHAN_DIRS) {
    for (const f of await artifactFiles(join(store.cacheDir, d.dir), d.ext)) {
      if (rows[d.table].has(f.digest) || leased[d.leaseKind].has(f.digest)) continue;
      const r = await predictUnlink(f.path);
      if (r.deleted) {
        report.orphansRemoved++;
        m.add(r.bytes);
      }
    }
  }
}

/** The real prune (docs/storage.md §8 steps 1–9): waits for `locks/gc.lock`, then prune-steps.ts. */
export async function pruneReal(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const gc = await acquireFileLock(store.paths.lock('gc'), { signal: o.signal }); // step 1
  try {
    return await pruneLocked(store, o);
  } finally {
    gc.release();
  }
}

/**
 * Steps 7–8 alone (temp files past the grace period, orphans), under `locks/gc.lock`: verify's
 * repair of the stray files it found (docs/storage.md §10.3).
 */
export async function pruneStrays(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const gc = await acquireFileLock(store.paths.lock('gc'), { signal: o.signal });
  try {
    return await removeStrays(store, o);
  } finally {
    gc.release();
  }
}

/**
 * The steps of a real prune (docs/storage.md §8 steps 2–8), run while the caller holds
 * `locks/gc.lock`: by `prune` (which waits for the lock) and by a budget eviction (§11, which only
 * tries it). Each item is deleted under the lock a pull takes (try-lock: busy items count in
 * `skippedInUse`), re-checked in its own transaction, and a failure is recorded, not thrown.
 */
import { join } from 'node:path';
import { MsbError, throwIfAborted, type ErrorCode } from '../errors.js';
import { layersWithoutUsers, manifestsWithoutRefs, refsWithDigest } from '../catalog/gc.js';
import { allPins, pinnedDigests } from '../catalog/pins.js';
import { countRefsOfManifest, deleteImageRef, manifestExists } from '../catalog/queries.js';
import { familiarOf } from '../reference/reference.js';
import { layerIsFree, manifestIsFree, pinnedKept, precomputeMatches, refIsCandidate } from './gc.js';
import { deleteStaleLeases, findStaleLeases, isLeased, liveLeaseItems } from './lease.js';
import { LOCK_BUSY, withLock } from './locks.js';
import { readMarker } from './marker.js';
import { Measures, removeTreeMeasured, unlinkMeasured } from './measure.js';
import { emptyPruneReport, type ResolvedPrune } from './prune-options.js';
import { deleteLayerRowIfFree, deleteManifestRowIfFree } from './reclaim.js';
import { artifactFiles, hasRow, ORPHAN_DIRS, tempCandidates } from './strays.js';
import type { Store } from './store.js';
import type { ImagePruneReport, PruneItemError } from './types.js';

export function itemError(kind: PruneItemError['kind'], item: string, err: unknown, path?: string): PruneItemError {
  const code: ErrorCode = err instanceof MsbError ? err.code : 'IO';
  const p = path ?? (err as { path?: unknown })?.path;
  return {
    kind,
    item,
    ...(typeof p === 'string' ? { path: p } : {}),
    code,
    message: (err as Error)?.message ?? String(err),
  };
}

/** State shared by the steps of one real prune. */
export interface PruneRun {
  store: Store;
  o: ResolvedPrune;
  report: ImagePruneReport;
  m: Measures;
  /** Stale lease ids found once at the start (a lease created later is never in it: it counts as live). */
  stale: Set<string>;
}

/** An abort stops the prune; any other failure of one item is recorded and the prune goes on. */
function record(run: PruneRun, kind: PruneItemError['kind'], item: string, err: unknown, path?: string): void {
  if (err instanceof MsbError && err.code === 'ABORTED') throw err;
  run.report.errors.push(itemError(kind, item, err, path));
}

/** Steps 2–8 of the real prune; the caller holds `locks/gc.lock` (step 1) and releases it. */
export async function pruneLocked(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const run: PruneRun = { store, o, report: emptyPruneReport(false), m: new Measures(), stale: new Set() };
  await reapStaleLeases(run);
  const lostLast = await untagRefs(run);
  const released = await deleteManifests(run, lostLast);
  await deleteLayers(run, released);
  if (o.strays) {
    await deleteTemp(run);
    await deleteOrphans(run);
  }
  run.report.bytesReclaimed = run.m.bytes;
  return run.report;
}

/** Steps 7–8 alone; the caller holds `locks/gc.lock`. */
export async function removeStrays(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const run: PruneRun = { store, o, report: emptyPruneReport(false), m: new Measures(), stale: new Set() };
  run.stale = await findStaleLeases(store.index, { signal: o.signal });
  await deleteTemp(run);
  await deleteOrphans(run);
  run.report.bytesReclaimed = run.m.bytes;
  return run.report;
}

/** Step 2: stale leases go; their ids are remembered for the re-checks below. */
async function reapStaleLeases(run: PruneRun): Promise<void> {
  const { index } = run.store;
  const signal = run.o.signal;
  try {
    await deleteStaleLeases(index, { signal });
  } catch (err) {
    record(run, 'lease', 'stale leases', err);
  }
  try {
    run.stale = await findStaleLeases(index, { signal });
  } catch (err) {
    if (err instanceof MsbError && err.code === 'ABORTED') throw err;
  }
}

/** Steps 3–4: one write transaction over the refs. Returns the manifests that lost their last ref. */
async function untagRefs(run: PruneRun): Promise<Set<number>> {
  const { index } = run.store;
  try {
    // Pattern matching runs ahead, sliced and abortable; the transaction only looks results up.
    const names = await index.read(() => refsWithDigest(index).map((x) => x.reference), { signal: run.o.signal });
    const filter = await precomputeMatches(run.o.filter, names, run.o.signal);
    const r = await index.write(
      () => {
        const leased = liveLeaseItems(index, Date.now(), run.stale);
        const pinned = pinnedDigests(index);
        const all = refsWithDigest(index);
        run.report.keptPinned = pinnedKept(
          all,
          allPins(index),
          (d) => manifestExists(index, d),
          filter,
          run.o.restricted,
        );
        const cands = all.filter((x) =>
          refIsCandidate(x, { pinned: pinned.has(x.digest), leased: leased.manifest.has(x.digest) }, filter),
        );
        for (const c of cands) deleteImageRef(index, c.id);
        const lost = new Set<number>();
        for (const c of cands) if (countRefsOfManifest(index, c.manifestId) === 0) lost.add(c.manifestId);
        return { cands, lost };
      },
      { signal: run.o.signal },
    );
    run.report.imageRefsRemoved = r.cands.length;
    run.report.removed.references = r.cands.map((c) => familiarOf(c.reference));
    return r.lost;
  } catch (err) {
    record(run, 'ref', '*', err);
    return new Set();
  }
}

/** Step 5: manifests the rule frees, each under a try-lock. Returns the diff_ids they released. */
async function deleteManifests(run: PruneRun, lostLast: Set<number>): Promise<Set<string>> {
  const { store, o, report } = run;
  const index = store.index;
  const released = new Set<string>();
  let manifests: { id: number; digest: string }[] = [];
  try {
    manifests = await index.read(
      () => {
        const leased = liveLeaseItems(index, Date.now(), run.stale);
        const pinned = pinnedDigests(index);
        return manifestsWithoutRefs(index).filter(
          (x) =>
            manifestIsFree({ refCount: 0, pinned: pinned.has(x.digest), leased: leased.manifest.has(x.digest) }) &&
            (!o.restricted || lostLast.has(x.id)),
        );
      },
      { signal: o.signal },
    );
  } catch (err) {
    record(run, 'manifest', '*', err);
  }
  for (const man of manifests) {
    throwIfAborted(o.signal);
    try {
      const res = await withLock(
        store,
        'image',
        man.digest,
        async () => {
          const diffIds = await deleteManifestRowIfFree(store, man.digest, run.stale, o.signal);
          if (!diffIds) return null;
          report.manifestsRemoved++;
          report.removed.manifests.push(man.digest);
          for (const [kind, path] of [
            ['fsmeta', store.paths.fsmeta(man.digest)],
            ['vmdk', store.paths.vmdk(man.digest)],
          ] as const) {
            try {
              const r = await unlinkMeasured(path);
              if (!r.deleted) continue;
              run.m.add(r.bytes);
              if (kind === 'fsmeta') report.fsmetaRemoved++;
              else report.vmdkRemoved++;
            } catch (err) {
              report.errors.push(itemError(kind, man.digest, err, path));
            }
          }
          return diffIds;
        },
        { signal: o.signal, tryOnly: true },
      );
      if (res === LOCK_BUSY) report.skippedInUse++;
      else if (res) for (const d of res) released.add(d);
    } catch (err) {
      record(run, 'manifest', man.digest, err);
    }
  }
  return released;
}

/** Step 6: layers no manifest uses (restricted: only those step 5 released), each under a try-lock. */
async function deleteLayers(run: PruneRun, released: Set<string>): Promise<void> {
  const { store, o, report } = run;
  const index = store.index;
  let layers: { diffId: string }[] = [];
  try {
    layers = await index.read(
      () => {
        const leased = liveLeaseItems(index, Date.now(), run.stale);
        return layersWithoutUsers(index).filter(
          (x) =>
            layerIsFree({ userCount: 0, leased: leased.layer.has(x.diffId) }) &&
            (!o.restricted || released.has(x.diffId)),
        );
      },
      { signal: o.signal },
    );
  } catch (err) {
    record(run, 'layer', '*', err);
  }
  for (const l of layers) {
    throwIfAborted(o.signal);
    let path: string | undefined;
    try {
      // Inside the try: a damaged row's digest (CACHE_CORRUPT from the path builder) is one item's error.
      path = store.paths.layer(l.diffId);
      const layerPath = path;
      const res = await withLock(
        store,
        'layer',
        l.diffId,
        async () => {
          if (!(await deleteLayerRowIfFree(store, l.diffId, run.stale, o.signal))) return;
          report.layersRemoved++;
          report.removed.layers.push(l.diffId);
          try {
            const r = await unlinkMeasured(layerPath);
            if (r.deleted) run.m.add(r.bytes);
          } catch (err) {
            report.errors.push(itemError('layer', l.diffId, err, layerPath));
          }
        },
        { signal: o.signal, tryOnly: true },
      );
      if (res === LOCK_BUSY) report.skippedInUse++;
    } catch (err) {
      record(run, 'layer', l.diffId, err, path);
    }
  }
}

/** Step 7: temp entries older than the grace period and not leased. */
async function deleteTemp(run: PruneRun): Promise<void> {
  const { store, o, report } = run;
  const tmpDir = store.paths.tmpDir;
  try {
    const leased = await store.index.read(() => liveLeaseItems(store.index, Date.now(), run.stale), {
      signal: o.signal,
    });
    for (const t of await tempCandidates(store, Date.now(), o.tempGraceMs, leased.blob, leased.temp)) {
      throwIfAborted(o.signal);
      try {
        await removeTreeMeasured(t.path, run.m, false);
        report.tempRemoved++;
      } catch (err) {
        record(run, 'temp', t.name, err, t.path);
      }
    }
  } catch (err) {
    record(run, 'temp', tmpDir, err, tmpDir);
  }
}

/** Step 8: artifact files no row names, only when the marker (read again now) says this cache is ours. */
async function deleteOrphans(run: PruneRun): Promise<void> {
  const { store, o, report } = run;
  const index = store.index;
  if (readMarker(store.cacheDir, index.indexId).kind !== 'ours') return;
  const isOrphan = (d: (typeof ORPHAN_DIRS)[number], digest: string) =>
    index.read(() => !hasRow(index, d.table, digest) && !isLeased(index, d.leaseKind, digest, Date.now(), run.stale), {
      signal: o.signal,
    });
  for (const d of ORPHAN_DIRS) {
    const dirPath = join(store.cacheDir, d.dir);
    let files: { name: string; path: string; digest: string }[] = [];
    try {
      files = await artifactFiles(dirPath, d.ext);
    } catch (err) {
      report.errors.push(itemError('orphan', dirPath, err, dirPath));
      continue;
    }
    for (const f of files) {
      throwIfAborted(o.signal);
      try {
        if (!(await isOrphan(d, f.digest))) continue;
        const res = await withLock(
          store,
          d.lock,
          f.digest,
          async () => {
            if (!(await isOrphan(d, f.digest))) return;
            const r = await unlinkMeasured(f.path);
            if (r.deleted) {
              report.orphansRemoved++;
              run.m.add(r.bytes);
            }
          },
          { signal: o.signal, tryOnly: true },
        );
        if (res === LOCK_BUSY) report.skippedInUse++;
      } catch (err) {
        record(run, 'orphan', f.name, err, f.path);
      }
    }
  }
}

/**
 * `prune(options)` exactly as docs/storage.md §8, and its dry run. The real run deletes under the same
 * locks a pull takes (try-lock only, so an in-flight pull is never waited on: busy items count in
 * `skippedInUse`), re-checks every item inside its own transaction, and records per-item errors
 * instead of stopping. The dry run evaluates the same predicates (gc.ts) on one read snapshot and
 * measures would-be deletions with `lstat`; it takes no lock and touches no lease.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, MsbError, throwIfAborted, toIoError, type ErrorCode } from '../errors.js';
import type { IndexDb } from '../catalog/db.js';
import { gcTables, layersWithoutUsers, manifestsWithoutRefs, refsWithDigest } from '../catalog/gc.js';
import { allPins, pinnedDigests } from '../catalog/pins.js';
import { countRefsOfManifest, deleteImageRef, layerExists, manifestExists } from '../catalog/queries.js';
import { familiarOf } from '../reference/reference.js';
import { digestFromPathForm } from '../util/digest.js';
import { parseDuration } from '../util/duration.js';
import { acquireFileLock } from '../util/flock.js';
import { compileGlob, type Glob } from '../reference/glob.js';
import {
  cmp,
  layerIsFree,
  manifestIsFree,
  pinnedKept,
  planPrune,
  precomputeMatches,
  refIsCandidate,
  type GcState,
  type RefFilter,
} from './gc.js';
import { deleteStaleLeases, findStaleLeases, isLeased, liveLeaseItems } from './lease.js';
import { LOCK_BUSY, withLock } from './locks.js';
import { readMarker } from './marker.js';
import { lstatOrNull, Measures, predictUnlink, removeTreeMeasured, unlinkMeasured } from './measure.js';
import { deleteLayerRowIfFree, deleteManifestRowIfFree } from './reclaim.js';
import type { Store } from './store.js';
import type { ImagePruneReport, PruneItemError, PruneOptions } from './types.js';

export interface ResolvedPrune {
  dryRun: boolean;
  filter: RefFilter;
  /** filter or unusedFor given (docs/storage.md §8 "Restricted prune") */
  restricted: boolean;
  tempGraceMs: number;
  signal?: AbortSignal | undefined;
}

/** Validates PruneOptions (InvalidArgumentError) and fills the temp grace from the store. */
export function resolvePruneOptions(
  o: PruneOptions | undefined,
  storeGraceMs: number,
  now = Date.now(),
): ResolvedPrune {
  const opts = o ?? {};
  if (typeof opts !== 'object') throw new InvalidArgumentError('options', 'prune options must be an object');
  let patterns: Glob[] | null = null;
  if (opts.filter !== undefined) {
    const f = opts.filter;
    if (f === null || typeof f !== 'object')
      throw new InvalidArgumentError('filter', 'filter must be an object like {reference: "glob"}');
    if (f.reference !== undefined) {
      const list = Array.isArray(f.reference) ? f.reference : [f.reference];
      if (list.length === 0 || list.some((p) => typeof p !== 'string' || p === ''))
        throw new InvalidArgumentError('filter', 'filter.reference must be a non-empty glob or list of globs');
      patterns = list.map(compileGlob);
    }
  }
  const usedBefore = opts.unusedFor !== undefined ? now - parseDuration(opts.unusedFor, 'unusedFor') : null;
  const tempGraceMs = opts.tempGrace !== undefined ? parseDuration(opts.tempGrace, 'tempGrace') : storeGraceMs;
  return {
    dryRun: opts.dryRun === true,
    filter: { patterns, usedBefore },
    restricted: patterns !== null || usedBefore !== null,
    tempGraceMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

export function emptyPruneReport(dryRun: boolean): ImagePruneReport {
  return {
    imageRefsRemoved: 0,
    manifestsRemoved: 0,
    layersRemoved: 0,
    fsmetaRemoved: 0,
    vmdkRemoved: 0,
    bytesReclaimed: null,
    tempRemoved: 0,
    orphansRemoved: 0,
    skippedInUse: 0,
    keptPinned: [],
    errors: [],
    dryRun,
    removed: { references: [], manifests: [], layers: [] },
  };
}

function itemError(kind: PruneItemError['kind'], item: string, err: unknown, path?: string): PruneItemError {
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

/** One consistent read of everything the GC predicates need. */
function snapshot(
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

/** `blob-<alg>_<hex>.part` → digest, else null. */
function partDigest(name: string): string | null {
  return name.startsWith('blob-') ? digestFromPathForm(name.slice(5), '.part') : null;
}

interface TempEntry {
  name: string;
  path: string;
}

/** Step 7 selection (shared by both runs). */
async function tempCandidates(
  store: Store,
  now: number,
  graceMs: number,
  leasedBlobs: Set<string>,
  leasedTemps: Set<string>,
): Promise<TempEntry[]> {
  let names: string[];
  try {
    names = await fsp.readdir(store.paths.tmpDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toIoError(err, store.paths.tmpDir);
  }
  const out: TempEntry[] = [];
  for (const name of names.sort(cmp)) {
    const path = join(store.paths.tmpDir, name);
    const st = await lstatOrNull(path);
    if (!st) continue;
    if (!(st.mtimeMs < now - graceMs)) continue;
    const d = partDigest(name);
    if (d !== null && leasedBlobs.has(d)) continue;
    if (leasedTemps.has(name)) continue;
    out.push({ name, path });
  }
  return out;
}

const ORPHAN_DIRS = [
  { dir: 'layers', ext: '.erofs', table: 'layer', lock: 'layer', leaseKind: 'layer' },
  { dir: 'fsmeta', ext: '.erofs', table: 'manifest', lock: 'image', leaseKind: 'manifest' },
  { dir: 'vmdk', ext: '.vmdk', table: 'manifest', lock: 'image', leaseKind: 'manifest' },
] as const;

function hasRow(index: IndexDb, table: 'layer' | 'manifest', digest: string): boolean {
  return table === 'layer' ? layerExists(index, digest) : manifestExists(index, digest);
}

/** Files (not directories) in an artifact directory whose names parse as digests. */
async function artifactFiles(dirPath: string, ext: string): Promise<{ name: string; path: string; digest: string }[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dirPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toIoError(err, dirPath);
  }
  const out = [];
  for (const name of names.sort(cmp)) {
    const digest = digestFromPathForm(name, ext);
    if (!digest) continue; // not ours: left alone
    const path = join(dirPath, name);
    const st = await lstatOrNull(path);
    if (!st || st.isDirectory()) continue;
    out.push({ name, path, digest });
  }
  return out;
}

/** The pinned images the run keeps, for the report (docs/api.md §2.5). */
function keptPinnedOf(
  s: ReturnType<typeof snapshot>,
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
  const s = await index.read(() => snapshot(index, now, stale), { signal: o.signal });
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
  for (const man of plan.manifests) {
    throwIfAborted(o.signal);
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
    throwIfAborted(o.signal);
    report.layersRemoved++;
    report.removed.layers.push(l.diffId);
    try {
      const r = await predictUnlink(store.paths.layer(l.diffId));
      if (r.deleted) m.add(r.bytes);
    } catch (err) {
      report.errors.push(itemError('layer', l.diffId, err));
    }
  }
  if (!o.restricted) {
    for (const t of await tempCandidates(store, now, o.tempGraceMs, s.leasedBlobs, s.leasedTemps)) {
      await removeTreeMeasured(t.path, m, true);
      report.tempRemoved++;
    }
    if (readMarker(store.cacheDir, index.indexId).kind === 'ours') {
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
  }
  report.bytesReclaimed = m.bytes;
  return report;
}

/** State shared by the steps of one real prune. */
interface PruneRun {
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

/** The real prune (docs/storage.md §8 steps 1–9). */
export async function pruneReal(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const run: PruneRun = { store, o, report: emptyPruneReport(false), m: new Measures(), stale: new Set() };
  const gc = await acquireFileLock(store.paths.lock('gc'), { signal: o.signal }); // step 1
  try {
    await reapStaleLeases(run);
    const lostLast = await untagRefs(run);
    const released = await deleteManifests(run, lostLast);
    await deleteLayers(run, released);
    if (!o.restricted) {
      await deleteTemp(run);
      await deleteOrphans(run);
    }
  } finally {
    gc.release();
  }
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

/**
 * `prune(options)` exactly as storage.md §8, and its dry run. The real run deletes under the same
 * locks a pull takes (try-lock only, so an in-flight pull is never waited on: busy items count in
 * `skippedInUse`), re-checks every item inside its own transaction, and records per-item errors
 * instead of stopping. The dry run evaluates the same predicates (gc.ts) on one read snapshot and
 * measures would-be deletions with `lstat`; it takes no lock and touches no lease.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { MsbError, throwIfAborted, toIoError, type ErrorCode } from '../errors.js';
import type { Store } from './store.js';
import { familiarOf } from '../reference/reference.js';
import { parseDuration } from '../util/duration.js';
import type { ImagePruneReport, PruneItemError, PruneOptions } from './types.js';
import { InvalidArgumentError } from '../errors.js';
import { digestFromPathForm } from '../util/digest.js';
import { acquireFileLock } from '../util/flock.js';
import { LOCK_BUSY, withLock } from './locks.js';
import { deleteStaleLeases, findStaleLeases, isLeased, liveLeaseItems } from './lease.js';
import { readMarker } from './marker.js';
import { lstatOrNull, Measures, predictUnlink, removeTreeMeasured, unlinkMeasured } from './measure.js';
import { cmp, globToRegExp, planPrune, refIsCandidate, type GcState, type RefFilter } from './gc.js';
import type { IndexDb } from '../catalog/db.js';

export interface ResolvedPrune {
  dryRun: boolean;
  filter: RefFilter;
  /** filter or unusedFor given (storage.md §8 "Restricted prune") */
  restricted: boolean;
  tempGraceMs: number;
  signal?: AbortSignal;
}

/** Validates PruneOptions (InvalidArgumentError) and fills the temp grace from the store. */
export function resolvePruneOptions(o: PruneOptions | undefined, storeGraceMs: number, now = Date.now()): ResolvedPrune {
  const opts = o ?? {};
  if (typeof opts !== 'object') throw new InvalidArgumentError('options', 'prune options must be an object');
  let patterns: RegExp[] | null = null;
  if (opts.filter !== undefined) {
    const f = opts.filter;
    if (f === null || typeof f !== 'object') throw new InvalidArgumentError('filter', 'filter must be an object like {reference: "glob"}');
    if (f.reference !== undefined) {
      const list = Array.isArray(f.reference) ? f.reference : [f.reference];
      if (list.length === 0 || list.some((p) => typeof p !== 'string' || p === '')) throw new InvalidArgumentError('filter', 'filter.reference must be a non-empty glob or list of globs');
      patterns = list.map(globToRegExp);
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
    imageRefsRemoved: 0, manifestsRemoved: 0, layersRemoved: 0, fsmetaRemoved: 0, vmdkRemoved: 0,
    bytesReclaimed: null, tempRemoved: 0, orphansRemoved: 0, skippedInUse: 0, errors: [], dryRun,
    removed: { references: [], manifests: [], layers: [] },
  };
}

function itemError(kind: PruneItemError['kind'], item: string, err: unknown, path?: string): PruneItemError {
  const code: ErrorCode = err instanceof MsbError ? err.code : 'IO';
  const p = path ?? (err as { path?: unknown })?.path;
  return { kind, item, ...(typeof p === 'string' ? { path: p } : {}), code, message: (err as Error)?.message ?? String(err) };
}

function pinnedDigests(index: IndexDb): Set<string> {
  return new Set((index.stmt('SELECT DISTINCT manifest_digest FROM pin').all() as { manifest_digest: string }[]).map((r) => r.manifest_digest));
}

/** One consistent read of everything the GC predicates need. */
function snapshot(index: IndexDb, now: number, stale: Set<string>): GcState & { leasedBlobs: Set<string>; leasedTemps: Set<string> } {
  const leased = liveLeaseItems(index, now, stale);
  return {
    refs: (index.stmt('SELECT id, reference, manifest_id AS manifestId, last_used_at AS lastUsedAt FROM image_ref ORDER BY reference').all() as GcState['refs']),
    manifests: index.stmt('SELECT id, digest, config_digest AS configDigest FROM manifest ORDER BY digest').all() as GcState['manifests'],
    manifestLayers: index.stmt('SELECT manifest_id AS manifestId, layer_id AS layerId FROM manifest_layer').all() as GcState['manifestLayers'],
    layers: index.stmt('SELECT id, diff_id AS diffId FROM layer ORDER BY diff_id').all() as GcState['layers'],
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

interface TempEntry { name: string; path: string }

/** Step 7 selection (shared by both runs). */
async function tempCandidates(store: Store, now: number, graceMs: number, leasedBlobs: Set<string>, leasedTemps: Set<string>): Promise<TempEntry[]> {
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
  return table === 'layer'
    ? index.stmt('SELECT 1 FROM layer WHERE diff_id = ?').get(digest) !== undefined
    : index.stmt('SELECT 1 FROM manifest WHERE digest = ?').get(digest) !== undefined;
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

/** The dry run (also diskUsage().reclaimableBytes). `store` null = no index: nothing to prune. */
export async function pruneDryRun(store: Store | null, o: ResolvedPrune): Promise<ImagePruneReport> {
  const report = emptyPruneReport(true);
  if (!store) return report;
  const index = store.index;
  const now = Date.now();
  const stale = await findStaleLeases(index, { now, signal: o.signal });
  const s = await index.read(() => snapshot(index, now, stale), { signal: o.signal });
  const plan = planPrune(s, o.filter, o.restricted);
  const m = new Measures();
  report.imageRefsRemoved = plan.refs.length;
  report.removed.references = plan.refs.map((r) => familiarOf(r.reference));
  for (const man of plan.manifests) {
    throwIfAborted(o.signal);
    report.manifestsRemoved++;
    report.removed.manifests.push(man.digest);
    const f = await predictUnlink(store.paths.fsmeta(man.digest));
    if (f.deleted) { report.fsmetaRemoved++; m.add(f.bytes); }
    const v = await predictUnlink(store.paths.vmdk(man.digest));
    if (v.deleted) { report.vmdkRemoved++; m.add(v.bytes); }
  }
  for (const l of plan.layers) {
    throwIfAborted(o.signal);
    report.layersRemoved++;
    report.removed.layers.push(l.diffId);
    const r = await predictUnlink(store.paths.layer(l.diffId));
    if (r.deleted) m.add(r.bytes);
  }
  if (!o.restricted) {
    for (const t of await tempCandidates(store, now, o.tempGraceMs, s.leasedBlobs, s.leasedTemps)) {
      await removeTreeMeasured(t.path, m, true);
      report.tempRemoved++;
    }
    if (readMarker(store.cacheDir, index.indexId).kind === 'ours') {
      const layerIds = new Set(s.layers.map((l) => l.diffId));
      const manifestIds = new Set(s.manifests.map((x) => x.digest));
      for (const d of ORPHAN_DIRS) {
        for (const f of await artifactFiles(join(store.cacheDir, d.dir), d.ext)) {
          const rowExists = d.table === 'layer' ? layerIds.has(f.digest) : manifestIds.has(f.digest);
          const leased = d.leaseKind === 'layer' ? s.leasedLayers.has(f.digest) : s.leasedManifests.has(f.digest);
          if (rowExists || leased) continue;
          const r = await predictUnlink(f.path);
          if (r.deleted) { report.orphansRemoved++; m.add(r.bytes); }
        }
      }
    }
  }
  report.bytesReclaimed = m.bytes;
  return report;
}

/** The real prune (storage.md §8 steps 1–9). */
export async function pruneReal(store: Store, o: ResolvedPrune): Promise<ImagePruneReport> {
  const report = emptyPruneReport(false);
  const { index, paths } = store;
  const m = new Measures();
  const signal = o.signal;
  // Step 1
  const gc = await acquireFileLock(paths.lock('gc'), { signal });
  try {
    // Step 2
    try { await deleteStaleLeases(index, { signal }); } catch (err) {
      if (err instanceof MsbError && err.code === 'ABORTED') throw err;
      report.errors.push(itemError('lease', 'stale leases', err));
    }
    let stale = new Set<string>();
    try { stale = await findStaleLeases(index, { signal }); } catch (err) {
      if (err instanceof MsbError && err.code === 'ABORTED') throw err;
    }

    // Steps 3–4: one write transaction over the refs.
    let lostLast = new Set<number>();
    try {
      const r = await index.write(() => {
        const now = Date.now();
        const leased = liveLeaseItems(index, now, stale);
        const pinned = pinnedDigests(index);
        const rows = index.stmt(`SELECT r.id, r.reference, r.manifest_id AS manifestId, r.last_used_at AS lastUsedAt, m.digest
          FROM image_ref r JOIN manifest m ON m.id = r.manifest_id ORDER BY r.reference`).all() as
          { id: number; reference: string; manifestId: number; lastUsedAt: number; digest: string }[];
        const cands = rows.filter((x) => refIsCandidate(x, x.digest, { pinned, leasedManifests: leased.manifest }, o.filter));
        const del = index.stmt('DELETE FROM image_ref WHERE id = ?');
        for (const c of cands) del.run(c.id);
        const left = index.stmt('SELECT 1 FROM image_ref WHERE manifest_id = ? LIMIT 1');
        const lost = new Set<number>();
        for (const c of cands) if (left.get(c.manifestId) === undefined) lost.add(c.manifestId);
        return { cands, lost };
      }, { signal });
      report.imageRefsRemoved = r.cands.length;
      report.removed.references = r.cands.map((c) => familiarOf(c.reference));
      lostLast = r.lost;
    } catch (err) {
      if (err instanceof MsbError && err.code === 'ABORTED') throw err;
      report.errors.push(itemError('ref', '*', err));
    }

    // Step 5: manifests with no ref, no pin, no live lease.
    const released = new Set<string>();
    let manifests: { id: number; digest: string }[] = [];
    try {
      manifests = await index.read(() => {
        const now = Date.now();
        const leased = liveLeaseItems(index, now, stale);
        const pinned = pinnedDigests(index);
        return (index.stmt(`SELECT m.id, m.digest FROM manifest m WHERE NOT EXISTS (SELECT 1 FROM image_ref r WHERE r.manifest_id = m.id)
          ORDER BY m.digest`).all() as { id: number; digest: string }[])
          .filter((x) => !pinned.has(x.digest) && !leased.manifest.has(x.digest) && (!o.restricted || lostLast.has(x.id)));
      }, { signal });
    } catch (err) {
      if (err instanceof MsbError && err.code === 'ABORTED') throw err;
      report.errors.push(itemError('manifest', '*', err));
    }
    for (const man of manifests) {
      throwIfAborted(signal);
      try {
        const res = await withLock(store, 'image', man.digest, async () => {
          const gone = await index.write(() => {
            const now = Date.now();
            const row = index.stmt('SELECT id, config_digest FROM manifest WHERE digest = ?').get(man.digest) as { id: number; config_digest: string } | undefined;
            if (!row) return null;
            if (index.stmt('SELECT 1 FROM image_ref WHERE manifest_id = ? LIMIT 1').get(row.id) !== undefined) return null;
            if (index.stmt('SELECT 1 FROM pin WHERE manifest_digest = ? LIMIT 1').get(man.digest) !== undefined) return null;
            if (isLeased(index, 'manifest', man.digest, now, stale)) return null;
            const diffIds = (index.stmt('SELECT DISTINCT l.diff_id FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ?')
              .all(row.id) as { diff_id: string }[]).map((x) => x.diff_id);
            index.stmt('DELETE FROM manifest WHERE id = ?').run(row.id);
            if (index.stmt('SELECT 1 FROM manifest WHERE config_digest = ? LIMIT 1').get(row.config_digest) === undefined) {
              index.stmt('DELETE FROM config WHERE digest = ?').run(row.config_digest);
            }
            return diffIds;
          }, { signal });
          if (!gone) return null;
          report.manifestsRemoved++;
          report.removed.manifests.push(man.digest);
          for (const [kind, path] of [['fsmeta', paths.fsmeta(man.digest)], ['vmdk', paths.vmdk(man.digest)]] as const) {
            try {
              const r = await unlinkMeasured(path);
              if (r.deleted) {
                m.add(r.bytes);
                if (kind === 'fsmeta') report.fsmetaRemoved++; else report.vmdkRemoved++;
              }
            } catch (err) {
              report.errors.push(itemError(kind, man.digest, err, path));
            }
          }
          return gone;
        }, { signal, tryOnly: true });
        if (res === LOCK_BUSY) report.skippedInUse++;
        else if (res) for (const d of res) released.add(d);
      } catch (err) {
        if (err instanceof MsbError && err.code === 'ABORTED') throw err;
        report.errors.push(itemError('manifest', man.digest, err));
      }
    }

    // Step 6: layers no manifest uses.
    let layers: { id: number; diff_id: string }[] = [];
    try {
      layers = await index.read(() => {
        const leased = liveLeaseItems(index, Date.now(), stale);
        return (index.stmt(`SELECT l.id, l.diff_id FROM layer l WHERE NOT EXISTS (SELECT 1 FROM manifest_layer ml WHERE ml.layer_id = l.id)
          ORDER BY l.diff_id`).all() as { id: number; diff_id: string }[])
          .filter((x) => !leased.layer.has(x.diff_id) && (!o.restricted || released.has(x.diff_id)));
      }, { signal });
    } catch (err) {
      if (err instanceof MsbError && err.code === 'ABORTED') throw err;
      report.errors.push(itemError('layer', '*', err));
    }
    for (const l of layers) {
      throwIfAborted(signal);
      const path = paths.layer(l.diff_id);
      try {
        const res = await withLock(store, 'layer', l.diff_id, async () => {
          const ok = await index.write(() => {
            const now = Date.now();
            const row = index.stmt('SELECT id FROM layer WHERE diff_id = ?').get(l.diff_id) as { id: number } | undefined;
            if (!row) return false;
            if (index.stmt('SELECT 1 FROM manifest_layer WHERE layer_id = ? LIMIT 1').get(row.id) !== undefined) return false;
            if (isLeased(index, 'layer', l.diff_id, now, stale)) return false;
            index.stmt('DELETE FROM layer WHERE id = ?').run(row.id);
            return true;
          }, { signal });
          if (!ok) return;
          report.layersRemoved++;
          report.removed.layers.push(l.diff_id);
          try {
            const r = await unlinkMeasured(path);
            if (r.deleted) m.add(r.bytes);
          } catch (err) {
            report.errors.push(itemError('layer', l.diff_id, err, path));
          }
        }, { signal, tryOnly: true });
        if (res === LOCK_BUSY) report.skippedInUse++;
      } catch (err) {
        if (err instanceof MsbError && err.code === 'ABORTED') throw err;
        report.errors.push(itemError('layer', l.diff_id, err, path));
      }
    }

    if (!o.restricted) {
      // Step 7: temp entries older than the grace period and not leased.
      try {
        const leased = await index.read(() => liveLeaseItems(index, Date.now(), stale), { signal });
        for (const t of await tempCandidates(store, Date.now(), o.tempGraceMs, leased.blob, leased.temp)) {
          throwIfAborted(signal);
          try {
            await removeTreeMeasured(t.path, m, false);
            report.tempRemoved++;
          } catch (err) {
            if (err instanceof MsbError && err.code === 'ABORTED') throw err;
            report.errors.push(itemError('temp', t.name, err, t.path));
          }
        }
      } catch (err) {
        if (err instanceof MsbError && err.code === 'ABORTED') throw err;
        report.errors.push(itemError('temp', paths.tmpDir, err, paths.tmpDir));
      }

      // Step 8: orphans, only when the marker (read again now) says this cache is ours.
      if (readMarker(store.cacheDir, index.indexId).kind === 'ours') {
        for (const d of ORPHAN_DIRS) {
          const dirPath = join(store.cacheDir, d.dir);
          let files: { name: string; path: string; digest: string }[] = [];
          try { files = await artifactFiles(dirPath, d.ext); } catch (err) {
            report.errors.push(itemError('orphan', dirPath, err, dirPath));
            continue;
          }
          for (const f of files) {
            throwIfAborted(signal);
            try {
              const free = await index.read(() => !hasRow(index, d.table, f.digest) && !isLeased(index, d.leaseKind, f.digest, Date.now(), stale), { signal });
              if (!free) continue;
              const res = await withLock(store, d.lock, f.digest, async () => {
                const still = await index.read(() => !hasRow(index, d.table, f.digest) && !isLeased(index, d.leaseKind, f.digest, Date.now(), stale), { signal });
                if (!still) return;
                const r = await unlinkMeasured(f.path);
                if (r.deleted) { report.orphansRemoved++; m.add(r.bytes); }
              }, { signal, tryOnly: true });
              if (res === LOCK_BUSY) report.skippedInUse++;
            } catch (err) {
              if (err instanceof MsbError && err.code === 'ABORTED') throw err;
              report.errors.push(itemError('orphan', f.name, err, f.path));
            }
          }
        }
      }
    }
  } finally {
    gc.release();
  }
  report.bytesReclaimed = m.bytes;
  return report;
}

/**
 * `diskUsage()` (docs/api.md §2.8): one index snapshot plus `lstat`s; it never validates or rebuilds.
 * Every byte count is allocated bytes (st_blocks × 512). Files are deduplicated by inode for
 * `totalBytes`, so a hard-linked file counts once. The same measurement (`measureCache`) sizes the
 * cache for the budget (docs/storage.md §11).
 *
 * Invariant: Σ uniqueBytes + shared layer files (once each) + layer files no manifest uses +
 * temp + orphans = totalBytes, whenever no artifact of an image is missing. An image with a
 * missing artifact reports `sizeBytes`/`uniqueBytes`/`sharedBytes` as null.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Store } from './store.js';
import { familiarOf } from '../reference/reference.js';
import type { DiskUsageReport } from './types.js';
import { usageTables } from '../catalog/gc.js';
import { pinnedDigests } from '../catalog/pins.js';
import { getOrCreate } from '../util/collections.js';
import { digestFromPathForm } from '../util/digest.js';
import { freedBytes, lstatOrNull, treeUsage } from './measure.js';
import { cmp } from './gc.js';
import { pruneDryRun, type ResolvedPrune } from './prune.js';
import { budgetStatus } from './budget-status.js';

export function emptyDiskUsage(): DiskUsageReport {
  const z = () => ({ count: 0, bytes: 0 });
  return {
    images: [],
    layers: z(),
    fsmeta: z(),
    vmdk: z(),
    temp: z(),
    orphans: z(),
    totalBytes: 0,
    reclaimableBytes: null,
    budget: null,
  };
}

async function listDir(p: string): Promise<string[]> {
  try {
    return (await fsp.readdir(p)).sort(cmp);
  } catch {
    return [];
  }
}

export type UsageSnapshot = ReturnType<typeof usageTables> & { pinned: Set<string> };

/** Every file the cache holds, measured once (lstat). */
export interface CacheFiles {
  /** Allocated bytes of each artifact path that has a row; null = absent. */
  alloc: Map<string, number | null>;
  /** What unlinking each of those paths would free (0 for a file with other hard links). */
  freed: Map<string, number>;
  temp: { count: number; bytes: number };
  orphans: { count: number; bytes: number };
  /** Distinct files (by inode), allocated bytes. */
  total: number;
}

/** Measures the artifact files of the snapshot's rows, `tmp/` and the orphans. */
export async function measureCache(store: Store, snap: UsageSnapshot): Promise<CacheFiles> {
  const { paths } = store;
  const out: CacheFiles = {
    alloc: new Map(),
    freed: new Map(),
    temp: { count: 0, bytes: 0 },
    orphans: { count: 0, bytes: 0 },
    total: 0,
  };
  const seen = new Set<string>();
  const measure = async (path: string): Promise<number | null> => {
    if (out.alloc.has(path)) return out.alloc.get(path)!;
    const st = await lstatOrNull(path);
    let v: number | null = null;
    if (st && !st.isDirectory()) {
      v = st.blocks * 512;
      out.freed.set(path, freedBytes(st));
      const key = `${st.dev}:${st.ino}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.total += v;
      }
    }
    out.alloc.set(path, v);
    return v;
  };
  for (const l of [...snap.layers].sort(cmp)) await measure(paths.layer(l));
  for (const man of snap.manifests) {
    await measure(paths.fsmeta(man.digest));
    await measure(paths.vmdk(man.digest));
  }
  for (const name of await listDir(paths.tmpDir)) {
    const u = await treeUsage(join(paths.tmpDir, name), seen);
    out.temp.count++;
    out.temp.bytes += u.bytes;
    out.total += u.bytes;
  }
  const layerRows = new Set(snap.layers);
  const manifestRows = new Set(snap.manifests.map((m) => m.digest));
  for (const [dir, ext, rows] of [
    ['layers', '.erofs', layerRows],
    ['fsmeta', '.erofs', manifestRows],
    ['vmdk', '.vmdk', manifestRows],
  ] as const) {
    for (const name of await listDir(join(store.cacheDir, dir))) {
      const d = digestFromPathForm(name, ext);
      if (!d || rows.has(d)) continue;
      const path = join(store.cacheDir, dir, name);
      const b = await measure(path);
      out.alloc.delete(path);
      out.freed.delete(path);
      if (b === null) continue;
      out.orphans.count++;
      out.orphans.bytes += b;
    }
  }
  return out;
}

export async function readUsageSnapshot(store: Store): Promise<UsageSnapshot> {
  const { index } = store;
  return index.read(() => ({ ...usageTables(index), pinned: pinnedDigests(index) }));
}

export async function diskUsage(store: Store | null, prune: ResolvedPrune): Promise<DiskUsageReport> {
  const out = emptyDiskUsage();
  if (!store) return out;
  const snap = await readUsageSnapshot(store);
  const files = await measureCache(store, snap);
  const sum = (into: { count: number; bytes: number }, b: number | null) => {
    if (b === null) return;
    into.count++;
    into.bytes += b;
  };
  for (const l of snap.layers) sum(out.layers, files.alloc.get(store.paths.layer(l)) ?? null);
  for (const m of snap.manifests) {
    sum(out.fsmeta, files.alloc.get(store.paths.fsmeta(m.digest)) ?? null);
    sum(out.vmdk, files.alloc.get(store.paths.vmdk(m.digest)) ?? null);
  }
  out.images = imageRows(store, snap, files);
  out.temp = files.temp;
  out.orphans = files.orphans;
  out.totalBytes = files.total;
  out.reclaimableBytes = (await pruneDryRun(store, { ...prune, dryRun: true })).bytesReclaimed;
  out.budget = await budgetStatus(store, files.total);
  return out;
}

/** One row per manifest: its size, the bytes only it uses, the bytes it shares. */
function imageRows(store: Store, snap: UsageSnapshot, files: CacheFiles): DiskUsageReport['images'] {
  const { paths } = store;
  const users = new Map<string, number>();
  for (const r of snap.manifestDiffIds) users.set(r.diffId, (users.get(r.diffId) ?? 0) + 1);
  const layersOf = new Map<number, string[]>();
  for (const r of snap.manifestDiffIds) getOrCreate(layersOf, r.manifestId, () => []).push(r.diffId);
  const refsOf = new Map<number, string[]>();
  for (const r of snap.refs) getOrCreate(refsOf, r.manifestId, () => []).push(familiarOf(r.reference));
  return snap.manifests.map((man) => {
    const f = files.alloc.get(paths.fsmeta(man.digest)) ?? null;
    const v = files.alloc.get(paths.vmdk(man.digest)) ?? null;
    let size: number | null = f !== null && v !== null ? f + v : null;
    let unique: number | null = size;
    for (const d of layersOf.get(man.id) ?? []) {
      const b = files.alloc.get(paths.layer(d)) ?? null;
      if (b === null) {
        size = null;
        unique = null;
        continue;
      }
      if (size !== null) size += b;
      if (unique !== null && (users.get(d) ?? 0) <= 1) unique += b;
    }
    return {
      manifestDigest: man.digest,
      references: refsOf.get(man.id) ?? [],
      pinned: snap.pinned.has(man.digest),
      sizeBytes: size,
      uniqueBytes: unique,
      sharedBytes: size !== null && unique !== null ? size - unique : null,
    };
  });
}

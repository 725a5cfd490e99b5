/**
 * `diskUsage()` (docs/api.md §2.8): one index snapshot plus `lstat`s; it never validates or rebuilds.
 * Every byte count is allocated bytes (st_blocks × 512). Files are deduplicated by inode for
 * `totalBytes`, so a hard-linked file counts once.
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
import { lstatOrNull, treeUsage } from './measure.js';
import { cmp } from './gc.js';
import { pruneDryRun, type ResolvedPrune } from './prune.js';

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
  };
}

async function listDir(p: string): Promise<string[]> {
  try {
    return (await fsp.readdir(p)).sort(cmp);
  } catch {
    return [];
  }
}

export async function diskUsage(store: Store | null, prune: ResolvedPrune): Promise<DiskUsageReport> {
  const out = emptyDiskUsage();
  if (!store) return out;
  const { index, paths } = store;
  const snap = await index.read(() => ({ ...usageTables(index), pinned: pinnedDigests(index) }));
  const seen = new Set<string>();
  let total = 0;
  /** allocated bytes of a file, counted once in totalBytes; null if absent */
  const sizes = new Map<string, number | null>();
  const measure = async (path: string): Promise<number | null> => {
    if (sizes.has(path)) return sizes.get(path)!;
    const st = await lstatOrNull(path);
    let v: number | null = null;
    if (st && !st.isDirectory()) {
      v = st.blocks * 512;
      const key = `${st.dev}:${st.ino}`;
      if (!seen.has(key)) {
        seen.add(key);
        total += v;
      }
    }
    sizes.set(path, v);
    return v;
  };

  const layerRows = new Set(snap.layers);
  const manifestRows = new Set(snap.manifests.map((m) => m.digest));
  const users = new Map<string, number>();
  for (const r of snap.manifestDiffIds) users.set(r.diffId, (users.get(r.diffId) ?? 0) + 1);
  const layersOf = new Map<number, string[]>();
  for (const r of snap.manifestDiffIds) getOrCreate(layersOf, r.manifestId, () => []).push(r.diffId);
  const refsOf = new Map<number, string[]>();
  for (const r of snap.refs) getOrCreate(refsOf, r.manifestId, () => []).push(familiarOf(r.reference));

  for (const l of [...layerRows].sort(cmp)) {
    const b = await measure(paths.layer(l));
    if (b !== null) {
      out.layers.count++;
      out.layers.bytes += b;
    }
  }
  for (const man of snap.manifests) {
    const f = await measure(paths.fsmeta(man.digest));
    if (f !== null) {
      out.fsmeta.count++;
      out.fsmeta.bytes += f;
    }
    const v = await measure(paths.vmdk(man.digest));
    if (v !== null) {
      out.vmdk.count++;
      out.vmdk.bytes += v;
    }
    let size: number | null = f !== null && v !== null ? f + v : null;
    let unique: number | null = size;
    for (const d of layersOf.get(man.id) ?? []) {
      const b = sizes.get(paths.layer(d)) ?? null;
      if (b === null) {
        size = null;
        unique = null;
        continue;
      }
      if (size !== null) size += b;
      if (unique !== null && (users.get(d) ?? 0) <= 1) unique += b;
    }
    out.images.push({
      manifestDigest: man.digest,
      references: refsOf.get(man.id) ?? [],
      pinned: snap.pinned.has(man.digest),
      sizeBytes: size,
      uniqueBytes: unique,
      sharedBytes: size !== null && unique !== null ? size - unique : null,
    });
  }

  for (const name of await listDir(paths.tmpDir)) {
    const u = await treeUsage(join(paths.tmpDir, name), seen);
    out.temp.count++;
    out.temp.bytes += u.bytes;
    total += u.bytes;
  }

  for (const [dir, ext, rows] of [
    ['layers', '.erofs', layerRows],
    ['fsmeta', '.erofs', manifestRows],
    ['vmdk', '.vmdk', manifestRows],
  ] as const) {
    for (const name of await listDir(join(store.cacheDir, dir))) {
      const d = digestFromPathForm(name, ext);
      if (!d || rows.has(d)) continue;
      const b = await measure(join(store.cacheDir, dir, name));
      if (b === null) continue;
      out.orphans.count++;
      out.orphans.bytes += b;
    }
  }
  out.totalBytes = total;
  out.reclaimableBytes = (await pruneDryRun(store, { ...prune, dryRun: true })).bytesReclaimed;
  return out;
}

/**
 * Deleting index rows that garbage collection freed, shared by `remove` (docs/storage.md §7) and
 * `prune` (§8). Each function runs its own write transaction and re-checks the one rule of
 * store/gc.ts inside it, so a pull that leased or re-used the item in the meantime keeps it. Call
 * them under the item's lock (image lock for a manifest, layer lock for a layer).
 */
import type { IndexDb } from '../catalog/db.js';
import { isPinned } from '../catalog/pins.js';
import {
  countRefsOfManifest,
  deleteLayer,
  deleteManifest,
  findLayer,
  findManifest,
  layerUseCount,
  manifestDiffIds,
} from '../catalog/queries.js';
import { layerIsFree, manifestIsFree, type ManifestFacts } from './gc.js';
import { isLeased } from './lease.js';
import type { Store } from './store.js';

/** The facts THE manifest rule needs, read in the caller's transaction. */
export function manifestFacts(
  index: IndexDb,
  manifestId: number,
  digest: string,
  now: number,
  stale: Set<string>,
): ManifestFacts {
  return {
    refCount: countRefsOfManifest(index, manifestId),
    pinned: isPinned(index, digest),
    leased: isLeased(index, 'manifest', digest, now, stale),
  };
}

/**
 * Deletes the manifest row (and its config when unused) if the manifest is free. Returns the
 * distinct diff_ids it used (diff_id order), or null when it was not deleted.
 */
export async function deleteManifestRowIfFree(
  store: Store,
  digest: string,
  stale: Set<string>,
  signal?: AbortSignal,
): Promise<string[] | null> {
  const index = store.index;
  return index.write(
    () => {
      const man = findManifest(index, digest);
      if (!man || !manifestIsFree(manifestFacts(index, man.id, digest, Date.now(), stale))) return null;
      const diffIds = manifestDiffIds(index, man.id);
      deleteManifest(index, man.id, man.config_digest);
      return diffIds;
    },
    signal ? { signal } : {},
  );
}

/** Deletes the layer row if the layer is free; returns whether it did. */
export async function deleteLayerRowIfFree(
  store: Store,
  diffId: string,
  stale: Set<string>,
  signal?: AbortSignal,
): Promise<boolean> {
  const index = store.index;
  return index.write(
    () => {
      const row = findLayer(index, diffId);
      if (!row) return false;
      if (
        !layerIsFree({
          userCount: layerUseCount(index, row.id),
          leased: isLeased(index, 'layer', diffId, Date.now(), stale),
        })
      )
        return false;
      deleteLayer(index, row.id);
      return true;
    },
    signal ? { signal } : {},
  );
}

/**
 * What garbage collection reads (docs/storage.md §7–§8): consistent snapshots for the pure rules in
 * store/gc.ts and the candidate lists of the real prune. The snapshot types are the input of those
 * rules, so they use the rules' camelCase names (SQL aliases), not column names.
 */
import type { IndexDb } from './db.js';

export interface GcRef {
  id: number;
  reference: string;
  manifestId: number;
  lastUsedAt: number;
}
export interface GcManifest {
  id: number;
  digest: string;
  configDigest: string;
}
export interface GcLayer {
  id: number;
  diffId: string;
}
export interface GcManifestLayer {
  manifestId: number;
  layerId: number;
}

/** Every ref (by reference), manifest (by digest), manifest_layer row and layer (by diff_id). */
export function gcTables(index: IndexDb): {
  refs: GcRef[];
  manifests: GcManifest[];
  manifestLayers: GcManifestLayer[];
  layers: GcLayer[];
} {
  return {
    refs: index
      .stmt(
        'SELECT id, reference, manifest_id AS manifestId, last_used_at AS lastUsedAt FROM image_ref ORDER BY reference',
      )
      .all() as GcRef[],
    manifests: index
      .stmt('SELECT id, digest, config_digest AS configDigest FROM manifest ORDER BY digest')
      .all() as GcManifest[],
    manifestLayers: index
      .stmt('SELECT manifest_id AS manifestId, layer_id AS layerId FROM manifest_layer')
      .all() as GcManifestLayer[],
    layers: index.stmt('SELECT id, diff_id AS diffId FROM layer ORDER BY diff_id').all() as GcLayer[],
  };
}

/** Every ref with its manifest digest, by reference (prune step 4). */
export function refsWithDigest(index: IndexDb): (GcRef & { digest: string })[] {
  return index
    .stmt(`SELECT r.id, r.reference, r.manifest_id AS manifestId, r.last_used_at AS lastUsedAt, m.digest
    FROM image_ref r JOIN manifest m ON m.id = r.manifest_id ORDER BY r.reference`)
    .all() as (GcRef & { digest: string })[];
}

/** Manifests no ref points at, by digest (prune step 5 candidates). */
export function manifestsWithoutRefs(index: IndexDb): GcManifest[] {
  return index
    .stmt(`SELECT m.id, m.digest, m.config_digest AS configDigest FROM manifest m
    WHERE NOT EXISTS (SELECT 1 FROM image_ref r WHERE r.manifest_id = m.id) ORDER BY m.digest`)
    .all() as GcManifest[];
}

/** Layers no manifest uses, by diff_id (prune step 6 candidates). */
export function layersWithoutUsers(index: IndexDb): GcLayer[] {
  return index
    .stmt(`SELECT l.id, l.diff_id AS diffId FROM layer l
    WHERE NOT EXISTS (SELECT 1 FROM manifest_layer ml WHERE ml.layer_id = l.id) ORDER BY l.diff_id`)
    .all() as GcLayer[];
}

/** disk usage: manifests, their refs (list order), distinct (manifest, diff_id) pairs, every layer. */
export function usageTables(index: IndexDb): {
  manifests: { id: number; digest: string }[];
  refs: { manifestId: number; reference: string }[];
  manifestDiffIds: { manifestId: number; diffId: string }[];
  layers: string[];
} {
  return {
    manifests: index.stmt('SELECT id, digest FROM manifest ORDER BY digest').all() as { id: number; digest: string }[],
    refs: index
      .stmt('SELECT manifest_id AS manifestId, reference FROM image_ref ORDER BY created_at DESC, reference')
      .all() as { manifestId: number; reference: string }[],
    manifestDiffIds: index
      .stmt(
        'SELECT DISTINCT ml.manifest_id AS manifestId, l.diff_id AS diffId FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id',
      )
      .all() as { manifestId: number; diffId: string }[],
    layers: (index.stmt('SELECT diff_id FROM layer').all() as { diff_id: string }[]).map((r) => r.diff_id),
  };
}

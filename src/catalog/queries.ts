/**
 * Read queries over the index, shared by the API and the pull/load pipelines. All functions are
 * synchronous and meant to run inside `IndexDb.read`/`write` callbacks.
 */
import type { IndexDb } from './db.js';

export interface RefRow {
  ref_id: number; reference: string; manifest_id: number; index_digest: string | null;
  created_at: number; last_used_at: number;
  digest: string; os: string | null; architecture: string | null; variant: string | null;
  layer_count: number; size_bytes: number | null;
}

const REF_COLUMNS = `r.id AS ref_id, r.reference, r.manifest_id, r.index_digest, r.created_at, r.last_used_at,
  m.digest, m.os, m.architecture, m.variant, m.layer_count, m.size_bytes`;

/**
 * storage.md §3.2: `list` is this one query. It selects only what a handle needs and runs in raw
 * (array) mode: building 10,000 row objects would dominate `list()`'s time.
 */
export const LIST_SQL = `SELECT r.reference, r.created_at, r.last_used_at, m.digest, m.os, m.architecture, m.variant,
  m.layer_count, m.size_bytes FROM image_ref r JOIN manifest m ON m.id = r.manifest_id ORDER BY r.created_at DESC, r.reference`;

/** One `list` row, in LIST_SQL column order. */
export type ListRow = [reference: string, createdAt: number, lastUsedAt: number, digest: string, os: string | null,
  architecture: string | null, variant: string | null, layerCount: number, sizeBytes: number | null];

export function listRefs(index: IndexDb): ListRow[] {
  return index.rawStmt(LIST_SQL).all() as ListRow[];
}

export function findRef(index: IndexDb, canonical: string): RefRow | undefined {
  return index.stmt(`SELECT ${REF_COLUMNS} FROM image_ref r JOIN manifest m ON m.id = r.manifest_id WHERE r.reference = ?`).get(canonical) as RefRow | undefined;
}

/** The newest ref of a manifest (greatest created_at, ties by reference ascending): `list()` order. */
export function newestRefOfManifest(index: IndexDb, digest: string): RefRow | undefined {
  return index.stmt(`SELECT ${REF_COLUMNS} FROM image_ref r JOIN manifest m ON m.id = r.manifest_id WHERE m.digest = ?
    ORDER BY r.created_at DESC, r.reference LIMIT 1`).get(digest) as RefRow | undefined;
}

export function refsOfManifest(index: IndexDb, manifestId: number): { id: number; reference: string }[] {
  return index.stmt('SELECT id, reference FROM image_ref WHERE manifest_id = ? ORDER BY reference').all(manifestId) as { id: number; reference: string }[];
}

export interface ManifestRow {
  id: number; digest: string; media_type: string; raw: Buffer; config_digest: string;
  os: string | null; architecture: string | null; variant: string | null; layer_count: number;
  source: 'registry' | 'archive'; fsmeta_bytes: number | null; vmdk_bytes: number | null; size_bytes: number | null;
  created_at: number; materialized_at: number | null;
}

export function findManifest(index: IndexDb, digest: string): ManifestRow | undefined {
  return index.stmt('SELECT * FROM manifest WHERE digest = ?').get(digest) as ManifestRow | undefined;
}

export function findManifestById(index: IndexDb, id: number): ManifestRow | undefined {
  return index.stmt('SELECT * FROM manifest WHERE id = ?').get(id) as ManifestRow | undefined;
}

export interface ManifestLayerRow {
  position: number; layer_id: number; blob_digest: string; media_type: string;
  compressed_size_bytes: number | null; diff_id: string; erofs_size_bytes: number | null;
  erofs_alloc_bytes: number | null; inodes: number; blocks: number;
}

/** Layers of a manifest, bottom (0) to top, duplicates included. */
export function manifestLayers(index: IndexDb, manifestId: number): ManifestLayerRow[] {
  return index.stmt(`SELECT ml.position, ml.layer_id, ml.blob_digest, ml.media_type, ml.compressed_size_bytes,
      l.diff_id, l.erofs_size_bytes, l.erofs_alloc_bytes, l.inodes, l.blocks
    FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ? ORDER BY ml.position`).all(manifestId) as ManifestLayerRow[];
}

export interface LayerRow {
  id: number; diff_id: string; erofs_size_bytes: number | null; erofs_alloc_bytes: number | null;
  inodes: number; blocks: number; created_at: number; last_used_at: number;
}

export function findLayer(index: IndexDb, diffId: string): LayerRow | undefined {
  return index.stmt('SELECT * FROM layer WHERE diff_id = ?').get(diffId) as LayerRow | undefined;
}

export function configRaw(index: IndexDb, digest: string): Buffer | undefined {
  const r = index.stmt('SELECT raw FROM config WHERE digest = ?').get(digest) as { raw: Buffer } | undefined;
  return r?.raw;
}

export interface PinRow {
  kind: 'sandbox' | 'snapshot'; key: string; name: string | null; manifest_digest: string;
  reference: string | null; created_at: number;
}

export function pinsOfManifest(index: IndexDb, digest: string): PinRow[] {
  return index.stmt('SELECT * FROM pin WHERE manifest_digest = ? ORDER BY kind, key').all(digest) as PinRow[];
}

export function findPin(index: IndexDb, kind: 'sandbox' | 'snapshot', key: string): PinRow | undefined {
  return index.stmt('SELECT * FROM pin WHERE kind = ? AND key = ?').get(kind, key) as PinRow | undefined;
}

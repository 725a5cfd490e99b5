/**
 * The image tables (docs/storage.md §3.2): refs, manifests, their layers, layers and configs. Every
 * statement on them lives here, behind a named function. All functions are synchronous and run
 * inside `IndexDb.read`/`write` callbacks (the caller chooses the transaction).
 *
 * Row types mirror their columns (snake_case, `*Row`); the raw `ListRow` tuple is the one exception,
 * for the speed of `list()`.
 */
import type { IndexDb } from './db.js';

export interface RefRow {
  ref_id: number;
  reference: string;
  manifest_id: number;
  index_digest: string | null;
  created_at: number;
  last_used_at: number;
  digest: string;
  os: string | null;
  architecture: string | null;
  variant: string | null;
  layer_count: number;
  size_bytes: number | null;
}

const REF_COLUMNS = `r.id AS ref_id, r.reference, r.manifest_id, r.index_digest, r.created_at, r.last_used_at,
  m.digest, m.os, m.architecture, m.variant, m.layer_count, m.size_bytes`;

/**
 * docs/storage.md §3.2: `list` is this one query. It selects only what a handle needs and runs in raw
 * (array) mode: building 10,000 row objects would dominate `list()`'s time.
 */
export const LIST_SQL = `SELECT r.reference, r.created_at, r.last_used_at, m.digest, m.os, m.architecture, m.variant,
  m.layer_count, m.size_bytes FROM image_ref r JOIN manifest m ON m.id = r.manifest_id ORDER BY r.created_at DESC, r.reference`;

/** One `list` row, in LIST_SQL column order. */
export type ListRow = [
  reference: string,
  createdAt: number,
  lastUsedAt: number,
  digest: string,
  os: string | null,
  architecture: string | null,
  variant: string | null,
  layerCount: number,
  sizeBytes: number | null,
];

export function listRefs(index: IndexDb): ListRow[] {
  return index.rawStmt(LIST_SQL).all() as ListRow[];
}

export function findRef(index: IndexDb, canonical: string): RefRow | undefined {
  return index
    .stmt(`SELECT ${REF_COLUMNS} FROM image_ref r JOIN manifest m ON m.id = r.manifest_id WHERE r.reference = ?`)
    .get(canonical) as RefRow | undefined;
}

/** The newest ref of a manifest (greatest created_at, ties by reference ascending): `list()` order. */
export function newestRefOfManifest(index: IndexDb, digest: string): RefRow | undefined {
  return index
    .stmt(`SELECT ${REF_COLUMNS} FROM image_ref r JOIN manifest m ON m.id = r.manifest_id WHERE m.digest = ?
    ORDER BY r.created_at DESC, r.reference LIMIT 1`)
    .get(digest) as RefRow | undefined;
}

export function refsOfManifest(index: IndexDb, manifestId: number): { id: number; reference: string }[] {
  return index.stmt('SELECT id, reference FROM image_ref WHERE manifest_id = ? ORDER BY reference').all(manifestId) as {
    id: number;
    reference: string;
  }[];
}

export interface ManifestRow {
  id: number;
  digest: string;
  media_type: string;
  raw: Buffer;
  config_digest: string;
  os: string | null;
  architecture: string | null;
  variant: string | null;
  layer_count: number;
  source: 'registry' | 'archive';
  fsmeta_bytes: number | null;
  vmdk_bytes: number | null;
  size_bytes: number | null;
  created_at: number;
  materialized_at: number | null;
  /** Content digests (docs/storage.md §10.1); NULL = not recorded yet. */
  fsmeta_digest: string | null;
  vmdk_digest: string | null;
}

export function findManifest(index: IndexDb, digest: string): ManifestRow | undefined {
  return index.stmt('SELECT * FROM manifest WHERE digest = ?').get(digest) as ManifestRow | undefined;
}

export function findManifestById(index: IndexDb, id: number): ManifestRow | undefined {
  return index.stmt('SELECT * FROM manifest WHERE id = ?').get(id) as ManifestRow | undefined;
}

export interface ManifestLayerRow {
  position: number;
  layer_id: number;
  blob_digest: string;
  media_type: string;
  compressed_size_bytes: number | null;
  diff_id: string;
  erofs_size_bytes: number | null;
  erofs_alloc_bytes: number | null;
  inodes: number;
  blocks: number;
  content_digest: string | null;
}

/** Layers of a manifest, bottom (0) to top, duplicates included. */
export function manifestLayers(index: IndexDb, manifestId: number): ManifestLayerRow[] {
  return index
    .stmt(`SELECT ml.position, ml.layer_id, ml.blob_digest, ml.media_type, ml.compressed_size_bytes,
      l.diff_id, l.erofs_size_bytes, l.erofs_alloc_bytes, l.inodes, l.blocks, l.content_digest
    FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ? ORDER BY ml.position`)
    .all(manifestId) as ManifestLayerRow[];
}

export interface LayerRow {
  id: number;
  diff_id: string;
  erofs_size_bytes: number | null;
  erofs_alloc_bytes: number | null;
  inodes: number;
  blocks: number;
  created_at: number;
  last_used_at: number;
  /** Content digest of the file (docs/storage.md §10.1); NULL = not recorded yet. */
  content_digest: string | null;
}

export function findLayer(index: IndexDb, diffId: string): LayerRow | undefined {
  return index.stmt('SELECT * FROM layer WHERE diff_id = ?').get(diffId) as LayerRow | undefined;
}

export function configRaw(index: IndexDb, digest: string): Buffer | undefined {
  const r = index.stmt('SELECT raw FROM config WHERE digest = ?').get(digest) as { raw: Buffer } | undefined;
  return r?.raw;
}

/** Manifest ids whose refs were resolved through the index `indexDigest`, oldest first. */
export function manifestIdsByIndexDigest(index: IndexDb, indexDigest: string): number[] {
  return (
    index
      .stmt(`SELECT DISTINCT m.id AS id FROM image_ref r JOIN manifest m ON m.id = r.manifest_id
    WHERE r.index_digest = ? ORDER BY m.id`)
      .all(indexDigest) as { id: number }[]
  ).map((r) => r.id);
}

export function countRefsOfManifest(index: IndexDb, manifestId: number): number {
  return (index.stmt('SELECT COUNT(*) AS n FROM image_ref WHERE manifest_id = ?').get(manifestId) as { n: number }).n;
}

/**
 * Points `reference` at a manifest: a new ref gets `created_at = last_used_at = now`; an existing
 * one is re-pointed and keeps its `created_at`.
 */
export function upsertImageRef(
  index: IndexDb,
  reference: string,
  manifestId: number,
  indexDigest: string | null,
  now: number,
): void {
  index
    .stmt(`INSERT INTO image_ref (reference, manifest_id, index_digest, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT(reference) DO UPDATE SET manifest_id = excluded.manifest_id, index_digest = excluded.index_digest,
      last_used_at = excluded.last_used_at`)
    .run(reference, manifestId, indexDigest, now, now);
}

export function deleteImageRef(index: IndexDb, refId: number): void {
  index.stmt('DELETE FROM image_ref WHERE id = ?').run(refId);
}

/** `last_used_at = now` on a ref and on every layer of its manifest. */
export function touchRefAndLayers(index: IndexDb, refId: number, manifestId: number, now: number): void {
  index.stmt('UPDATE image_ref SET last_used_at = ? WHERE id = ?').run(now, refId);
  index
    .stmt('UPDATE layer SET last_used_at = ? WHERE id IN (SELECT layer_id FROM manifest_layer WHERE manifest_id = ?)')
    .run(now, manifestId);
}

export function insertConfigIfAbsent(index: IndexDb, digest: string, raw: Buffer, now: number): void {
  index
    .stmt('INSERT INTO config (digest, raw, created_at) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING')
    .run(digest, raw, now);
}

export interface ManifestInput {
  digest: string;
  mediaType: string;
  raw: Buffer;
  configDigest: string;
  os: string | null;
  architecture: string | null;
  variant: string | null;
  layerCount: number;
  source: 'registry' | 'archive';
  fsmetaBytes: number;
  vmdkBytes: number;
  sizeBytes: number;
  /** Content digests of the files this operation wrote; null = reused (kept while the length is unchanged). */
  fsmetaDigest?: string | null | undefined;
  vmdkDigest?: string | null | undefined;
}

/**
 * Inserts a manifest, or updates platform, sizes, digests and `materialized_at` of an existing one,
 * and its raw bytes and layer count (publication re-verifies them, so a damaged row is repaired by
 * the next commit of the same digest). A content digest not given (the file was reused) keeps the
 * recorded one while the length is unchanged. Returns its id.
 */
export function upsertManifest(index: IndexDb, m: ManifestInput, now: number): number {
  index
    .stmt(`INSERT INTO manifest (digest, media_type, raw, config_digest, os, architecture, variant, layer_count, source,
      fsmeta_bytes, vmdk_bytes, size_bytes, created_at, materialized_at, fsmeta_digest, vmdk_digest)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(digest) DO UPDATE SET media_type = excluded.media_type, raw = excluded.raw,
      layer_count = excluded.layer_count, os = excluded.os,
      architecture = excluded.architecture, variant = excluded.variant,
      fsmeta_digest = COALESCE(excluded.fsmeta_digest,
        CASE WHEN manifest.fsmeta_bytes = excluded.fsmeta_bytes THEN manifest.fsmeta_digest END),
      vmdk_digest = COALESCE(excluded.vmdk_digest,
        CASE WHEN manifest.vmdk_bytes = excluded.vmdk_bytes THEN manifest.vmdk_digest END),
      fsmeta_bytes = excluded.fsmeta_bytes,
      vmdk_bytes = excluded.vmdk_bytes, size_bytes = excluded.size_bytes, materialized_at = excluded.materialized_at`)
    .run(
      m.digest,
      m.mediaType,
      m.raw,
      m.configDigest,
      m.os,
      m.architecture,
      m.variant,
      m.layerCount,
      m.source,
      m.fsmetaBytes,
      m.vmdkBytes,
      m.sizeBytes,
      now,
      now,
      m.fsmetaDigest ?? null,
      m.vmdkDigest ?? null,
    );
  return findManifest(index, m.digest)!.id;
}

/** Replaces the manifest_layer rows of a manifest (bottom first) and bumps each layer's `last_used_at`. */
export function replaceManifestLayers(
  index: IndexDb,
  manifestId: number,
  layers: { layerId: number; blobDigest: string; mediaType: string; compressedSizeBytes: number | null }[],
  now: number,
): void {
  index.stmt('DELETE FROM manifest_layer WHERE manifest_id = ?').run(manifestId);
  const ins =
    index.stmt(`INSERT INTO manifest_layer (manifest_id, position, layer_id, blob_digest, media_type, compressed_size_bytes)
    VALUES (?, ?, ?, ?, ?, ?)`);
  const touch = index.stmt('UPDATE layer SET last_used_at = ? WHERE id = ?');
  layers.forEach((l, position) => {
    ins.run(manifestId, position, l.layerId, l.blobDigest, l.mediaType, l.compressedSizeBytes);
    touch.run(now, l.layerId);
  });
}

/** Deletes a manifest (its manifest_layer rows cascade) and its config when no other manifest uses it. */
export function deleteManifest(index: IndexDb, manifestId: number, configDigest: string): void {
  index.stmt('DELETE FROM manifest WHERE id = ?').run(manifestId);
  if (index.stmt('SELECT 1 FROM manifest WHERE config_digest = ? LIMIT 1').get(configDigest) === undefined) {
    index.stmt('DELETE FROM config WHERE digest = ?').run(configDigest);
  }
}

/** Distinct diff_ids of a manifest, in diff_id order. */
export function manifestDiffIds(index: IndexDb, manifestId: number): string[] {
  return (
    index
      .stmt(
        'SELECT DISTINCT l.diff_id FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ? ORDER BY l.diff_id',
      )
      .all(manifestId) as { diff_id: string }[]
  ).map((x) => x.diff_id);
}

export interface LayerInput {
  diffId: string;
  erofsSizeBytes: number;
  erofsAllocBytes: number;
  inodes: number;
  blocks: number;
  /** null: not computed (an adopted orphan), measured by the next verify. */
  contentDigest: string | null;
}

export function insertLayer(index: IndexDb, l: LayerInput, now: number): void {
  index
    .stmt(`INSERT INTO layer (diff_id, erofs_size_bytes, erofs_alloc_bytes, inodes, blocks, created_at, last_used_at,
      content_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
    .run(l.diffId, l.erofsSizeBytes, l.erofsAllocBytes, l.inodes, l.blocks, now, now, l.contentDigest);
}

export function updateLayer(index: IndexDb, layerId: number, l: LayerInput, now: number): void {
  index
    .stmt(`UPDATE layer SET erofs_size_bytes = ?, erofs_alloc_bytes = ?, inodes = ?, blocks = ?, last_used_at = ?,
      content_digest = ? WHERE id = ?`)
    .run(l.erofsSizeBytes, l.erofsAllocBytes, l.inodes, l.blocks, now, l.contentDigest, layerId);
}

/**
 * Every manifest using a layer forgets its fsmeta/VMDK/total sizes, so its next use rebuilds them
 * (a replaced layer changed length). Returns their digests.
 */
export function invalidateManifestsOfLayer(index: IndexDb, layerId: number): string[] {
  const digests = (
    index
      .stmt(`SELECT DISTINCT m.digest FROM manifest m JOIN manifest_layer ml ON ml.manifest_id = m.id
    WHERE ml.layer_id = ? ORDER BY m.digest`)
      .all(layerId) as { digest: string }[]
  ).map((r) => r.digest);
  index
    .stmt(`UPDATE manifest SET fsmeta_bytes = NULL, vmdk_bytes = NULL, size_bytes = NULL, fsmeta_digest = NULL,
      vmdk_digest = NULL WHERE id IN (SELECT manifest_id FROM manifest_layer WHERE layer_id = ?)`)
    .run(layerId);
  return digests;
}

export function deleteLayer(index: IndexDb, layerId: number): void {
  index.stmt('DELETE FROM layer WHERE id = ?').run(layerId);
}

/** How many manifest_layer rows use a layer (0 = no manifest uses it). */
export function layerUseCount(index: IndexDb, layerId: number): number {
  return (index.stmt('SELECT COUNT(*) AS n FROM manifest_layer WHERE layer_id = ?').get(layerId) as { n: number }).n;
}

export function manifestExists(index: IndexDb, digest: string): boolean {
  return index.stmt('SELECT 1 FROM manifest WHERE digest = ?').get(digest) !== undefined;
}

export function layerExists(index: IndexDb, diffId: string): boolean {
  return index.stmt('SELECT 1 FROM layer WHERE diff_id = ?').get(diffId) !== undefined;
}

/**
 * Manifests whose digest starts with `prefix` (`sha256:d3db`), by digest, at most `limit`: the
 * lookup of docker-style short image IDs (a range scan on the digest index).
 */
export function manifestsByDigestPrefix(index: IndexDb, prefix: string, limit: number): ManifestRow[] {
  return index
    .stmt('SELECT * FROM manifest WHERE digest >= ? AND digest < ? ORDER BY digest LIMIT ?')
    .all(prefix, `${prefix}~`, limit) as ManifestRow[];
}

/** One manifest no ref points at (`msb images -a`'s `<none>` rows). */
export interface UntaggedRow {
  digest: string;
  os: string | null;
  architecture: string | null;
  variant: string | null;
  layer_count: number;
  size_bytes: number | null;
  created_at: number;
  materialized_at: number | null;
}

/** Manifests no ref points at, newest first (ties by digest). */
export function untaggedManifests(index: IndexDb): UntaggedRow[] {
  return index
    .stmt(`SELECT m.digest, m.os, m.architecture, m.variant, m.layer_count, m.size_bytes, m.created_at, m.materialized_at
    FROM manifest m WHERE NOT EXISTS (SELECT 1 FROM image_ref r WHERE r.manifest_id = m.id)
    ORDER BY m.created_at DESC, m.digest`)
    .all() as UntaggedRow[];
}

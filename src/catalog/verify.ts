/**
 * What verify reads and records (docs/storage.md §10): the artifact rows with their recorded
 * lengths and content digests, SQLite's own consistency checks, the digests measured on first
 * verify of rows written before migration 2, and the artifact columns of a manifest whose fsmeta
 * and VMDK a repair rebuilt.
 */
import type { IndexDb } from './db.js';

export interface VerifyLayer {
  diffId: string;
  /** Recorded length; null = recorded missing. */
  sizeBytes: number | null;
  contentDigest: string | null;
}

export interface VerifyManifest {
  id: number;
  digest: string;
  source: 'registry' | 'archive';
  fsmetaBytes: number | null;
  vmdkBytes: number | null;
  fsmetaDigest: string | null;
  vmdkDigest: string | null;
  /** diff_id per position, bottom first. */
  diffIds: string[];
  /** Its references (canonical), newest first. */
  references: string[];
}

/** Every layer row, by diff_id. */
export function verifyLayers(index: IndexDb): VerifyLayer[] {
  return index
    .stmt(
      'SELECT diff_id AS diffId, erofs_size_bytes AS sizeBytes, content_digest AS contentDigest FROM layer ORDER BY diff_id',
    )
    .all() as VerifyLayer[];
}

/** Every manifest with its layers and references, by digest. */
export function verifyManifests(index: IndexDb): VerifyManifest[] {
  const rows = index
    .stmt(`SELECT id, digest, source, fsmeta_bytes AS fsmetaBytes, vmdk_bytes AS vmdkBytes,
      fsmeta_digest AS fsmetaDigest, vmdk_digest AS vmdkDigest FROM manifest ORDER BY digest`)
    .all() as Omit<VerifyManifest, 'diffIds' | 'references'>[];
  const layers = index
    .stmt(`SELECT ml.manifest_id AS m, l.diff_id AS d FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id
      ORDER BY ml.manifest_id, ml.position`)
    .all() as { m: number; d: string }[];
  const refs = index
    .stmt('SELECT manifest_id AS m, reference AS r FROM image_ref ORDER BY last_used_at DESC, reference')
    .all() as { m: number; r: string }[];
  const byId = new Map(rows.map((r) => [r.id, { ...r, diffIds: [] as string[], references: [] as string[] }]));
  for (const l of layers) byId.get(l.m)?.diffIds.push(l.d);
  for (const r of refs) byId.get(r.m)?.references.push(r.r);
  return [...byId.values()];
}

/** `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: one line per problem, empty when sound. */
export function indexProblems(index: IndexDb): string[] {
  const out: string[] = [];
  for (const r of index.db.pragma('integrity_check') as { integrity_check: string }[])
    if (r.integrity_check !== 'ok') out.push(r.integrity_check);
  for (const r of index.db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[])
    out.push(`foreign key: ${r.table} row ${r.rowid} names a missing ${r.parent} row`);
  return out;
}

/** First verify of an older row: records the measured digest while the recorded length still matches. */
export function recordLayerDigest(index: IndexDb, diffId: string, sizeBytes: number, digest: string): boolean {
  return (
    index
      .stmt('UPDATE layer SET content_digest = ? WHERE diff_id = ? AND erofs_size_bytes = ? AND content_digest IS NULL')
      .run(digest, diffId, sizeBytes).changes === 1
  );
}

/** The same for a manifest's fsmeta or VMDK. */
export function recordManifestDigest(
  index: IndexDb,
  manifestDigest: string,
  kind: 'fsmeta' | 'vmdk',
  sizeBytes: number,
  digest: string,
): boolean {
  const sql =
    kind === 'fsmeta'
      ? 'UPDATE manifest SET fsmeta_digest = ? WHERE digest = ? AND fsmeta_bytes = ? AND fsmeta_digest IS NULL'
      : 'UPDATE manifest SET vmdk_digest = ? WHERE digest = ? AND vmdk_bytes = ? AND vmdk_digest IS NULL';
  return index.stmt(sql).run(digest, manifestDigest, sizeBytes).changes === 1;
}

export interface RebuiltArtifacts {
  fsmetaBytes: number;
  vmdkBytes: number;
  sizeBytes: number;
  fsmetaDigest: string | null;
  vmdkDigest: string | null;
}

/** A repair rebuilt fsmeta and the VMDK of a manifest: their lengths, digests and the image size. */
export function updateManifestArtifacts(
  index: IndexDb,
  manifestDigest: string,
  a: RebuiltArtifacts,
  now: number,
): void {
  index
    .stmt(`UPDATE manifest SET fsmeta_bytes = ?, vmdk_bytes = ?, size_bytes = ?, fsmeta_digest = ?, vmdk_digest = ?,
      materialized_at = ? WHERE digest = ?`)
    .run(a.fsmetaBytes, a.vmdkBytes, a.sizeBytes, a.fsmetaDigest, a.vmdkDigest, now, manifestDigest);
}

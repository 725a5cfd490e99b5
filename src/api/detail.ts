/** Builders for ImageDetail / ImageConfigDetail / ImageArtifacts from index rows (no file access). */
import type { IndexDb } from '../catalog/db.js';
import { configRaw, findManifest, manifestLayers, type RefRow } from '../catalog/queries.js';
import { pinsOfManifest } from '../catalog/pins.js';
import { pinInfo } from '../store/remove.js';
import { refRowToHandle } from '../store/publish.js';
import type { CachePaths } from '../store/paths.js';
import type { ImageConfigDetail, ImageDetail } from './types.js';

function strArray(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
}

/**
 * OCI config → ImageConfigDetail (docs/api.md §2.3): Env→env ([] when absent), Cmd/Entrypoint (null
 * when absent, [] kept), WorkingDir/User ("" or absent → null), Labels (null when absent or
 * empty), StopSignal. Null if the bytes do not parse as a JSON object.
 */
export function configDetail(raw: Buffer | undefined, digest: string): ImageConfigDetail | null {
  if (!raw) return null;
  let j: unknown;
  try {
    j = JSON.parse(raw.toString('utf8'));
  } catch {
    return null;
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) return null;
  const c = ((j as { config?: unknown }).config ?? {}) as Record<string, unknown>;
  const cfg = c && typeof c === 'object' && !Array.isArray(c) ? c : {};
  const labels =
    cfg.Labels && typeof cfg.Labels === 'object' && !Array.isArray(cfg.Labels)
      ? (Object.fromEntries(
          Object.entries(cfg.Labels as Record<string, unknown>).filter(([, v]) => typeof v === 'string'),
        ) as Record<string, string>)
      : null;
  const nonEmpty = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return {
    digest,
    env: strArray(cfg.Env) ?? [],
    cmd: strArray(cfg.Cmd),
    entrypoint: strArray(cfg.Entrypoint),
    workingDir: nonEmpty(cfg.WorkingDir),
    user: nonEmpty(cfg.User),
    labels: labels && Object.keys(labels).length > 0 ? labels : null,
    stopSignal: nonEmpty(cfg.StopSignal),
  };
}

/** Layer rows as the positions `CachePaths.artifacts` wants. */
export function layerPositions(
  rows: readonly { position: number; diff_id: string }[],
): { position: number; diffId: string }[] {
  return rows.map((l) => ({ position: l.position, diffId: l.diff_id }));
}

/** Call inside a read transaction. */
export function buildDetail(index: IndexDb, paths: CachePaths, row: RefRow): ImageDetail {
  const man = findManifest(index, row.digest)!;
  const layers = manifestLayers(index, man.id);
  return {
    handle: refRowToHandle(row),
    config: configDetail(configRaw(index, man.config_digest), man.config_digest),
    layers: layers.map((l) => ({
      position: l.position,
      diffId: l.diff_id,
      blobDigest: l.blob_digest,
      mediaType: l.media_type,
      compressedSizeBytes: l.compressed_size_bytes,
      erofsSizeBytes: l.erofs_size_bytes,
    })),
    artifacts: paths.artifacts(man.digest, layerPositions(layers)),
    pins: pinsOfManifest(index, man.digest).map(pinInfo),
  };
}

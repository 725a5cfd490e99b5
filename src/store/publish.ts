/**
 * The ONLY way images enter the index (docs/storage.md §4). Pull, load and Sandbox.create call these
 * after their files are published atomically (atomic.ts):
 *
 * 1. for each layer: publish the file, then `upsertLayerRow` (one transaction, under its layer lock,
 *    with the diff_id already a lease item so prune cannot take the row before the manifest uses it);
 * 2. publish fsmeta, then the VMDK (under the image lock);
 * 3. `publishImage`: ONE transaction inserting/updating config, manifest, manifest_layer and the
 *    image_ref rows (and, for Sandbox.create, the pin).
 *
 * A cache hit calls `touchRef` instead (last_used_at of the ref and of its layers).
 */
import { promises as fsp, type Stats } from 'node:fs';
import { CacheCorruptError, DigestMismatchError, InvalidArgumentError, toIoError } from '../errors.js';
import type { Store } from './store.js';
import { ImageHandle } from './handle.js';
import { familiarOf } from '../reference/reference.js';
import type { IndexDb } from '../catalog/db.js';
import {
  findLayer,
  findRef,
  insertConfigIfAbsent,
  insertLayer,
  invalidateManifestsOfLayer,
  replaceManifestLayers,
  touchRefAndLayers,
  updateLayer,
  upsertImageRef,
  upsertManifest,
  type ListRow,
  type RefRow,
} from '../catalog/queries.js';
import { upsertPin } from '../catalog/pins.js';
import { updateManifestArtifacts } from '../catalog/verify.js';
import { digestAlgorithm, digestOf, isDigest } from '../util/digest.js';

/** st_blocks × 512 and length of a regular file (lstat: a symlink is not followed). */
export async function measureFile(path: string): Promise<{ size: number; alloc: number }> {
  let st: Stats;
  try {
    st = await fsp.lstat(path);
  } catch (err) {
    throw toIoError(err, path);
  }
  if (!st.isFile()) throw new CacheCorruptError(path, 'not a regular file');
  return { size: st.size, alloc: st.blocks * 512 };
}

export function listRowToHandle(r: ListRow): ImageHandle {
  return new ImageHandle({
    reference: familiarOf(r[0]),
    canonicalReference: r[0],
    manifestDigest: r[3],
    architecture: r[5],
    os: r[4],
    variant: r[6],
    layerCount: r[7],
    sizeBytes: r[8],
    createdAt: new Date(r[1]),
    lastUsedAt: new Date(r[2]),
  });
}

export function refRowToHandle(r: RefRow): ImageHandle {
  return new ImageHandle({
    reference: familiarOf(r.reference),
    canonicalReference: r.reference,
    manifestDigest: r.digest,
    architecture: r.architecture,
    os: r.os,
    variant: r.variant,
    layerCount: r.layer_count,
    sizeBytes: r.size_bytes,
    createdAt: new Date(r.created_at),
    lastUsedAt: new Date(r.last_used_at),
  });
}

export interface LayerRowInput {
  diffId: string;
  /** Length of the published layer EROFS file. */
  erofsSizeBytes: number;
  /** st_blocks*512 of it; measured here when omitted. */
  erofsAllocBytes?: number;
  inodes: number;
  blocks: number;
  /** The file's content digest, computed while it was written (docs/storage.md §10.1); omitted = unknown. */
  contentDigest?: string | null | undefined;
}

/**
 * Inserts or updates the `layer` row of a published layer file, in its own transaction. Call it
 * while holding the layer lock of `diffId`, after the file is in place. When an existing row's
 * length changes (a forced rebuild produced another block count), every manifest using the layer
 * gets `fsmeta_bytes = vmdk_bytes = size_bytes = NULL` in the same transaction, so its next use
 * rebuilds them (docs/storage.md §4 "Replacing a layer").
 */
export async function upsertLayerRow(
  store: Store,
  input: LayerRowInput,
  opts: { signal?: AbortSignal | undefined; now?: number } = {},
): Promise<{ inserted: boolean; invalidatedManifests: string[] }> {
  if (!isDigest(input.diffId))
    throw new InvalidArgumentError('diffId', `invalid diff_id ${JSON.stringify(input.diffId)}`);
  const alloc = input.erofsAllocBytes ?? (await measureFile(store.paths.layer(input.diffId))).alloc;
  const now = opts.now ?? Date.now();
  const index = store.index;
  const row = {
    diffId: input.diffId,
    erofsSizeBytes: input.erofsSizeBytes,
    erofsAllocBytes: alloc,
    inodes: input.inodes,
    blocks: input.blocks,
    contentDigest: input.contentDigest ?? null,
  };
  return index.write(
    () => {
      const cur = findLayer(index, input.diffId);
      if (!cur) {
        insertLayer(index, row, now);
        return { inserted: true, invalidatedManifests: [] };
      }
      const invalidated =
        cur.erofs_size_bytes !== input.erofsSizeBytes ? invalidateManifestsOfLayer(index, cur.id) : [];
      updateLayer(index, cur.id, row, now);
      return { inserted: false, invalidatedManifests: invalidated };
    },
    { signal: opts.signal },
  );
}

export interface PublishImageRecord {
  /** Canonical references to point at the manifest (new refs get created_at; existing are re-pointed). */
  references: string[];
  /** The index (manifest list) the manifest was resolved through, if any. */
  indexDigest?: string | null;
  manifest: { digest: string; mediaType: string; raw: Buffer; source: 'registry' | 'archive' };
  /** The resolved platform (index entry, else config). */
  platform: { os: string | null; architecture: string | null; variant: string | null };
  config: { digest: string; raw: Buffer };
  /** Bottom to top; every diffId must already have a `layer` row (upsertLayerRow). */
  layers: { diffId: string; blobDigest: string; mediaType: string; compressedSizeBytes: number | null }[];
  /**
   * Content digests of the fsmeta and VMDK this operation wrote (docs/storage.md §10.1); null or
   * absent = reused, the recorded digest stays while the length is unchanged.
   */
  artifactDigests?: { fsmeta: string | null; vmdk: string | null };
  /** Sandbox.create: written in the same transaction (replaces a pin of the same kind and key). */
  pin?: { kind: 'sandbox' | 'snapshot'; key: string; name: string | null; reference: string | null };
  now?: number;
}

export interface PublishedImage {
  manifestId: number;
  /** One per `references` entry, in that order. */
  handles: ImageHandle[];
  sizeBytes: number;
}

/** fsmeta + VMDK + distinct layer files: lengths and allocated bytes (lstat only). */
export async function measureArtifacts(
  store: Store,
  manifestDigest: string,
  diffIds: string[],
): Promise<{ fsmetaBytes: number; vmdkBytes: number; sizeBytes: number }> {
  const fsmeta = await measureFile(store.paths.fsmeta(manifestDigest));
  const vmdk = await measureFile(store.paths.vmdk(manifestDigest));
  let size = fsmeta.alloc + vmdk.alloc;
  for (const d of new Set(diffIds)) size += (await measureFile(store.paths.layer(d))).alloc;
  return { fsmetaBytes: fsmeta.size, vmdkBytes: vmdk.size, sizeBytes: size };
}

function checkRaw(what: string, digest: string, raw: Buffer): void {
  if (!isDigest(digest)) throw new InvalidArgumentError(what, `invalid ${what} digest ${JSON.stringify(digest)}`);
  const actual = digestOf(raw, digestAlgorithm(digest));
  if (actual !== digest) throw new DigestMismatchError(what, digest, actual);
}

/**
 * Publishes one image in ONE transaction, after every artifact file is in place: config (kept if
 * present), manifest (inserted, or updated with the new platform/sizes/materialized_at),
 * manifest_layer rows, image_ref rows (`created_at` kept for an existing ref, `last_used_at` = now),
 * and the optional pin. Measures the files first (outside the transaction).
 */
export async function publishImage(
  store: Store,
  record: PublishImageRecord,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<PublishedImage> {
  return (await publishImages(store, [record], opts))[0]!;
}

/**
 * Several images in ONE transaction (all or nothing), e.g. a multi-image archive load: the same
 * rows and values as `publishImage`, for each record in order.
 */
export async function publishImages(
  store: Store,
  records: PublishImageRecord[],
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<PublishedImage[]> {
  for (const record of records) {
    checkRaw('manifest', record.manifest.digest, record.manifest.raw);
    checkRaw('config', record.config.digest, record.config.raw);
    for (const l of record.layers) {
      if (!isDigest(l.diffId)) throw new InvalidArgumentError('layers', `invalid diff_id ${JSON.stringify(l.diffId)}`);
      if (!isDigest(l.blobDigest))
        throw new InvalidArgumentError('layers', `invalid blob digest ${JSON.stringify(l.blobDigest)}`);
    }
  }
  const measured: Awaited<ReturnType<typeof measureArtifacts>>[] = [];
  for (const record of records)
    measured.push(
      await measureArtifacts(
        store,
        record.manifest.digest,
        record.layers.map((l) => l.diffId),
      ),
    );
  const index = store.index;
  return index.write(
    () => records.map((record, i) => writeImageRows(store, record, measured[i]!, record.now ?? Date.now())),
    { signal: opts.signal },
  );
}

/** The rows of one image; call inside a write transaction. */
function writeImageRows(
  store: Store,
  record: PublishImageRecord,
  measured: { fsmetaBytes: number; vmdkBytes: number; sizeBytes: number },
  now: number,
): PublishedImage {
  const index = store.index;
  insertConfigIfAbsent(index, record.config.digest, record.config.raw, now);
  const m = record.manifest;
  const p = record.platform;
  const manifestId = upsertManifest(
    index,
    {
      digest: m.digest,
      mediaType: m.mediaType,
      raw: m.raw,
      configDigest: record.config.digest,
      os: p.os,
      architecture: p.architecture,
      variant: p.variant,
      layerCount: record.layers.length,
      source: m.source,
      ...measured,
      fsmetaDigest: record.artifactDigests?.fsmeta ?? null,
      vmdkDigest: record.artifactDigests?.vmdk ?? null,
    },
    now,
  );
  replaceManifestLayers(
    index,
    manifestId,
    record.layers.map((l) => {
      const row = findLayer(index, l.diffId);
      if (!row)
        throw new CacheCorruptError(
          store.paths.layer(l.diffId),
          `layer ${l.diffId} has no index row (publish it with upsertLayerRow first)`,
        );
      return {
        layerId: row.id,
        blobDigest: l.blobDigest,
        mediaType: l.mediaType,
        compressedSizeBytes: l.compressedSizeBytes,
      };
    }),
    now,
  );
  for (const ref of record.references) upsertImageRef(index, ref, manifestId, record.indexDigest ?? null, now);
  if (record.pin) upsertPin(index, { ...record.pin, manifestDigest: m.digest }, now);
  const handles = record.references.map((ref) => refRowToHandle(findRef(index, ref)!));
  return { manifestId, handles, sizeBytes: measured.sizeBytes };
}

/**
 * A repair rebuilt fsmeta and the VMDK of a manifest (docs/storage.md §10.3): measures the files and
 * records their lengths, the image size and the content digests the rebuild computed.
 */
export async function recordRebuiltArtifacts(
  store: Store,
  manifestDigest: string,
  diffIds: string[],
  digests: { fsmeta: string | null; vmdk: string | null },
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const m = await measureArtifacts(store, manifestDigest, diffIds);
  await store.index.write(
    () =>
      updateManifestArtifacts(
        store.index,
        manifestDigest,
        { ...m, fsmetaDigest: digests.fsmeta, vmdkDigest: digests.vmdk },
        Date.now(),
      ),
    { signal: opts.signal },
  );
}

/**
 * Cache hit: `last_used_at = now` on the ref and on its manifest's layers. Returns the refreshed
 * handle, or null if the ref does not exist (any more).
 */
export async function touchRef(
  store: Store,
  canonical: string,
  opts: { signal?: AbortSignal | undefined; now?: number } = {},
): Promise<ImageHandle | null> {
  const index = store.index;
  const now = opts.now ?? Date.now();
  return index.write(() => touchRefSync(index, canonical, now), { signal: opts.signal });
}

/** The body of touchRef, for callers that combine it with other writes in one transaction. */
export function touchRefSync(index: IndexDb, canonical: string, now: number): ImageHandle | null {
  const r = findRef(index, canonical);
  if (!r) return null;
  touchRefAndLayers(index, r.ref_id, r.manifest_id, now);
  return refRowToHandle(findRef(index, canonical)!);
}

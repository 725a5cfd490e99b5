/**
 * Step 3 of the pull (docs/pull.md §8): the cache check. Look the reference up (for a digest
 * reference also a manifest with that digest, or a ref recorded with that index digest whose
 * platform fits), lease what it names, validate every layer under its lock and fsmeta + VMDK under
 * the image lock (docs/storage.md §5).
 *
 * - all valid → the cache hit: exactly `resolving`, `resolved{cached:true}`, `complete{cached:true}`;
 * - layers valid, fsmeta or VMDK not → the plan from the index, rebuilt offline by the later steps;
 * - a layer missing or invalid → `never`: NotCachedError; `if-missing`: the plan from the index
 *   (a repair fetches only the missing layers, by their stored descriptors).
 */
import { ManifestInvalidError, NotCachedError } from '../errors.js';
import {
  configRaw,
  findManifest,
  findManifestById,
  findRef,
  manifestIdsByIndexDigest,
  manifestLayers,
  type ManifestLayerRow,
  type ManifestRow,
  type RefRow,
} from '../catalog/queries.js';
import { parseManifest } from '../oci/manifest.js';
import { formatPlatform, isPlatformCompatible, type Platform } from '../oci/platform.js';
import { checkLayer, checkStitch, type StitchCheck } from '../store/artifacts.js';
import { crossCheckImage } from '../store/consistency.js';
import type { ImageHandle } from '../store/handle.js';
import { withLock } from '../store/locks.js';
import { publishImage, touchRef } from '../store/publish.js';
import type { Store } from '../store/store.js';
import { commitRecord, emitResolved, leaseItems, pullResult, type ImagePlan } from './plan.js';
import type { PullSession } from './session.js';
import type { PullResult } from './types.js';

function platformOfRow(m: ManifestRow): Platform {
  return { os: m.os ?? 'unknown', architecture: m.architecture ?? 'unknown', variant: m.variant };
}

interface CachedImage {
  ref: RefRow | null;
  manifest: ManifestRow;
  /** The layers as the stored manifest and config define them (store/consistency.ts), never the rows. */
  layers: Pick<ManifestLayerRow, 'position' | 'diff_id' | 'blob_digest'>[];
  configRaw: Buffer;
  indexDigest: string | null;
  /** The rows disagree with the stored manifest (CACHE_CORRUPT): the pull repairs them by committing again. */
  corrupt: string | null;
}

/** The lookup: the ref, else (digest reference) a manifest with that digest or a ref resolved through that index. */
async function lookupCached(s: PullSession): Promise<CachedImage | null> {
  const { index } = s.store;
  const { parsed, n } = s;
  return index.read(() => {
    const ref = findRef(index, parsed.canonical) ?? null;
    let manifest: ManifestRow | undefined;
    let indexDigest: string | null = null;
    if (ref) {
      manifest = findManifestById(index, ref.manifest_id);
      indexDigest = ref.index_digest;
    } else if (parsed.digest) {
      manifest = findManifest(index, parsed.digest);
      if (!manifest) {
        for (const id of manifestIdsByIndexDigest(index, parsed.digest)) {
          const m = findManifestById(index, id)!;
          if (isPlatformCompatible(platformOfRow(m), n.target)) {
            manifest = m;
            indexDigest = parsed.digest;
            break;
          }
        }
      }
    }
    if (!manifest) return null;
    const raw = configRaw(index, manifest.config_digest);
    if (!raw) return null;
    const check = crossCheckImage({
      manifestDigest: manifest.digest,
      manifestMediaType: manifest.media_type,
      manifestRaw: manifest.raw,
      layerCount: manifest.layer_count,
      configDigest: manifest.config_digest,
      configRaw: raw,
      rows: manifestLayers(index, manifest.id).map((l) => ({
        position: l.position,
        diffId: l.diff_id,
        blobDigest: l.blob_digest,
      })),
    });
    const layers = check.layers.map((l) => ({ position: l.position, diff_id: l.diffId, blob_digest: l.blobDigest }));
    return { ref, manifest, layers, configRaw: raw, indexDigest, corrupt: check.problem };
  });
}

/**
 * The plan of a cached image. Blob descriptors (digest, size, media type) come from the stored raw
 * manifest, the verified source of truth: `compressed_size_bytes` may be NULL, and a repair must
 * not fetch with size 0.
 */
function planFromCache(c: CachedImage): ImagePlan {
  const parsed = parseManifest(c.manifest.raw, { contentType: c.manifest.media_type, digest: c.manifest.digest });
  const descriptors = parsed.kind === 'manifest' ? parsed.layers : [];
  return {
    manifestDigest: c.manifest.digest,
    manifestMediaType: c.manifest.media_type,
    manifestRaw: c.manifest.raw,
    configDigest: c.manifest.config_digest,
    configRaw: c.configRaw,
    indexDigest: c.indexDigest,
    platform: platformOfRow(c.manifest),
    positions: c.layers.map((l) => {
      const d = descriptors[l.position];
      if (!d || d.digest !== l.blob_digest) {
        throw new ManifestInvalidError(
          `stored manifest has no layer ${l.blob_digest} at position ${l.position}`,
          c.manifest.digest,
        );
      }
      return {
        position: l.position,
        diffId: l.diff_id,
        blob: { digest: d.digest, size: d.size, mediaType: d.mediaType },
      };
    }),
  };
}

/** Every distinct layer under its lock, then fsmeta + VMDK under the image lock. */
async function validateCached(
  store: Store,
  c: CachedImage,
  signal: AbortSignal,
  refetch?: ReadonlySet<string>,
): Promise<{ allValid: boolean; layersValid: boolean }> {
  const sizes = new Map<string, number>();
  // A layer verify --repair asks to fetch again counts as invalid (docs/storage.md §10.3).
  if (c.layers.some((l) => refetch?.has(l.diff_id))) return { allValid: false, layersValid: false };
  for (const d of [...new Set(c.layers.map((l) => l.diff_id))]) {
    const ok = await withLock(
      store,
      'layer',
      d,
      async () => {
        const chk = await checkLayer(store, d);
        if (chk.valid) sizes.set(d, chk.sizeBytes);
        return chk.valid;
      },
      { signal },
    );
    if (ok !== true) return { allValid: false, layersValid: false };
  }
  if (c.manifest.fsmeta_bytes === null || c.manifest.vmdk_bytes === null) return { allValid: false, layersValid: true };
  const diffIds = c.layers.map((l) => l.diff_id);
  const st = (await withLock(
    store,
    'image',
    c.manifest.digest,
    () => checkStitch(store, c.manifest.digest, diffIds, sizes, c.manifest.fsmeta_bytes),
    { signal },
  )) as StitchCheck;
  return { allValid: st.fsmetaValid && st.vmdkValid, layersValid: true };
}

/** Does the cached image answer this pull? (`always`: only after a HEAD that matched, §5.1.) */
async function cacheAnswers(s: PullSession, c: CachedImage | null): Promise<boolean> {
  const { n, parsed } = s;
  if (c === null || (n.explicitPlatform && !isPlatformCompatible(platformOfRow(c.manifest), n.target))) return false;
  if (n.policy !== 'always' || parsed.digest) return true;
  const h = await (await s.getClient()).headManifest(parsed, parsed.tag!, { signal: s.signal });
  s.source = h.source;
  if (h.digest === null) return false;
  const isIndexHit = h.digest === c.indexDigest;
  return h.digest === c.manifest.digest || (isIndexHit && isPlatformCompatible(platformOfRow(c.manifest), n.target));
}

/** The cache hit's commit (a new name only) and events. */
async function cacheHit(s: PullSession, c: CachedImage): Promise<PullResult> {
  const canonical = s.parsed.canonical;
  let handle: ImageHandle | null = null;
  if (c.ref) handle = await touchRef(s.store, canonical, { signal: s.signal });
  const p = planFromCache(c);
  if (!handle) {
    // Same image, new name (digest reference): only the ref row is new.
    await s.hook('before-commit');
    handle = (await publishImage(s.store, commitRecord(canonical, p))).handles[0]!;
  }
  emitResolved(s.emitter, canonical, p, { totalDownloadBytes: 0, cached: true, source: s.source });
  s.emitter.emit({
    type: 'complete',
    reference: canonical,
    manifestDigest: p.manifestDigest,
    cached: true,
    layerCount: p.positions.length,
  });
  return pullResult(s.store, s.parsed, p, handle, { cached: true, source: s.source, outcomes: null });
}

/**
 * Step 3. Returns the result of a cache hit, the plan of an image to rebuild or repair from the
 * index, or null (resolve from the registry).
 */
export async function checkCache(s: PullSession): Promise<{ hit: PullResult } | { plan: ImagePlan } | null> {
  const c = await lookupCached(s);
  const { n, parsed } = s;
  if (!(await cacheAnswers(s, c))) {
    if (n.policy !== 'never') return null;
    const elsewhere = c && n.explicitPlatform && !isPlatformCompatible(platformOfRow(c.manifest), n.target);
    throw new NotCachedError(
      parsed.familiar,
      elsewhere
        ? `${parsed.familiar} is cached for ${formatPlatform(platformOfRow(c.manifest))}, not ${formatPlatform(n.target)}, and the policy is 'never'`
        : undefined,
    );
  }
  const cached = c!;
  await s.lease!.addItems(
    leaseItems(
      cached.manifest.digest,
      cached.layers.map((l) => l.diff_id),
    ),
  );
  if (cached.corrupt) s.warn('CACHE_CORRUPT', `${cached.corrupt}; repairing them from the stored manifest`);
  const v = await validateCached(s.store, cached, s.signal, s.input.options.refetch);
  if (v.allValid && !cached.corrupt) return { hit: await cacheHit(s, cached) };
  if (n.policy === 'never' && !v.layersValid) {
    throw new NotCachedError(
      parsed.familiar,
      `${parsed.familiar} is not fully cached (a layer is missing or invalid) and the policy is 'never'`,
    );
  }
  return { plan: planFromCache(cached) };
}

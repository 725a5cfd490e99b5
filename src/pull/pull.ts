/**
 * The pull (docs/pull.md §8), behind `Image.pull*` and `Sandbox.create`:
 *
 *  1. normalize; 2. ref lock `ref-<s>` (abortable) + lease (items BEFORE anything is checked);
 *  3. cache check for `if-missing`/`never` (and `always` after a matching HEAD): all valid → a
 *     cache hit with exactly three events; fsmeta/VMDK invalid → rebuilt offline; a layer missing →
 *     `never` NotCachedError, `if-missing` repair from the stored manifest (no tag resolution);
 *  4. resolve: manifest (index → platform), config, lease, `resolved`;
 *  5. layers (layer.ts): dedup by diff_id, ≤ concurrency, each under its layer lock;
 *  6. stitch under the image lock: reuse valid fsmeta + VMDK unless `force`;
 *  7. ONE commit transaction (publishImage); 8. release, `complete`.
 *
 * Abort (§11): HTTP, decompressors and lock waits are cancelled, candidates deleted, the `.part`
 * kept, locks and lease released, AbortedError (cause = signal.reason). Once the commit has begun
 * an abort is ignored. A throwing `onProgress` aborts the pull, which then rejects with that error.
 *
 * Choices where the contract is silent:
 * - `always` with a digest reference behaves like `if-missing`: content addressed by digest
 *   cannot change, so there is nothing to re-resolve.
 * - A digest reference whose manifest is cached under another ref (or whose index digest is
 *   recorded on a ref with a compatible platform) is a cache hit; the commit only adds the ref.
 * - An offline rebuild or a repair reports `cached: false` (something was built or fetched) and
 *   emits `resolved{cached:false}`, one `layerMaterializeComplete` per position, the stitch events.
 */
import { lstat } from 'node:fs/promises';
import { AbortedError, InvalidArgumentError, ManifestInvalidError, MsbError, NotCachedError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { PullOperation, PullOptions, PullResult } from './types.js';
import type { ImageHandle } from '../store/handle.js';
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
import { resolveLimits, type Limits } from '../limits.js';
import { parseReference, type ParsedReference } from '../reference/reference.js';
import { createLease, type Lease } from '../store/lease.js';
import { acquireFileLock } from '../util/flock.js';
import { withLock } from '../store/locks.js';
import { publishImage, touchRef } from '../store/publish.js';
import type { BlobEvent, BlobSource } from './blob-pipeline.js';
import type { PullDeps, PullHookPoint } from './deps.js';
import type { RegistryCache, RegistryClient } from '../registry/client.js';
import { resolveImage } from '../registry/resolve.js';
import { PullEmitter, linkedAbort, makeOperation, type PullEvent } from './events.js';
import { parseManifest } from '../oci/manifest.js';
import { materializeLayers, type LayerOutcome, type LayerPosition } from './layer.js';
import { checkLayer, checkStitch, type StitchCheck } from '../store/artifacts.js';
import { stitchStep } from './stitch-step.js';
import { crossCheckImage } from '../store/consistency.js';
import { formatPlatform, hostPlatform, isPlatformCompatible, parsePlatform, type Platform } from '../oci/platform.js';

type Policy = 'if-missing' | 'always' | 'never';

interface Normalized {
  policy: Policy;
  force: boolean;
  target: Platform;
  explicitPlatform: boolean;
  concurrency: number;
  limits: Limits;
}

/** Everything the later steps need, whether it came from the registry or from the index. */
interface ImagePlan {
  manifestDigest: string;
  manifestMediaType: string;
  manifestRaw: Buffer;
  configDigest: string;
  configRaw: Buffer;
  indexDigest: string | null;
  platform: Platform;
  positions: LayerPosition[];
}

let depsOverride: PullDeps | null = null;
/** @internal Test hook: replace the collaborators (e.g. to inject crashes). `null` restores. */
export function _setPullDeps(d: PullDeps | null): void {
  depsOverride = d;
}

/** @internal The collaborators in force (the override, else the real modules). */
export async function _pullDeps(): Promise<PullDeps> {
  if (depsOverride) return depsOverride;
  const m = await import('./deps-default.js');
  return m.defaultPullDeps();
}
const getDeps = _pullDeps;

function normalizeOptions(backend: StoreOpener, options: PullOptions, store: Store | null): Normalized {
  const policy = options.policy ?? 'if-missing';
  if (policy !== 'if-missing' && policy !== 'always' && policy !== 'never') {
    throw new InvalidArgumentError(
      'policy',
      `invalid pull policy ${JSON.stringify(policy)}: expected if-missing, always or never`,
    );
  }
  const force = options.force === true;
  if (force && policy === 'never')
    throw new InvalidArgumentError('force', "force cannot be combined with policy 'never'");
  const explicitPlatform = options.platform !== undefined && options.platform !== null;
  const target = explicitPlatform ? parsePlatform(options.platform) : hostPlatform();
  const concurrency = options.concurrency ?? store?.pullConcurrency ?? backend.settings.pull.concurrency;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError(
      'concurrency',
      `concurrency must be a positive integer, not ${JSON.stringify(options.concurrency)}`,
    );
  }
  const limits = resolveLimits(store?.limits, options.limits);
  return { policy, force, target, explicitPlatform, concurrency, limits };
}

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

/** Step 3 lookup: the ref, else (digest reference) a manifest with that digest or a ref resolved through that index. */
async function lookupCached(store: Store, parsed: ParsedReference, n: Normalized): Promise<CachedImage | null> {
  const index = store.index;
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

/**
 * Runs one pull. `options.lease` (Sandbox.create) makes the pull add its items to the caller's
 * lease instead of creating (and releasing) its own.
 */
export async function pullImage(
  backend: StoreOpener,
  reference: string,
  options: PullOptions & { lease?: unknown } = {},
): Promise<PullResult> {
  return runPull(backend, reference, options, null);
}

/** `Image.pullWithProgress`: starts at once; events through the async iterator (docs/api.md §2.6). */
export function startPull(backend: StoreOpener, reference: string, options: PullOptions = {}): PullOperation {
  return makeOperation(options.signal, (signal, onEvent) =>
    runPull(backend, reference, { ...options, signal }, onEvent),
  );
}

async function runPull(
  backend: StoreOpener,
  reference: string,
  options: PullOptions & { lease?: unknown },
  extraListener: ((e: PullEvent) => void) | null,
): Promise<PullResult> {
  const parsed = parseReference(reference);
  normalizeOptions(backend, options, null); // argument errors before any I/O
  const emitter = new PullEmitter();
  if (extraListener) emitter.addListener(extraListener);
  if (options.onProgress) emitter.addListener(options.onProgress);
  const ac = linkedAbort(options.signal, emitter);
  const state = { committing: false };
  try {
    return await backend._run(() => doPull(backend, parsed, options, emitter, ac.signal, state));
  } catch (err) {
    if (emitter.listenerError) throw emitter.listenerError.error;
    if (ac.signal.aborted && !(err instanceof AbortedError)) {
      // Undici's AbortError, a lock wait, a stream torn down: all are the abort (§11).
      if (!(err instanceof MsbError) || err.code === 'IO' || err.code === 'NETWORK' || err.code === 'REGISTRY')
        throw new AbortedError(ac.signal.reason);
    }
    throw err;
  } finally {
    ac.dispose();
  }
}

async function doPull(
  backend: StoreOpener,
  parsed: ParsedReference,
  options: PullOptions & { lease?: unknown },
  emitter: PullEmitter,
  signal: AbortSignal,
  state: { committing: boolean },
): Promise<PullResult> {
  const store = await backend._open('write', signal);
  const n = normalizeOptions(backend, options, store);
  // The collaborators (registry client, converter: undici, zstd…) are loaded only when needed:
  // a cache hit loads none of them (warm pull ≤ 3× a bare node start, issue 5).
  let depsP: Promise<PullDeps> | null = null;
  const loadDeps = () => (depsP ??= getDeps());
  const canonical = parsed.canonical;
  const hook = async (p: PullHookPoint) => {
    await depsOverride?.hook?.(p);
  };
  const warn = (code: string, message: string) => emitter.emit({ type: 'warning', code, message });
  const retries = store.settings.pull.retries;

  const refLock = await acquireFileLock(store.paths.lock('ref', canonical), { signal });
  const ownLease = !options.lease;
  let lease: Lease | null = null;
  let client: RegistryClient | null = null;
  const getClient = async (): Promise<RegistryClient> => {
    if (!client) {
      const deps = await loadDeps();
      client = deps.createClient({
        home: store.home,
        settings: store.settings,
        ...(options.auth !== undefined ? { auth: options.auth } : {}),
        ...(options.insecure !== undefined ? { insecure: options.insecure } : {}),
        ...(options.caCerts !== undefined ? { caCerts: options.caCerts } : {}),
        signal,
        cache: registryCacheOf(backend, deps),
        onRetry: (info) => emitter.emit({ type: 'retry', ...info }),
        onWarning: (w) => warn(w.code, w.message),
        // A config already in the index is not fetched again (acceptance C19: a zstd twin of a
        // cached image costs no blob GET at all); the client re-verifies it.
        localBlob: (digest) => store.index.read(() => configRaw(store.index, digest)),
      });
    }
    return client;
  };
  try {
    lease = ownLease ? await createLease(store, 'pull', { signal }) : (options.lease as Lease);
    emitter.emit({ type: 'resolving', reference: canonical });

    let plan: ImagePlan | null = null;
    let source: string | null = null;

    // Step 3: the cache check (also `always` after a HEAD that matched).
    if (!n.force) {
      const c = await lookupCached(store, parsed, n);
      const platformOk =
        c !== null && (!n.explicitPlatform || isPlatformCompatible(platformOfRow(c.manifest), n.target));
      let useCache = c !== null && platformOk;
      if (useCache && n.policy === 'always' && !parsed.digest) {
        const h = await (await getClient()).headManifest(parsed, parsed.tag!, { signal });
        source = h.source;
        const isIndexHit = h.digest !== null && h.digest === c!.indexDigest;
        useCache =
          h.digest !== null &&
          (h.digest === c!.manifest.digest ||
            (isIndexHit && isPlatformCompatible(platformOfRow(c!.manifest), n.target)));
      }
      if (useCache) {
        const cached = c!;
        await lease.addItems([
          { kind: 'manifest', value: cached.manifest.digest },
          ...[...new Set(cached.layers.map((l) => l.diff_id))].map((d) => ({ kind: 'layer' as const, value: d })),
        ]);
        if (cached.corrupt) warn('CACHE_CORRUPT', `${cached.corrupt}; repairing them from the stored manifest`);
        const hit = await validateCached(store, cached, signal);
        if (hit.allValid && !cached.corrupt) {
          let handle: ImageHandle | null = null;
          if (cached.ref) handle = await touchRef(store, canonical, { signal });
          const p = planFromCache(cached);
          if (!handle) {
            // Same image, new name (digest reference): only the ref row is new.
            await hook('before-commit');
            state.committing = true;
            const pub = await publishImage(store, commitRecord(canonical, p));
            handle = pub.handles[0]!;
          }
          emitter.emit({
            type: 'resolved',
            reference: canonical,
            manifestDigest: p.manifestDigest,
            indexDigest: p.indexDigest,
            platform: p.platform,
            layerCount: p.positions.length,
            totalDownloadBytes: 0,
            cached: true,
            source,
          });
          emitter.emit({
            type: 'complete',
            reference: canonical,
            manifestDigest: p.manifestDigest,
            cached: true,
            layerCount: p.positions.length,
          });
          return result(store, parsed, p, handle, true, source, null);
        }
        if (n.policy === 'never' && !hit.layersValid) {
          throw new NotCachedError(
            parsed.familiar,
            `${parsed.familiar} is not fully cached (a layer is missing or invalid) and the policy is 'never'`,
          );
        }
        plan = planFromCache(cached);
      } else if (n.policy === 'never') {
        throw new NotCachedError(
          parsed.familiar,
          c && !platformOk
            ? `${parsed.familiar} is cached for ${formatPlatform(platformOfRow(c.manifest))}, not ${formatPlatform(n.target)}, and the policy is 'never'`
            : undefined,
        );
      }
    }

    // Step 4: resolve.
    if (!plan) {
      const r = await resolveImage(await getClient(), parsed, {
        ...(options.platform !== undefined && options.platform !== null ? { platform: options.platform } : {}),
        limits: n.limits,
        signal,
        onWarning: (w) => warn(w.code, w.message),
      });
      source = r.source;
      plan = {
        manifestDigest: r.manifestDigest,
        manifestMediaType: r.manifest.mediaType,
        manifestRaw: r.manifestBytes,
        configDigest: r.configDigest,
        configRaw: r.configBytes,
        indexDigest: r.indexDigest,
        platform: r.platform,
        positions: r.manifest.layers.map((l, i) => ({
          position: i,
          diffId: r.config.diffIds[i]!,
          blob: { digest: l.digest, size: l.size, mediaType: l.mediaType },
        })),
      };
      await lease.addItems([
        { kind: 'manifest', value: plan.manifestDigest },
        ...[...new Set(plan.positions.map((p) => p.diffId))].map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
    }
    const totalDownloadBytes = await downloadEstimate(store, plan, n.force);
    emitter.emit({
      type: 'resolved',
      reference: canonical,
      manifestDigest: plan.manifestDigest,
      indexDigest: plan.indexDigest,
      platform: plan.platform,
      layerCount: plan.positions.length,
      totalDownloadBytes,
      cached: false,
      source,
    });
    await hook('resolved');

    // Step 5: layers.
    const outcomes = await materializeLayers(
      {
        backend,
        store,
        lease,
        emitter,
        signal,
        force: n.force,
        retries,
        concurrency: n.concurrency,
        deps: (await loadDeps()).converter,
        limits: n.limits,
        sourceFor: (blob, layerIndex): BlobSource => {
          if (n.policy === 'never') {
            // §8 step 3: `never` never touches the network, even if a layer vanished since the check.
            return () => {
              throw new NotCachedError(
                parsed.familiar,
                `layer ${blob.digest} of ${parsed.familiar} is not cached and the policy is 'never'`,
              );
            };
          }
          return (offset, o) => blobEvents(getClient, parsed, blob, layerIndex, offset, o);
        },
        warn,
        hook,
      },
      plan.positions,
    );
    await hook('layers-done');

    // Step 6: stitch.
    await stitchStep({
      store,
      lease,
      emitter,
      signal,
      manifestDigest: plan.manifestDigest,
      diffIds: plan.positions.map((p) => p.diffId),
      layers: outcomes,
      readTree: async (path) => (await loadDeps()).readTree(path),
      force: n.force,
      hook,
    });

    // Step 7: the commit. From here on an abort is ignored (§11).
    if (signal.aborted) throw new AbortedError(signal.reason);
    await hook('before-commit');
    state.committing = true;
    const pub = await publishImage(store, commitRecord(canonical, plan));
    await hook('committed');
    emitter.emit({
      type: 'complete',
      reference: canonical,
      manifestDigest: plan.manifestDigest,
      cached: false,
      layerCount: plan.positions.length,
    });
    return result(store, parsed, plan, pub.handles[0]!, false, source, outcomes);
  } finally {
    if (ownLease && lease) await lease.release();
    refLock.release();
    await (client as RegistryClient | null)?.close().catch(() => {});
  }
}

/** Ping and token caches live as long as the backend (docs/pull.md §2.2 "once per host per backend"). */
const registryCaches = new WeakMap<StoreOpener, RegistryCache>();
function registryCacheOf(backend: StoreOpener, deps: PullDeps): RegistryCache {
  let c = registryCaches.get(backend);
  if (!c) {
    c = deps.createRegistryCache();
    registryCaches.set(backend, c);
  }
  return c;
}

/** The client's `readBlob` as the pipeline's event source. */
async function* blobEvents(
  getClient: () => Promise<RegistryClient>,
  ref: ParsedReference,
  blob: { digest: string; size: number },
  layerIndex: number,
  offset: number,
  o: { signal: AbortSignal; startEndpoint: number },
): AsyncGenerator<BlobEvent> {
  const client = await getClient();
  for await (const ev of client.readBlob(ref, blob, {
    offset,
    signal: o.signal,
    layerIndex,
    startEndpoint: o.startEndpoint,
  })) {
    if (ev.type === 'open') {
      yield {
        type: 'open',
        rangeStart: ev.rangeStart,
        endpointIndex: ev.endpointIndex,
        isMirror: ev.endpoint.isMirror,
        source: ev.endpoint.source,
      };
    } else {
      yield ev;
    }
  }
}

function commitRecord(canonical: string, p: ImagePlan): Parameters<typeof publishImage>[1] {
  return {
    references: [canonical],
    indexDigest: p.indexDigest,
    manifest: { digest: p.manifestDigest, mediaType: p.manifestMediaType, raw: p.manifestRaw, source: 'registry' },
    platform: { os: p.platform.os, architecture: p.platform.architecture, variant: p.platform.variant },
    config: { digest: p.configDigest, raw: p.configRaw },
    layers: p.positions.map((l) => ({
      diffId: l.diffId,
      blobDigest: l.blob.digest,
      mediaType: l.blob.mediaType,
      compressedSizeBytes: l.blob.size,
    })),
  };
}

function result(
  store: Store,
  parsed: ParsedReference,
  p: ImagePlan,
  handle: ImageHandle,
  cached: boolean,
  source: string | null,
  outcomes: Map<string, LayerOutcome> | null,
): PullResult {
  const seen = new Set<string>();
  return {
    reference: parsed.familiar,
    canonicalReference: parsed.canonical,
    manifestDigest: p.manifestDigest,
    indexDigest: p.indexDigest,
    configDigest: p.configDigest,
    platform: p.platform,
    cached,
    source,
    layers: p.positions.map((l) => {
      const o = outcomes?.get(l.diffId);
      const first = !seen.has(l.diffId);
      seen.add(l.diffId);
      return {
        position: l.position,
        diffId: l.diffId,
        blobDigest: l.blob.digest,
        mediaType: l.blob.mediaType,
        downloaded: first && !!o?.downloaded,
        materialized: first && !!o?.materialized,
      };
    }),
    artifacts: store.paths.artifacts(p.manifestDigest, p.positions),
    handle,
  };
}

/** Step 3 validation: every distinct layer under its lock, then fsmeta + VMDK under the image lock. */
async function validateCached(
  store: Store,
  c: CachedImage,
  signal: AbortSignal,
): Promise<{ allValid: boolean; layersValid: boolean }> {
  const sizes = new Map<string, number>();
  let layersValid = true;
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
    if (ok !== true) {
      layersValid = false;
      break;
    }
  }
  if (!layersValid) return { allValid: false, layersValid };
  if (c.manifest.fsmeta_bytes === null || c.manifest.vmdk_bytes === null) return { allValid: false, layersValid };
  const diffIds = c.layers.map((l) => l.diff_id);
  const st = (await withLock(
    store,
    'image',
    c.manifest.digest,
    () => checkStitch(store, c.manifest.digest, diffIds, sizes, c.manifest.fsmeta_bytes),
    { signal },
  )) as StitchCheck;
  return { allValid: st.fsmetaValid && st.vmdkValid, layersValid };
}

/** Sum of descriptor sizes of the distinct layers that look absent (a progress figure, §10). */
async function downloadEstimate(store: Store, plan: ImagePlan, force: boolean): Promise<number | null> {
  let total = 0;
  const seen = new Set<string>();
  for (const p of plan.positions) {
    if (seen.has(p.diffId)) continue;
    seen.add(p.diffId);
    let present = false;
    if (!force) {
      try {
        present = (await lstat(store.paths.layer(p.diffId))).isFile();
      } catch {
        present = false;
      }
    }
    if (!present) {
      if (!Number.isSafeInteger(p.blob.size)) return null;
      total += p.blob.size;
    }
  }
  return total;
}

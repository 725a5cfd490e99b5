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
import { AbortedError, MsbError, NotCachedError } from '../errors.js';
import type { StoreOpener } from '../store/store.js';
import type { PullOperation, PullOptions, PullResult } from './types.js';
import { parseReference, type ParsedReference } from '../reference/reference.js';
import { publishImage } from '../store/publish.js';
import { budgetAfterWrite } from '../store/budget.js';
import type { BlobEvent, BlobSource } from './blob-pipeline.js';
import type { PullDeps } from './deps.js';
import type { RegistryClient } from '../registry/client.js';
import { resolveImage } from '../registry/resolve.js';
import { PullEmitter, linkedAbort, makeOperation, type PullEvent } from './events.js';
import { materializeLayers, type LayerOutcome } from './layer.js';
import { stitchStep, type StitchStepResult } from './stitch-step.js';
import { phaseEnd, phaseStart, timed } from '../util/profile.js';
import { checkCache } from './cache-check.js';
import {
  commitRecord,
  downloadEstimate,
  emitResolved,
  leaseItems,
  planFromResolved,
  pullResult,
  type ImagePlan,
} from './plan.js';
import { normalizeOptions, PullSession, type InternalPullOptions, type SessionInput } from './session.js';

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

/**
 * Runs one pull. `options.lease` (Sandbox.create) makes the pull add its items to the caller's
 * lease instead of creating (and releasing) its own.
 */
export async function pullImage(
  backend: StoreOpener,
  reference: string,
  options: PullOptions & InternalPullOptions = {},
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
  options: PullOptions & InternalPullOptions,
  extraListener: ((e: PullEvent) => void) | null,
): Promise<PullResult> {
  const parsed = parseReference(reference);
  normalizeOptions(backend, options, null); // argument errors before any I/O
  const emitter = new PullEmitter();
  if (extraListener) emitter.addListener(extraListener);
  if (options.onProgress) emitter.addListener(options.onProgress);
  const ac = linkedAbort(options.signal, emitter);
  try {
    const hook = depsOverride?.hook;
    return await backend._run(() =>
      doPull({ backend, parsed, options, emitter, signal: ac.signal, getDeps: _pullDeps, hook }),
    );
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

/** The pull, step by step (docs/pull.md §8). */
async function doPull(input: SessionInput): Promise<PullResult> {
  const s = await PullSession.open(input); // steps 1–2
  try {
    s.emitter.emit({ type: 'resolving', reference: s.parsed.canonical });
    const cached = s.n.force ? null : await timed('cache-check', () => checkCache(s)); // step 3
    if (cached && 'hit' in cached) return cached.hit;
    const plan = cached?.plan ?? (await resolve(s)); // step 4
    await announce(s, plan);
    const outcomes = await layers(s, plan); // step 5
    const stitched = await stitch(s, plan, outcomes); // step 6
    return await commit(s, plan, outcomes, stitched); // step 7
  } finally {
    await s.close(); // step 8
  }
}

/** Step 4: ping, auth, manifest (index → platform), config; the lease takes the manifest and layers. */
async function resolve(s: PullSession): Promise<ImagePlan> {
  const client = await s.getClient(); // loads the registry modules: module-load, not resolve
  const t0 = phaseStart();
  const { options } = s.input;
  const r = await resolveImage(client, s.parsed, {
    ...(options.platform !== undefined && options.platform !== null ? { platform: options.platform } : {}),
    limits: s.n.limits,
    signal: s.signal,
    onWarning: (w) => s.warn(w.code, w.message),
  });
  phaseEnd('resolve', t0);
  s.source = r.source;
  const plan = planFromResolved(r);
  await s.lease!.addItems(
    leaseItems(
      plan.manifestDigest,
      plan.positions.map((p) => p.diffId),
    ),
  );
  return plan;
}

/** `resolved{cached:false}`; the converter's workers start booting when layers are to be fetched. */
async function announce(s: PullSession, plan: ImagePlan): Promise<void> {
  const est = await downloadEstimate(s.store, plan, s.n.force);
  if (est.pooled > 0 && s.n.policy !== 'never') {
    (await s.deps()).converter.pool?.prepare(Math.min(est.pooled, s.n.concurrency));
  }
  emitResolved(s.emitter, s.parsed.canonical, plan, { totalDownloadBytes: est.bytes, cached: false, source: s.source });
  await s.hook('resolved');
}

/** Step 5 (layer.ts). `never` never touches the network, even if a layer vanished since step 3. */
async function layers(s: PullSession, plan: ImagePlan): Promise<Map<string, LayerOutcome>> {
  const t0 = phaseStart();
  const deps = await s.deps();
  const { parsed } = s;
  const outcomes = await materializeLayers(
    {
      backend: s.input.backend,
      store: s.store,
      lease: s.lease!,
      emitter: s.emitter,
      signal: s.signal,
      force: s.n.force,
      ...(s.input.options.refetch ? { refetch: s.input.options.refetch } : {}),
      retries: s.store.settings.pull.retries,
      concurrency: s.n.concurrency,
      deps: deps.converter,
      limits: s.n.limits,
      sourceFor: (blob, layerIndex): BlobSource => {
        if (s.n.policy === 'never') {
          return () => {
            throw new NotCachedError(
              parsed.familiar,
              `layer ${blob.digest} of ${parsed.familiar} is not cached and the policy is 'never'`,
            );
          };
        }
        return (offset, o) => blobEvents(() => s.getClient(), parsed, blob, layerIndex, offset, o);
      },
      warn: (code, message) => s.warn(code, message),
      hook: (p) => s.hook(p),
    },
    plan.positions,
  );
  // The workers' memory is not needed by the stitch.
  await deps.converter.pool?.close();
  phaseEnd('layers', t0);
  await s.hook('layers-done');
  return outcomes;
}

/** Step 6 (stitch-step.ts). */
async function stitch(s: PullSession, plan: ImagePlan, outcomes: Map<string, LayerOutcome>): Promise<StitchStepResult> {
  return timed('stitch', () =>
    stitchStep({
      store: s.store,
      lease: s.lease!,
      emitter: s.emitter,
      signal: s.signal,
      manifestDigest: plan.manifestDigest,
      diffIds: plan.positions.map((p) => p.diffId),
      layers: outcomes,
      readTree: async (path) => (await s.deps()).readTree(path),
      force: s.n.force,
      hook: (p) => s.hook(p),
    }),
  );
}

/** Step 7: the commit. From here on an abort is ignored (§11). */
async function commit(
  s: PullSession,
  plan: ImagePlan,
  outcomes: Map<string, LayerOutcome>,
  stitched: StitchStepResult,
): Promise<PullResult> {
  if (s.signal.aborted) throw new AbortedError(s.signal.reason);
  await s.hook('before-commit');
  const canonical = s.parsed.canonical;
  const pub = await timed('index-commit', () =>
    publishImage(s.store, {
      ...commitRecord(canonical, plan),
      artifactDigests: { fsmeta: stitched.fsmetaDigest, vmdk: stitched.vmdkDigest },
    }),
  );
  await s.hook('committed');
  // docs/storage.md §11: the budget, while the lease still holds what this pull published.
  await budgetAfterWrite(s.store, (code, message) => s.warn(code, message));
  s.emitter.emit({
    type: 'complete',
    reference: canonical,
    manifestDigest: plan.manifestDigest,
    cached: false,
    layerCount: plan.positions.length,
  });
  return pullResult(s.store, s.parsed, plan, pub.handles[0]!, { cached: false, source: s.source, outcomes });
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

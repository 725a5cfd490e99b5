/**
 * `verify` and `verify --repair` (docs/storage.md §10): the checks of store/verify.ts, then, with
 * `repair`, a fix per finding and the same checks again, so every finding ends `fixed`, `failed` or
 * `unfixable` and the report says what still remains. It lives at the pull's rank because a
 * repair re-fetches through the pull:
 *
 * - a bad layer (missing, a symlink or other non-file, wrong length, bad structure, bad digest) is
 *   fetched and converted again by `pullImage` of an image that uses it and came from a registry,
 *   with the layer in `refetch`: the pull's own machinery, from the stored manifest (no tag is
 *   resolved again), its candidate renamed over the old file. Offline, that pull fails: `failed`.
 *   A layer only archive images use cannot be fetched: `unfixable`.
 * - a bad fsmeta or VMDK is rebuilt offline from the layer files by the pull's stitch step
 *   (forced), and the manifest row gets the new lengths and digests;
 * - orphans and stale temp files go through prune's steps 7–8 under the GC lock; foreign entries of
 *   the artifact directories are unlinked under the GC lock (a symlink itself, never its target;
 *   a directory is left to the operator); a damaged index is `unfixable`.
 *
 * Every write is a new file renamed into place, so an image a sandbox is booting from stays usable.
 */
import { MsbError, throwIfAborted } from '../errors.js';
import { findManifest, manifestLayers } from '../catalog/queries.js';
import { verifyManifests, type VerifyManifest } from '../catalog/verify.js';
import { readErofsTree } from '../erofs/reader.js';
import { familiarOf } from '../reference/reference.js';
import { checkLayer } from '../store/artifacts.js';
import { createLease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { pruneStrays, resolvePruneOptions } from '../store/prune.js';
import { recordRebuiltArtifacts } from '../store/publish.js';
import type { Store, StoreOpener } from '../store/store.js';
import { removeForeignEntries } from '../store/strays.js';
import type { VerifyFinding, VerifyOptions, VerifyReport, VerifyRepairOutcome } from '../store/types.js';
import { resolveVerifyScope, runVerifyChecks, type CheckRun } from '../store/verify.js';
import { PullEmitter } from './events.js';
import { pullImage } from './pull.js';
import { stitchStep } from './stitch-step.js';

const LAYER_KINDS = new Set(['missing', 'not-regular', 'size', 'structure', 'digest', 'stale']);

/** Verifies the cache, or the images `refs` name; with `repair`, fixes what it can and checks again. */
export async function verifyCache(
  backend: StoreOpener,
  refs: readonly string[],
  opts: VerifyOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const signal = opts.signal;
  const repair = opts.repair === true;
  const existing = await backend._open('read');
  const scope = await resolveVerifyScope(existing, refs);
  if (!existing) return report(t0, repair, scope.shown, null, [], []);
  const store = await backend._open('write', signal);
  const first = await runVerifyChecks(store, scope, signal);
  if (!repair || first.findings.length === 0)
    return report(t0, repair, scope.shown, first, first.findings, first.findings);
  const all = await store.index.read(() => verifyManifests(store.index), { signal });
  await repairLayers(backend, first.findings, all, signal);
  await repairImages(store, first.findings, signal);
  await repairStrays(store, first.findings, signal);
  for (const f of first.findings)
    if (f.kind === 'index')
      f.repair = {
        action: 'none',
        result: 'unfixable',
        message:
          'SQLite reports the index damaged: restore db/msb.db from a backup, or move the home aside and pull again',
      };
  const second = await runVerifyChecks(store, scope, signal);
  settle(first.findings, second.findings);
  const merged = {
    ...first,
    tally: { ...first.tally, bytesHashed: first.tally.bytesHashed + second.tally.bytesHashed },
  };
  return report(t0, repair, scope.shown, merged, first.findings, second.findings);
}

const keyOf = (f: VerifyFinding) => `${f.artifact}|${f.item}`;

/** Each tried repair is `fixed` when the re-check no longer finds its artifact, else `failed`. */
function settle(findings: VerifyFinding[], remaining: VerifyFinding[]): void {
  const left = new Map(remaining.map((f) => [keyOf(f), f]));
  for (const f of findings) {
    if (f.repair?.result === 'unfixable') continue;
    const still = left.get(keyOf(f));
    const action = f.repair?.action ?? 'none';
    if (!still) f.repair = { action, result: 'fixed' };
    else f.repair = { action, result: 'failed', message: f.repair?.message ?? still.message };
  }
}

function report(
  t0: number,
  repair: boolean,
  scope: string[] | null,
  run: CheckRun | null,
  findings: VerifyFinding[],
  remaining: VerifyFinding[],
): VerifyReport {
  const count = (r: VerifyRepairOutcome['result']) => findings.filter((f) => f.repair?.result === r).length;
  return {
    ok: remaining.length === 0,
    repair,
    scope,
    steps: run?.steps ?? [],
    counts: {
      layers: run?.tally.layers ?? 0,
      fsmeta: run?.tally.fsmeta ?? 0,
      vmdk: run?.tally.vmdk ?? 0,
      bytesHashed: run?.tally.bytesHashed ?? 0,
      digestsRecorded: run?.tally.digestsRecorded ?? 0,
      findings: findings.length,
      fixed: count('fixed'),
      unfixable: count('unfixable'),
      failed: count('failed'),
    },
    findings,
    remaining,
    durationMs: Math.round(performance.now() - t0),
  };
}

function mark(fs: VerifyFinding[], outcome: VerifyRepairOutcome): void {
  for (const f of fs) f.repair = { ...outcome };
}

function rethrowAbort(err: unknown): void {
  if (err instanceof MsbError && err.code === 'ABORTED') throw err;
}

/** Bad layers: one forced re-materialization per source image (see the module comment). */
async function repairLayers(
  backend: StoreOpener,
  findings: VerifyFinding[],
  all: VerifyManifest[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const byLayer = new Map<string, VerifyFinding[]>();
  for (const f of findings)
    if (f.artifact === 'layer' && LAYER_KINDS.has(f.kind)) byLayer.set(f.item, [...(byLayer.get(f.item) ?? []), f]);
  const byRef = new Map<string, string[]>();
  for (const [d, fs] of byLayer) {
    const src = all.find((m) => m.source === 'registry' && m.references.length > 0 && m.diffIds.includes(d));
    if (!src) {
      mark(fs, {
        action: 'none',
        result: 'unfixable',
        message: `no image pulled from a registry uses layer ${d}: load the archive it came from again`,
      });
      continue;
    }
    const ref = src.references[0]!;
    byRef.set(ref, [...(byRef.get(ref) ?? []), d]);
    mark(fs, { action: 'refetch', result: 'failed', message: `fetched again through ${familiarOf(ref)}` });
  }
  for (const [ref, diffIds] of byRef) {
    throwIfAborted(signal);
    try {
      await pullImage(backend, ref, { policy: 'if-missing', refetch: new Set(diffIds), signal });
      for (const d of diffIds) for (const f of byLayer.get(d)!) delete f.repair!.message;
    } catch (err) {
      rethrowAbort(err);
      const why = `fetching it again through ${familiarOf(ref)} failed: ${(err as Error).message}`;
      for (const d of diffIds) mark(byLayer.get(d)!, { action: 'refetch', result: 'failed', message: why });
    }
  }
}

/** Bad fsmeta or VMDK: the stitch step, forced, from the layer files (offline). */
async function repairImages(store: Store, findings: VerifyFinding[], signal: AbortSignal | undefined): Promise<void> {
  const byImage = new Map<string, VerifyFinding[]>();
  for (const f of findings)
    if (f.artifact === 'fsmeta' || f.artifact === 'vmdk') byImage.set(f.item, [...(byImage.get(f.item) ?? []), f]);
  for (const [m, fs] of byImage) {
    throwIfAborted(signal);
    try {
      const why = await restitch(store, m, signal);
      mark(
        fs,
        why ? { action: 'rebuild', result: 'unfixable', message: why } : { action: 'rebuild', result: 'failed' },
      );
    } catch (err) {
      rethrowAbort(err);
      mark(fs, { action: 'rebuild', result: 'failed', message: `rebuild failed: ${(err as Error).message}` });
    }
  }
}

/** Rebuilds fsmeta + VMDK of `m` under a repair lease; returns why it cannot, or null when done. */
async function restitch(store: Store, m: string, signal: AbortSignal | undefined): Promise<string | null> {
  const { index } = store;
  const got = await index.read(() => {
    const row = findManifest(index, m);
    return row ? manifestLayers(index, row.id).map((l) => l.diff_id) : null;
  });
  if (!got) return 'the image was removed meanwhile';
  const diffIds = got;
  const lease = await createLease(store, 'repair', { signal });
  try {
    await lease.addItems([
      { kind: 'manifest', value: m },
      ...[...new Set(diffIds)].map((d) => ({ kind: 'layer' as const, value: d })),
    ]);
    const layers = new Map<string, { sizeBytes: number; root: null }>();
    for (const d of new Set(diffIds)) {
      const c = await withLock(store, 'layer', d, () => checkLayer(store, d), { signal });
      if (!c.valid) return `its layer ${d} is ${c.reason}: that layer must be repaired first`;
      layers.set(d, { sizeBytes: c.sizeBytes, root: null });
    }
    const r = await stitchStep({
      store,
      lease,
      emitter: new PullEmitter(),
      signal: signal ?? new AbortController().signal,
      manifestDigest: m,
      diffIds,
      layers,
      readTree: async (p) => (await readErofsTree(p)).root,
      force: true,
    });
    await recordRebuiltArtifacts(store, m, diffIds, { fsmeta: r.fsmetaDigest, vmdk: r.vmdkDigest }, { signal });
    return null;
  } finally {
    await lease.release();
  }
}

/** Orphans and stale temp files (prune steps 7–8), foreign entries, all under the GC lock. */
async function repairStrays(store: Store, findings: VerifyFinding[], signal: AbortSignal | undefined): Promise<void> {
  const strays = findings.filter((f) => f.kind === 'orphan' || f.kind === 'temp');
  if (strays.length) {
    mark(strays, { action: 'remove', result: 'failed' });
    const r = await pruneStrays(store, resolvePruneOptions({ signal }, store.tempGraceMs));
    for (const e of r.errors) {
      const f = strays.find((s) => s.path === e.path);
      if (f) f.repair = { action: 'remove', result: 'failed', message: `${e.code}: ${e.message}` };
    }
  }
  const foreign = findings.filter((f) => f.kind === 'foreign' && f.path);
  if (foreign.length) {
    const refused = await withLock(
      store,
      'gc',
      null,
      () =>
        removeForeignEntries(
          store,
          foreign.map((f) => f.path!),
        ),
      {
        signal,
      },
    );
    for (const f of foreign) {
      const why = refused.get(f.path!);
      f.repair = why ? { action: 'none', result: 'unfixable', message: why } : { action: 'remove', result: 'failed' };
    }
  }
}

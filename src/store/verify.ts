/**
 * verify's checks (docs/storage.md §10.2), a pipeline of named steps over one open cache, read-only
 * except for recording the digests of rows written before they were recorded:
 *
 *   index   `PRAGMA integrity_check` and `foreign_key_check`
 *   layers  every layer row: file present, a regular file, its recorded length, §5 structure, digest
 *   images  every manifest: fsmeta and VMDK the same way (the VMDK against the layer files)
 *   orphans entries of layers/, fsmeta/, vmdk/ that no row names (ours) or that are not ours
 *   temp    entries of tmp/ past the grace period that no live lease protects
 *
 * Scoped to some images, only their layers and artifacts are checked (no orphans, no temp). Each
 * artifact is checked under its lock, waiting as a pull would, so a file being replaced is never
 * judged half-way. Nothing is followed through a symlink, and nothing is deleted here (the repair,
 * pull/repair.ts, does that).
 */
import { ImageNotFoundError, throwIfAborted } from '../errors.js';
import { findManifest, findRef, newestRefOfManifest } from '../catalog/queries.js';
import { indexProblems, verifyLayers, verifyManifests } from '../catalog/verify.js';
import { indexPath } from '../catalog/db.js';
import { familiarOf, parseImageSelector } from '../reference/reference.js';
import { findStaleLeases, liveLeaseItems } from './lease.js';
import { withLock } from './locks.js';
import { lstatOrNull } from './measure.js';
import { hasRow, ORPHAN_DIRS, tempCandidates } from './strays.js';
import { checkImageArtifacts, checkLayerArtifact, typeName, type CheckTally } from './verify-checks.js';
import { digestFromPathForm } from '../util/digest.js';
import { cmp } from './gc.js';
import type { Store } from './store.js';
import type { VerifyFinding, VerifyStepReport } from './types.js';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** Which images a verify covers: null = the whole cache. */
export interface VerifyScope {
  /** Manifest digests, sorted. */
  manifests: string[] | null;
  /** The references as given, in familiar form (for the report). */
  shown: string[] | null;
}

export interface CheckRun {
  steps: VerifyStepReport[];
  findings: VerifyFinding[];
  tally: CheckTally & { layers: number; fsmeta: number; vmdk: number };
}

/** References or digests → the manifests they name; ImageNotFoundError for one that names none. */
export async function resolveVerifyScope(store: Store | null, refs: readonly string[]): Promise<VerifyScope> {
  if (refs.length === 0) return { manifests: null, shown: null };
  const sels = refs.map((r) => parseImageSelector(r));
  const digests = new Set<string>();
  for (const sel of sels) {
    const shown = sel.kind === 'digest' ? sel.digest : sel.familiar;
    if (!store) throw new ImageNotFoundError(shown);
    const d = await store.index.read(() =>
      sel.kind === 'digest'
        ? (findManifest(store.index, sel.digest)?.digest ?? newestRefOfManifest(store.index, sel.digest)?.digest)
        : findRef(store.index, sel.canonical)?.digest,
    );
    if (!d) throw new ImageNotFoundError(shown);
    digests.add(d);
  }
  return {
    manifests: [...digests].sort(cmp),
    shown: sels.map((s) => (s.kind === 'digest' ? s.digest : s.familiar)),
  };
}

async function step(
  run: CheckRun,
  name: VerifyStepReport['name'],
  body: (add: (f: VerifyFinding[]) => void) => Promise<number>,
): Promise<void> {
  const t0 = performance.now();
  let findings = 0;
  const checked = await body((f) => {
    findings += f.length;
    run.findings.push(...f);
  });
  run.steps.push({ name, checked, findings, durationMs: Math.round(performance.now() - t0) });
}

/** Runs the steps (see the module comment) and returns every finding, in step order. */
export async function runVerifyChecks(store: Store, scope: VerifyScope, signal?: AbortSignal): Promise<CheckRun> {
  const run: CheckRun = {
    steps: [],
    findings: [],
    tally: { bytesHashed: 0, digestsRecorded: 0, layers: 0, fsmeta: 0, vmdk: 0 },
  };
  const { index } = store;
  await step(run, 'index', async (add) => {
    const problems = await index.read(() => indexProblems(index), { signal });
    add(
      problems.map((p) => ({
        kind: 'index' as const,
        artifact: 'index' as const,
        item: 'index',
        path: indexPath(store.home),
        expected: 'ok',
        actual: p,
        message: `index: ${p}`,
      })),
    );
    return 1;
  });
  const all = await index.read(() => verifyManifests(index), { signal });
  const chosen = scope.manifests === null ? all : all.filter((m) => scope.manifests!.includes(m.digest));
  const layerIds =
    scope.manifests === null
      ? (await index.read(() => verifyLayers(index), { signal })).map((l) => l.diffId)
      : [...new Set(chosen.flatMap((m) => m.diffIds))].sort(cmp);
  await step(run, 'layers', async (add) => {
    for (const d of layerIds) {
      throwIfAborted(signal);
      add(await withLock(store, 'layer', d, () => checkLayerArtifact(store, d, run.tally, signal), { signal }));
      run.tally.layers++;
    }
    return layerIds.length;
  });
  await step(run, 'images', async (add) => {
    for (const m of chosen) {
      throwIfAborted(signal);
      add(
        await withLock(store, 'image', m.digest, () => checkImageArtifacts(store, m.digest, run.tally, signal), {
          signal,
        }),
      );
      run.tally.fsmeta++;
      run.tally.vmdk++;
    }
    return chosen.length;
  });
  if (scope.manifests !== null) return run;
  await step(run, 'orphans', (add) => orphanStep(store, add, signal));
  await step(run, 'temp', async (add) => {
    const now = Date.now();
    const stale = await findStaleLeases(index, { now, signal });
    const leased = await index.read(() => liveLeaseItems(index, now, stale), { signal });
    const temps = await tempCandidates(store, now, store.tempGraceMs, leased.blob, leased.temp);
    add(
      temps.map((t) => ({
        kind: 'temp' as const,
        artifact: 'temp' as const,
        item: t.name,
        path: t.path,
        expected: null,
        actual: null,
        message: `tmp/${t.name} is older than the grace period and no operation holds it`,
      })),
    );
    return temps.length;
  });
  return run;
}

/** Entries of the artifact directories that no row names, or whose names are not ours. */
async function orphanStep(
  store: Store,
  add: (f: VerifyFinding[]) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  const { index } = store;
  const now = Date.now();
  const stale = await findStaleLeases(index, { now, signal });
  const leased = await index.read(() => liveLeaseItems(index, now, stale), { signal });
  let checked = 0;
  for (const d of ORPHAN_DIRS) {
    const dir = join(store.cacheDir, d.dir);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort(cmp);
    } catch {
      continue; // absent: nothing in it
    }
    for (const name of names) {
      throwIfAborted(signal);
      checked++;
      const path = join(dir, name);
      const st = await lstatOrNull(path);
      if (!st) continue;
      const digest = digestFromPathForm(name, d.ext);
      if (digest && !st.isDirectory()) {
        if (await index.read(() => hasRow(index, d.table, digest))) continue;
        if (leased[d.leaseKind].has(digest)) continue; // being published right now
        add([
          {
            kind: 'orphan',
            artifact: 'file',
            item: `${d.dir}/${name}`,
            path,
            expected: 'an index row',
            actual: typeName(st),
            message: `${d.dir}/${name} has no index row (an orphan)`,
          },
        ]);
        continue;
      }
      add([
        {
          kind: 'foreign',
          artifact: 'file',
          item: `${d.dir}/${name}`,
          path,
          expected: `<alg>_<hex>${d.ext}`,
          actual: typeName(st),
          message: `${d.dir}/${name} is not a file msb wrote (a ${typeName(st)})`,
        },
      ]);
    }
  }
  return checked;
}

/** The familiar form of a manifest's newest reference, for messages. */
export function shownRef(canonical: string | undefined): string | null {
  return canonical ? familiarOf(canonical) : null;
}

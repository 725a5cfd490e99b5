/**
 * The stitch step (docs/pull.md §8 step 6, docs/storage.md §4–§5), shared by the pull and `Image.load`:
 * under the image lock, reuse a valid fsmeta + VMDK unless `force`; otherwise build fsmeta from
 * the in-memory layer trees (layers this operation converted) or by reading cached layers back,
 * publish it, then write and publish the VMDK. An artifact that existed (file or recorded size)
 * but is invalid is rebuilt with an `ARTIFACT_REBUILT` warning.
 */
import { unlink } from 'node:fs/promises';
import { AbortedError, CacheCorruptError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { DirNode } from '../erofs/tree.js';
import { findManifest } from '../catalog/queries.js';
import { atomicPublish } from '../store/atomic.js';
import { renameDurable } from '../util/fs.js';
import type { Lease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { diffIdTag } from '../stitch/fsmeta.js';
import { validateFsmetaFile, validateVmdkFile } from '../stitch/validate.js';
import { cidOf } from '../stitch/vmdk.js';
import { digestUuid } from '../util/digest.js';
import { checkStitch } from '../store/artifacts.js';
import type { PullHookPoint } from './deps.js';
import type { PullEmitter } from './events.js';
import { timed } from '../util/profile.js';
import { contentDigestOfBuffer } from '../util/chunked-digest.js';

export interface StitchStepInput {
  store: Store;
  lease: Lease;
  emitter: PullEmitter;
  signal: AbortSignal;
  manifestDigest: string;
  /** diff_id per manifest position, bottom first. */
  diffIds: readonly string[];
  /** Per distinct diff_id: its layer file's length and, when this operation converted it, its tree. */
  layers: ReadonlyMap<string, { sizeBytes: number; root: DirNode | null }>;
  /** Reads a cached layer's tree back (layers this operation did not convert). */
  readTree(path: string): Promise<DirNode>;
  force?: boolean;
  /** Test hook (crash injection): 'fsmeta-written', 'vmdk-written'. */
  hook?: (p: PullHookPoint) => void | Promise<void>;
}

export interface StitchStepResult {
  fsmetaSize: number;
  reused: boolean;
  /** Content digests of the files written now (docs/storage.md §10.1); null = reused. */
  fsmetaDigest: string | null;
  vmdkDigest: string | null;
}

/** Emits `stitchStarted`, stitches (see the module comment), emits `stitchComplete`. */
export async function stitchStep(input: StitchStepInput): Promise<StitchStepResult> {
  const { store, emitter, signal, diffIds, force = false } = input;
  const m = input.manifestDigest;
  const warn = (message: string) => emitter.emit({ type: 'warning', code: 'ARTIFACT_REBUILT', message });
  const sizes = new Map<string, number>();
  for (const d of diffIds) sizes.set(d, input.layers.get(d)!.sizeBytes);
  emitter.emit({ type: 'stitchStarted', layerCount: diffIds.length });
  const r = (await withLock(
    store,
    'image',
    m,
    async () => {
      const row = await store.index.read(() => findManifest(store.index, m));
      const cur = await checkStitch(store, m, diffIds, sizes, row?.fsmeta_bytes ?? null);
      let fsmetaSize = cur.fsmetaSize;
      let fsmetaDigest: string | null = null;
      let vmdkDigest: string | null = null;
      const fsReused = !force && cur.fsmetaValid;
      if (!fsReused) {
        // Missing or invalid where the index (or a file) says it existed: docs/storage.md §5 ARTIFACT_REBUILT.
        if (!force && (cur.fsExists || (row?.fsmeta_bytes ?? null) !== null)) {
          warn(`fsmeta of ${m} is ${cur.fsExists ? `invalid (${cur.fsWhy})` : 'missing'}; rebuilding it`);
        }
        ({ sizeBytes: fsmetaSize, contentDigest: fsmetaDigest } = await rebuildFsmeta(input, sizes));
      }
      const vmReused = !force && fsReused && cur.vmdkValid;
      if (!vmReused) {
        if (!force && fsReused && (cur.vmExists || (row?.vmdk_bytes ?? null) !== null)) {
          warn(`VMDK of ${m} is ${cur.vmExists ? `invalid (${cur.vmWhy})` : 'missing'}; rewriting it`);
        }
        vmdkDigest = await timed('stitch-vmdk', () => rewriteVmdk(input, sizes, fsmetaSize!));
      }
      return { fsmetaSize: fsmetaSize!, reused: fsReused && vmReused, fsmetaDigest, vmdkDigest };
    },
    { signal },
  )) as StitchStepResult;
  emitter.emit({ type: 'stitchComplete', fsmetaSizeBytes: r.fsmetaSize, reused: r.reused });
  return r;
}

/** The layer trees, bottom first: kept from this operation's conversions, else read back. */
async function layerTrees(input: StitchStepInput): Promise<Map<string, DirNode>> {
  const { store, signal } = input;
  const trees = new Map<string, DirNode>();
  for (const d of input.diffIds) {
    if (trees.has(d)) continue;
    if (signal.aborted) throw new AbortedError(signal.reason);
    trees.set(d, input.layers.get(d)!.root ?? (await input.readTree(store.paths.layer(d))));
  }
  return trees;
}

/** fsmeta built to a candidate, validated, renamed into place; returns its length and content digest. */
async function rebuildFsmeta(
  input: StitchStepInput,
  sizes: Map<string, number>,
): Promise<{ sizeBytes: number; contentDigest: string | null }> {
  const { store, lease, signal, diffIds } = input;
  const m = input.manifestDigest;
  const trees = await timed('stitch-read-trees', () => layerTrees(input));
  const fsLayers = diffIds.map((d) => ({ sizeBytes: sizes.get(d)!, tag: diffIdTag(d) }));
  const cand = store.paths.tmp('fsmeta', m);
  await lease.addItem('temp', cand.name);
  try {
    // Loaded on demand: the EROFS writer is not needed by a cache hit.
    const { buildFsmeta } = await import('../stitch/build.js');
    const built = await timed('stitch-fsmeta', () =>
      buildFsmeta(
        diffIds.map((d, i) => ({ root: trees.get(d)!, ...fsLayers[i]! })),
        cand.path,
        { uuid: digestUuid(m), signal, contentDigest: true },
      ),
    );
    trees.clear();
    // buildFsmeta already fsynced the candidate through its own handle (image-writer.ts).
    const why = await timed('stitch-validate', () =>
      validateFsmetaFile(cand.path, { uuid: digestUuid(m), layers: fsLayers }),
    );
    if (why) throw new CacheCorruptError(cand.path, `built fsmeta fails validation: ${why}`);
    if (signal.aborted) throw new AbortedError(signal.reason);
    await renameDurable(cand.path, store.paths.fsmeta(m));
    await input.hook?.('fsmeta-written');
    return { sizeBytes: built.sizeBytes, contentDigest: built.contentDigest };
  } finally {
    await unlink(cand.path).catch(() => {});
  }
}

/** The VMDK descriptor written, validated and published atomically; returns its content digest. */
async function rewriteVmdk(input: StitchStepInput, sizes: Map<string, number>, fsmetaSize: number): Promise<string> {
  const { store, diffIds } = input;
  const m = input.manifestDigest;
  const fsPath = store.paths.fsmeta(m);
  const layerFiles = diffIds.map((d) => ({ path: store.paths.layer(d), sizeBytes: sizes.get(d)! }));
  const { stitchVmdkText } = await import('../stitch/build.js');
  const text = stitchVmdkText(cidOf(m), { path: fsPath, sizeBytes: fsmetaSize }, layerFiles);
  const cand = store.paths.tmp('vmdk', m);
  await atomicPublish({
    candidate: cand.path,
    candidateName: cand.name,
    lease: input.lease,
    finalPath: store.paths.vmdk(m),
    force: true,
    signal: input.signal,
    write: async (h) => {
      await h.writeFile(text);
    },
    validate: async (p) => {
      const why = await validateVmdkFile(p, {
        paths: [fsPath, ...layerFiles.map((l) => l.path)],
        sizes: [fsmetaSize, ...layerFiles.map((l) => l.sizeBytes)],
        cid: cidOf(m),
      });
      if (why) throw new CacheCorruptError(p, `built VMDK fails validation: ${why}`);
    },
  });
  await input.hook?.('vmdk-written');
  return contentDigestOfBuffer(Buffer.from(text));
}

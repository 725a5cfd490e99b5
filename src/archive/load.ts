/**
 * `Image.load` (docs/archives.md §2–§7, docs/api.md §2.7): member table → plans (plan.ts) → layers →
 * stitch → ONE commit for the whole archive.
 *
 * Publication is the pull's (docs/pull.md §7–§8, docs/storage.md §4–§6), through its exported pieces:
 * `checkLayer` / `publishLayerCandidate` (pull/layer.ts), `upsertLayerRow` under the layer lock of
 * each diff_id, the same converter (`defaultConverterDeps`: detectCompression, decompressors,
 * writeLayer), so a layer file is byte-identical to a pull's; then the pull's stitch step
 * (`stitchStep`, pull/stitch-step.ts); then the commit, `publishImages` (store/publish.ts).
 *
 * Every step runs under one lease: the spool directory, each manifest digest and diff_id are
 * lease items before they are checked or created; candidates before they are created.
 *
 * The member table (members.ts) reads the archive once; after planning, the layer members the
 * load will read (every Docker-path layer, and each OCI layer not already cached) are copied out
 * of a compressed archive in one more pass (`ensureResident`); nothing else is spooled.
 *
 * Choices where the contract is silent:
 * - Events (pull union without download events, §7): per image `resolving` and `resolved`
 *   (`totalDownloadBytes` 0), the layer and stitch events; the `complete` events of all images
 *   come after the single commit, in image order.
 * - Images are processed one after the other, layers of one image one at a time: an archive is
 *   local, so disk bandwidth, not latency, bounds the work.
 */
import { mkdir, unlink } from 'node:fs/promises';
import { AbortedError, MsbError, toIoError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { ImageHandle } from '../store/handle.js';
import type { LoadOptions } from './types.js';
import { readErofsTree } from '../erofs/reader.js';
import type { DirNode } from '../erofs/tree.js';
import { resolveLimits } from '../limits.js';
import { defaultConverterDeps } from '../pull/deps-default.js';
import { PullEmitter, linkedAbort, type PullEvent } from '../pull/events.js';
import { checkLayer, publishLayerCandidate } from '../store/artifacts.js';
import { stitchStep } from '../pull/stitch-step.js';
import { hostPlatform, parsePlatform, type Platform } from '../oci/platform.js';
import { parseReference } from '../reference/reference.js';
import { createLease, type Lease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { loadSpoolPath } from '../store/paths.js';
import { publishImages, upsertLayerRow, type PublishImageRecord } from '../store/publish.js';
import { budgetAfterWrite } from '../store/budget.js';
import { digestOf } from '../util/digest.js';
import { ensureDirSync } from '../util/fs.js';
import { convertMember, hashOnly, type LayerCtx } from './load-layer.js';
import { ArchiveMembers, type Member } from './members.js';
import { planArchive, syntheticManifest, type PlannedImage, type PlannedLayer } from './plan.js';

interface LayerDone {
  sizeBytes: number;
  root: DirNode | null;
}

interface Ctx extends LayerCtx {
  store: Store;
  lease: Lease;
  /** Per diff_id, once per load (shared layers are read once). */
  layers: Map<string, LayerDone>;
}

interface Args {
  tags: string[];
  target: Platform;
  explicitPlatform: boolean;
}

/** Argument errors before any I/O. */
function parseArgs(options: LoadOptions): Args {
  const tagsIn =
    options.tag === undefined || options.tag === null ? [] : Array.isArray(options.tag) ? options.tag : [options.tag];
  const tags: string[] = [];
  for (const t of tagsIn) {
    const c = parseReference(t).canonical;
    if (!tags.includes(c)) tags.push(c);
  }
  const explicitPlatform = options.platform !== undefined && options.platform !== null;
  const target = explicitPlatform ? parsePlatform(options.platform) : hostPlatform();
  return { tags, target, explicitPlatform };
}

/** Loads an archive from a path or a stream; resolves to one handle per loaded name, archive order. */
export async function loadArchive(
  backend: StoreOpener,
  input: string | NodeJS.ReadableStream,
  options: LoadOptions = {},
): Promise<ImageHandle[]> {
  const args = parseArgs(options);
  const emitter = new PullEmitter();
  if (options.onProgress) emitter.addListener(options.onProgress as (e: PullEvent) => void);
  const ac = linkedAbort(options.signal, emitter);
  const signal = ac.signal;
  try {
    return await backend._run(async () => {
      const store = await backend._open('write', signal);
      const lease = await createLease(store, 'load', { signal });
      let spool: string | null = null;
      let members: ArchiveMembers | null = null;
      try {
        const limits = resolveLimits(store.limits);
        members = await ArchiveMembers.open(input, {
          limits,
          signal,
          spoolDir: async () => {
            const s = loadSpoolPath(store.paths.root);
            await lease.addItem('temp', s.name);
            ensureDirSync(store.paths.tmpDir, 0o700);
            try {
              await mkdir(s.path, { mode: 0o700 });
            } catch (err) {
              throw toIoError(err, s.path);
            }
            spool = s.path;
            return s.path;
          },
        });
        const warn = (code: string, message: string) => emitter.emit({ type: 'warning', code, message });
        const ctx: Ctx = {
          store,
          lease,
          members,
          emitter,
          signal,
          limits,
          deps: await defaultConverterDeps(),
          warn,
          layers: new Map(),
        };
        return await loadPlanned(ctx, await planArchive(members, { limits, ...args, warn }));
      } finally {
        await members?.close();
        await ArchiveMembers.removeSpool(spool);
        await lease.release();
      }
    });
  } catch (err) {
    if (emitter.listenerError) throw emitter.listenerError.error;
    // A stream torn down or a lock wait cut short by the abort: it is the abort.
    if (signal.aborted && err instanceof MsbError && (err.code === 'IO' || err.code === 'INTERNAL'))
      throw new AbortedError(signal.reason);
    throw err;
  } finally {
    ac.dispose();
  }
}

/** Leases, the needed members copied out, each image materialized, ONE commit, the `complete` events. */
async function loadPlanned(ctx: Ctx, images: PlannedImage[]): Promise<ImageHandle[]> {
  await ctx.lease.addItems([
    ...images.filter((i) => i.manifestDigest).map((i) => ({ kind: 'manifest' as const, value: i.manifestDigest! })),
    ...[...new Set(images.flatMap((i) => i.layers.map((l) => l.diffId)))].map((d) => ({
      kind: 'layer' as const,
      value: d,
    })),
  ]);
  await ctx.members.ensureResident(await membersToRead(ctx.store, images));
  for (const img of images) await materializeImage(ctx, img);
  if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
  const handles = await commitArchive(ctx.store, images, ctx.signal);
  await budgetAfterWrite(ctx.store, ctx.warn); // docs/storage.md §11, the lease still held
  for (const img of images) {
    ctx.emitter.emit({
      type: 'complete',
      reference: img.names[0]!,
      manifestDigest: img.manifestDigest!,
      cached: false,
      layerCount: img.layers.length,
    });
  }
  return handles;
}

/**
 * The layer members this load will read: every Docker-path layer (its digest is needed), each
 * OCI layer whose layer file is not valid now. A hint, read without locks: a layer that turns out
 * invalid later is copied out when it is read.
 */
async function membersToRead(store: Store, images: PlannedImage[]): Promise<Member[]> {
  const out = new Set<Member>();
  const valid = new Map<string, boolean>();
  for (const img of images) {
    for (const l of img.layers) {
      if (img.kind === 'oci') {
        if (!valid.has(l.diffId)) valid.set(l.diffId, (await checkLayer(store, l.diffId)).valid);
        if (valid.get(l.diffId)) continue;
      }
      out.add(l.member);
    }
  }
  return [...out];
}

/** Layers, synthetic manifest (Docker path), stitch — everything but the commit. */
async function materializeImage(ctx: Ctx, img: PlannedImage): Promise<void> {
  const { emitter } = ctx;
  emitter.emit({ type: 'resolving', reference: img.names[0]! });
  if (img.kind === 'docker') {
    // The synthetic manifest needs every blob digest: hash the layer members first (each member
    // once per load, whatever number of images name it), so that `resolved` precedes every layer event.
    for (const l of img.layers) await hashOnly(ctx, l);
    const raw = syntheticManifest(
      img.configDigest,
      img.configRaw.length,
      img.layers.map((l) => ({ digest: l.blobDigest!, mediaType: l.mediaType!, size: l.size })),
    );
    img.manifestRaw = raw;
    img.manifestDigest = digestOf(raw);
    await ctx.lease.addItem('manifest', img.manifestDigest);
  }
  emitter.emit({
    type: 'resolved',
    reference: img.names[0]!,
    manifestDigest: img.manifestDigest!,
    indexDigest: img.indexDigest,
    platform: img.platform,
    layerCount: img.layers.length,
    totalDownloadBytes: 0,
    cached: false,
    source: null,
  });
  for (const l of img.layers) {
    if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
    await layer(ctx, l);
  }
  const st = await stitchStep({
    store: ctx.store,
    lease: ctx.lease,
    emitter,
    signal: ctx.signal,
    manifestDigest: img.manifestDigest!,
    diffIds: img.layers.map((l) => l.diffId),
    layers: ctx.layers,
    readTree: async (p) => (await readErofsTree(p)).root,
  });
  img.artifactDigests = { fsmeta: st.fsmetaDigest, vmdk: st.vmdkDigest };
}

/**
 * One position. The first position of a diff_id does the work under its layer lock; later ones
 * (same image or another) reuse it. A cached layer is not read (OCI fast path, §7); the Docker
 * path has hashed its members already (materializeImage), and verifies that digest again while
 * converting.
 */
async function layer(ctx: Ctx, l: PlannedLayer): Promise<void> {
  const { store, emitter } = ctx;
  const known = ctx.layers.get(l.diffId);
  if (known) {
    emitter.emit({
      type: 'layerMaterializeComplete',
      layerIndex: l.position,
      diffId: l.diffId,
      erofsSizeBytes: known.sizeBytes,
      reused: true,
    });
    return;
  }
  const done = (await withLock(
    store,
    'layer',
    l.diffId,
    async (): Promise<LayerDone & { reused: boolean }> => {
      if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
      const check = await checkLayer(store, l.diffId);
      if (check.valid || check.orphan) {
        if (check.valid) return { sizeBytes: check.sizeBytes, root: null, reused: true };
        // A file published by a process that died before its row (docs/storage.md §9): adopt it.
        const sb = check.orphan!;
        await upsertLayerRow(
          ctx.store,
          { diffId: l.diffId, erofsSizeBytes: sb.length, inodes: Number(sb.inos), blocks: sb.blocks },
          { signal: ctx.signal },
        );
        return { sizeBytes: sb.length, root: null, reused: true };
      }
      if (check.fileExists || check.row)
        ctx.warn('ARTIFACT_REBUILT', `layer ${l.diffId} is invalid (${check.reason}); converting it again`);
      const cand = store.paths.tmp('layer', l.diffId);
      await ctx.lease.addItem('temp', cand.name);
      try {
        emitter.resetProgress(l.position, 'materialize');
        emitter.emit({ type: 'layerMaterializeStarted', layerIndex: l.position, diffId: l.diffId });
        const r = await convertMember(ctx, l, cand.path);
        emitter.flushProgress(l.position, 'materialize');
        if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
        await publishLayerCandidate(cand.path, store.paths.layer(l.diffId), l.diffId, false);
        await upsertLayerRow(ctx.store, {
          diffId: l.diffId,
          erofsSizeBytes: r.sizeBytes,
          inodes: r.inodes,
          blocks: r.blocks,
          contentDigest: r.contentDigest,
        });
        return { sizeBytes: r.sizeBytes, root: r.root, reused: false };
      } finally {
        await unlink(cand.path).catch(() => {});
      }
    },
    { signal: ctx.signal },
  )) as LayerDone & { reused: boolean };
  if (!ctx.layers.has(l.diffId) || done.root)
    ctx.layers.set(l.diffId, { sizeBytes: done.sizeBytes, root: done.root ?? ctx.layers.get(l.diffId)?.root ?? null });
  emitter.emit({
    type: 'layerMaterializeComplete',
    layerIndex: l.position,
    diffId: l.diffId,
    erofsSizeBytes: done.sizeBytes,
    reused: done.reused,
  });
}

/**
 * §7 Commit: ONE `publishImages` transaction for the whole archive (`source = 'archive'`), so a
 * multi-image archive is all-or-nothing; one `now` for every image, as one commit.
 */
async function commitArchive(store: Store, images: PlannedImage[], signal: AbortSignal): Promise<ImageHandle[]> {
  const now = Date.now();
  const published = await publishImages(
    store,
    images.map(
      (img): PublishImageRecord => ({
        references: img.names,
        indexDigest: img.indexDigest,
        manifest: {
          digest: img.manifestDigest!,
          mediaType: img.manifestMediaType,
          raw: img.manifestRaw!,
          source: 'archive',
        },
        platform: { os: img.platform.os, architecture: img.platform.architecture, variant: img.platform.variant },
        config: { digest: img.configDigest, raw: img.configRaw },
        layers: img.layers.map((l) => ({
          diffId: l.diffId,
          blobDigest: l.blobDigest!,
          mediaType: l.mediaType!,
          compressedSizeBytes: l.size,
        })),
        ...(img.artifactDigests ? { artifactDigests: img.artifactDigests } : {}),
        now,
      }),
    ),
    { signal },
  );
  return published.flatMap((p) => p.handles);
}

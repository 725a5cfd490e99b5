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
 * Choices where the contract is silent:
 * - Events (pull union without download events, §7): per image `resolving` and `resolved`
 *   (`totalDownloadBytes` 0), the layer and stitch events; the `complete` events of all images
 *   come after the single commit, in image order.
 * - Images are processed one after the other, layers of one image one at a time: an archive is
 *   local, so disk bandwidth, not latency, bounds the work.
 */
import { unlink, mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AbortedError, DigestMismatchError, LayerInvalidError, MsbError, toIoError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { ImageHandle } from '../store/handle.js';
import type { LoadOptions } from './types.js';
import { readErofsTree } from '../erofs/reader.js';
import type { DirNode } from '../erofs/tree.js';
import { DETECT_BYTES, takeHead } from '../layer/compression.js';
import { compressionOfMediaType, ociLayerMediaType, type Compression } from '../oci/media-types.js';
import { resolveLimits, type Limits } from '../limits.js';
import type { ConverterDeps } from '../pull/blob-pipeline.js';
import { defaultConverterDeps } from '../pull/deps-default.js';
import { PullEmitter, linkedAbort, type PullEvent } from '../pull/events.js';
import { checkLayer, publishLayerCandidate } from '../store/artifacts.js';
import { stitchStep } from '../pull/stitch-step.js';
import { hostPlatform, parsePlatform } from '../oci/platform.js';
import { parseReference } from '../reference/reference.js';
import { createLease, type Lease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { loadSpoolPath } from '../store/paths.js';
import { publishImages, upsertLayerRow, type PublishImageRecord } from '../store/publish.js';
import { digestAlgorithm, digestOf, newHash } from '../util/digest.js';
import { ArchiveMembers } from './members.js';
import { planArchive, syntheticManifest, type PlannedImage, type PlannedLayer } from './plan.js';

interface LayerDone {
  sizeBytes: number;
  root: DirNode | null;
}

interface Ctx {
  backend: StoreOpener;
  store: Store;
  lease: Lease;
  members: ArchiveMembers;
  emitter: PullEmitter;
  signal: AbortSignal;
  limits: Limits;
  deps: ConverterDeps;
  warn(code: string, message: string): void;
  /** Per diff_id, once per load (shared layers are read once). */
  layers: Map<string, LayerDone>;
}

/** Loads an archive from a path or a stream; resolves to one handle per loaded name, archive order. */
export async function loadArchive(
  backend: StoreOpener,
  input: string | NodeJS.ReadableStream,
  options: LoadOptions = {},
): Promise<ImageHandle[]> {
  // Argument errors before any I/O.
  const tagsIn =
    options.tag === undefined || options.tag === null ? [] : Array.isArray(options.tag) ? options.tag : [options.tag];
  const tags: string[] = [];
  for (const t of tagsIn) {
    const c = parseReference(t).canonical;
    if (!tags.includes(c)) tags.push(c);
  }
  const explicitPlatform = options.platform !== undefined && options.platform !== null;
  const target = explicitPlatform ? parsePlatform(options.platform) : hostPlatform();

  const emitter = new PullEmitter();
  if (options.onProgress) emitter.addListener(options.onProgress as (e: PullEvent) => void);
  const ac = linkedAbort(options.signal, emitter);
  const signal = ac.signal;
  try {
    return await backend._run(async () => {
      const store = await backend._open('write', signal);
      const limits = resolveLimits(store.limits);
      const lease = await createLease(store, 'load', { signal });
      let spool: string | null = null;
      try {
        const members = await ArchiveMembers.open(input, {
          limits,
          signal,
          spoolDir: async () => {
            const s = loadSpoolPath(store.paths.root);
            await lease.addItem('temp', s.name);
            await mkdir(store.paths.tmpDir, { recursive: true }).catch((err) => {
              throw toIoError(err, store.paths.tmpDir);
            });
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
        const images = await planArchive(members, { limits, target, explicitPlatform, tags, warn });
        const ctx: Ctx = {
          backend,
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
        await lease.addItems([
          ...images
            .filter((i) => i.manifestDigest)
            .map((i) => ({ kind: 'manifest' as const, value: i.manifestDigest! })),
          ...[...new Set(images.flatMap((i) => i.layers.map((l) => l.diffId)))].map((d) => ({
            kind: 'layer' as const,
            value: d,
          })),
        ]);
        for (const img of images) await materializeImage(ctx, img);
        if (signal.aborted) throw new AbortedError(signal.reason);
        const handles = await commitArchive(store, images, signal);
        for (const img of images) {
          emitter.emit({
            type: 'complete',
            reference: img.names[0]!,
            manifestDigest: img.manifestDigest!,
            cached: false,
            layerCount: img.layers.length,
          });
        }
        return handles;
      } finally {
        await ArchiveMembers.removeSpool(spool);
        await lease.release();
      }
    });
  } catch (err) {
    if (emitter.listenerError) throw emitter.listenerError.error;
    if (signal.aborted && !(err instanceof AbortedError) && (!(err instanceof MsbError) || err.code === 'IO'))
      throw new AbortedError(signal.reason);
    throw err;
  } finally {
    ac.dispose();
  }
}

/** Layers, synthetic manifest (Docker path), stitch — everything but the commit. */
async function materializeImage(ctx: Ctx, img: PlannedImage): Promise<void> {
  const { emitter } = ctx;
  emitter.emit({ type: 'resolving', reference: img.names[0]! });
  if (img.kind === 'docker') {
    // The synthetic manifest needs every blob digest: hash the layer members first, so that
    // `resolved` (with the manifest digest) precedes every layer event, as in a pull.
    for (const l of img.layers) {
      const same = img.layers.find((x) => x !== l && x.member === l.member && x.blobDigest);
      if (same) {
        l.blobDigest = same.blobDigest;
        l.mediaType = same.mediaType;
      } else await hashOnly(ctx, l);
    }
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
  await stitchStep({
    store: ctx.store,
    lease: ctx.lease,
    emitter,
    signal: ctx.signal,
    manifestDigest: img.manifestDigest!,
    diffIds: img.layers.map((l) => l.diffId),
    layers: ctx.layers,
    readTree: async (p) => (await readErofsTree(p)).root,
  });
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

function setDockerBlob(l: PlannedLayer, digest: string, kind: Compression): void {
  if (l.pathDigest && l.pathDigest !== digest) {
    throw new DigestMismatchError(
      'blob',
      l.pathDigest,
      digest,
      `archive member ${l.memberName} does not match its name (${digest})`,
    );
  }
  l.blobDigest = digest;
  l.mediaType = ociLayerMediaType(kind);
}

/** Docker path, cached layer: the blob digest and the magic, nothing decompressed. */
async function hashOnly(ctx: Ctx, l: PlannedLayer): Promise<void> {
  const h = newHash('sha256');
  let head = Buffer.alloc(0);
  for await (const c of ctx.members.stream(l.member) as AsyncIterable<Buffer>) {
    if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
    if (head.length < DETECT_BYTES) head = Buffer.concat([head, c.subarray(0, DETECT_BYTES - head.length)]);
    h.update(c);
  }
  const kind = ctx.deps.detectCompression(head);
  if (kind === null)
    throw new LayerInvalidError(`layer member ${l.memberName} is neither gzip, zstd nor tar`, { diffId: l.diffId });
  setDockerBlob(l, `sha256:${h.digest('hex')}`, kind);
}

/**
 * One pass over a layer member: blob hash, decompressor, writeLayer (diff_id checked by the
 * writer). Precedence (docs/pull.md §7): the blob digest first, then a decode/tar error, then the
 * diff_id; the member is read to its end whatever the decoder does.
 */
async function convertMember(
  ctx: Ctx,
  l: PlannedLayer,
  candidate: string,
): Promise<{ sizeBytes: number; inodes: number; blocks: number; root: DirNode }> {
  const { signal, emitter } = ctx;
  const alg = l.blobDigest ? digestAlgorithm(l.blobDigest) : 'sha256';
  const h = newHash(alg);
  const src = ctx.members.stream(l.member);
  const it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const { head, chunks: headParts, ended: eof } = await takeHead(it);
  const kind = ctx.deps.detectCompression(head);
  let failed: unknown = null;
  let dec: NodeJS.ReadWriteStream | null = null;
  let writer: Promise<
    { ok: true; v: Awaited<ReturnType<ConverterDeps['writeLayer']>> } | { ok: false; e: unknown }
  > | null = null;
  const wac = new AbortController();
  const onAbort = () => wac.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (kind !== null) {
    const announced = l.mediaType ? compressionOfMediaType(l.mediaType) : null;
    if (announced !== null && announced !== kind) {
      ctx.warn(
        'MEDIA_TYPE_MISMATCH',
        `layer ${l.position + 1} (${l.blobDigest}): media type ${l.mediaType} does not match its content (${kind}); decoding it as ${kind}`,
      );
    }
    dec = ctx.deps.createDecompressor(kind, { signal: wac.signal });
    dec.on('error', (e: unknown) => {
      if (failed === null) failed = e;
    });
    writer = ctx.deps
      .writeLayer(dec as unknown as Readable, candidate, {
        signal: wac.signal,
        diffIdAlgorithm: digestAlgorithm(l.diffId),
        limits: ctx.limits,
        onProgress: (p) =>
          emitter.progress({
            type: 'layerMaterializeProgress',
            layerIndex: l.position,
            diffId: l.diffId,
            tarBytes: p.tarBytes,
            entries: p.entries,
          }),
        onWarning: (w) => ctx.warn(w.code, w.message),
      })
      .then(
        (v) => ({ ok: true as const, v }),
        (e: unknown) => {
          if (failed === null) failed = e;
          (dec as unknown as Readable).destroy?.();
          return { ok: false as const, e };
        },
      );
  }
  const feed = async (c: Buffer) => {
    h.update(c);
    if (!dec || failed !== null) return;
    let ok: boolean;
    try {
      ok = (dec as unknown as NodeJS.WritableStream).write(c);
    } catch (e) {
      failed = e;
      return;
    }
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = () => {
          dec!.off('drain', done);
          dec!.off('close', done);
          dec!.off('error', done);
          resolve();
        };
        dec!.on('drain', done);
        dec!.on('close', done);
        dec!.on('error', done);
        void writer!.then(done);
      });
    }
  };
  try {
    for (const c of headParts) await feed(c);
    if (!eof) {
      for (;;) {
        if (signal.aborted) throw new AbortedError(signal.reason);
        const r = await it.next();
        if (r.done) break;
        await feed(r.value);
      }
    }
    if (dec && failed === null) (dec as unknown as NodeJS.WritableStream).end();
    const res = writer ? await writer : null;
    if (signal.aborted) throw new AbortedError(signal.reason);
    const blob = `${alg}:${h.digest('hex')}`;
    if (l.blobDigest) {
      if (blob !== l.blobDigest)
        throw new DigestMismatchError(
          'blob',
          l.blobDigest,
          blob,
          `archive member ${l.memberName} does not match its digest (${blob})`,
        );
    }
    if (kind === null)
      throw new LayerInvalidError(`layer member ${l.memberName} is neither gzip, zstd nor tar`, { diffId: l.diffId });
    if (!l.blobDigest) setDockerBlob(l, blob, kind);
    if (!res?.ok) {
      const e = res && !res.ok ? res.e : failed;
      if (e instanceof MsbError) throw e;
      throw ctx.deps.mapDecodeError
        ? ctx.deps.mapDecodeError(kind, e)
        : new LayerInvalidError(String(e), { diffId: l.diffId });
    }
    if (failed !== null)
      throw failed instanceof MsbError
        ? failed
        : (ctx.deps.mapDecodeError?.(kind, failed) ?? new LayerInvalidError(String(failed)));
    const v = res.v;
    if (v.diffId !== l.diffId)
      throw new DigestMismatchError(
        'diffId',
        l.diffId,
        v.diffId,
        `layer ${l.memberName}: diff_id ${v.diffId} does not match the config's ${l.diffId}`,
      );
    return { sizeBytes: v.sizeBytes, inodes: v.inodes, blocks: v.blocks, root: v.root as DirNode };
  } catch (err) {
    wac.abort(err);
    (dec as unknown as Readable | null)?.destroy?.();
    if (writer) await writer;
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    src.destroy();
  }
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
        now,
      }),
    ),
    { signal },
  );
  return published.flatMap((p) => p.handles);
}

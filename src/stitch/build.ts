/**
 * Building a layered root (docs/erofs.md §7–§8): fsmeta from layer trees and the VMDK descriptor.
 *
 * The pull pipeline calls `buildFsmeta` / `stitchVmdkText` with in-cache identities (diff_id
 * tags via `diffIdTag`, uuid = `digestUuid(manifestDigest)`, CID = `cidOf(manifestDigest)`) and
 * publishes the candidates itself (docs/storage.md §4); `stitchLayers` (./stitch.ts) does the same
 * outside the cache with the stand-ins of docs/erofs.md §7.2.
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { LimitExceededError, MsbError, throwIfAborted, toIoError } from '../errors.js';
import { layoutImage, writeImageMetadata, type ImageLayout } from '../erofs/image-writer.js';
import type { DirNode } from '../erofs/tree.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { BLOCK, deviceSlots, headerBlocks, type DeviceSlot } from './fsmeta.js';
import { mergeLayers } from './merge.js';
import { ChunkedDigest } from '../util/chunked-digest.js';
import { vmdkText } from './vmdk.js';

/** One manifest position as the fsmeta builder needs it. */
export interface FsmetaLayer {
  /** The layer's tree, from the layer writer (fresh ingest) or the reader (cached file). */
  root: DirNode;
  /** The layer file's length in bytes (a multiple of 4096). */
  sizeBytes: number;
  /** Device tag, 64 bytes: `diffIdTag(diffId)` in the cache, `uuidTag(uuid)` outside it. */
  tag: Buffer;
}

/** The planned fsmeta: merged tree, EROFS layout and device slots. Pure (no I/O). */
export interface FsmetaPlan {
  root: DirNode;
  layout: ImageLayout;
  devices: DeviceSlot[];
  blocks: number;
}

/**
 * Merges the layers (docs/erofs.md §7.1) and lays fsmeta out after its H header blocks (§2), so that
 * its block count, and with it every `mapped_blkaddr`, is known before a byte is written (§7.2).
 */
export function planFsmeta(layers: readonly FsmetaLayer[]): FsmetaPlan {
  // Zero layers is a valid image (docs/pull.md §6): fsmeta alone, with an empty root and an empty
  // device table. device_id and extra_devices are u16; maxLayers (1000) keeps us far below.
  if (layers.length > DEFAULT_LIMITS.maxLayers)
    throw new LimitExceededError('maxLayers', layers.length, DEFAULT_LIMITS.maxLayers);
  for (const l of layers) {
    if (!Number.isSafeInteger(l.sizeBytes) || l.sizeBytes <= 0 || l.sizeBytes % BLOCK !== 0) {
      throw new Error(`planFsmeta: layer length ${l.sizeBytes} is not a positive multiple of 4096`);
    }
  }
  const root = mergeLayers(layers.map((l) => l.root));
  const layout = layoutImage(root, { firstFreeBlock: headerBlocks(layers.length) });
  const devices = deviceSlots(
    layout.totalBlocks,
    layers.map((l) => ({ blocks: l.sizeBytes / BLOCK, tag: l.tag })),
  );
  return { root, layout, devices, blocks: layout.totalBlocks };
}

/**
 * Writes fsmeta for `layers` (manifest order, bottom first) to `candidatePath`, which must not
 * exist: it is created with O_EXCL, mode 0644 (docs/storage.md §4 step 1), written, fsynced, and its
 * length checked. The superblock uuid is `opts.uuid` (first 16 bytes of the manifest digest, or of
 * the stand-in digest). On any failure the candidate is removed. Deterministic: the same trees,
 * sizes, tags and uuid give the same bytes (docs/erofs.md §7.3.4).
 */
export async function buildFsmeta(
  layers: readonly FsmetaLayer[],
  candidatePath: string,
  opts: FsmetaWriteOptions,
): Promise<{ sizeBytes: number; blocks: number; contentDigest: string | null }> {
  throwIfAborted(opts.signal);
  const plan = planFsmeta(layers);
  const contentDigest = await writeFsmetaPlan(plan, candidatePath, opts);
  return { sizeBytes: plan.blocks * BLOCK, blocks: plan.blocks, contentDigest };
}

export interface FsmetaWriteOptions {
  uuid: Buffer;
  signal?: AbortSignal | undefined;
  /** Compute the content digest while writing (docs/storage.md §10.1); the result is null without it. */
  contentDigest?: boolean | undefined;
}

/** Writes a planned fsmeta to a new file (see `buildFsmeta`); returns its content digest when asked for. */
export async function writeFsmetaPlan(
  plan: FsmetaPlan,
  candidatePath: string,
  opts: FsmetaWriteOptions,
): Promise<string | null> {
  let fh: FileHandle;
  try {
    fh = await open(candidatePath, 'wx', 0o644);
  } catch (err) {
    throw toIoError(err, candidatePath);
  }
  let ok = false;
  try {
    const digest = opts.contentDigest ? new ChunkedDigest() : undefined;
    await writeImageMetadata(fh, plan.layout, { uuid: opts.uuid, devices: plan.devices, observer: digest });
    const contentDigest = digest ? await digest.finish(plan.blocks * BLOCK) : null;
    throwIfAborted(opts.signal);
    ok = true;
    return contentDigest;
  } catch (err) {
    if (err instanceof MsbError || !(err as NodeJS.ErrnoException)?.code) throw err;
    throw toIoError(err, candidatePath);
  } finally {
    await fh.close().catch(() => undefined);
    if (!ok) await unlink(candidatePath).catch(() => undefined);
  }
}

/**
 * The VMDK text for a disk of fsmeta then each position's layer file (docs/erofs.md §8). `cid` is the
 * first 8 hex of the manifest digest (`cidOf`). Paths must be absolute real paths; one that
 * cannot be written is a `SettingsError` (the cache directory's location is a setting).
 */
export function stitchVmdkText(
  cid: string,
  fsmeta: { path: string; sizeBytes: number },
  layers: readonly { path: string; sizeBytes: number }[],
): string {
  return vmdkText(cid, [fsmeta, ...layers]);
}

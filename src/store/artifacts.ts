/**
 * Validity of cached artifacts (docs/storage.md §5), checked before any is reused: a layer EROFS
 * against its header and recorded length, fsmeta against its device table, a VMDK against its
 * extents. Also the publication of a converted layer candidate (§4 steps 3–5).
 */
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import { CacheCorruptError, MsbError, toIoError } from '../errors.js';
import { findLayer, type LayerRow } from '../catalog/queries.js';
import { checkErofsHeader, type SuperblockInfo } from '../erofs/reader.js';
import { diffIdTag } from '../stitch/fsmeta.js';
import { validateFsmetaFile, validateVmdkFile } from '../stitch/validate.js';
import { cidOf } from '../stitch/vmdk.js';
import { digestUuid } from '../util/digest.js';
import { renameDurable } from '../util/fs.js';
import type { Store } from './store.js';

export type LayerCheck =
  | { valid: true; row: LayerRow; sizeBytes: number }
  | { valid: false; row: LayerRow | null; reason: string; fileExists: boolean; orphan: SuperblockInfo | null };

/**
 * docs/storage.md §5 for a layer file: the reader's header checks (erofs/header.ts: regular file,
 * length, magic, CRC, blkszbits, blocks, meta_blkaddr, root inode, volume_name, no device table,
 * uuid = diff_id) and, when a row exists, its recorded length. Returns a reason, or the superblock.
 */
export async function layerFileProblem(
  path: string,
  diffId: string,
  recordedSize?: number | null,
): Promise<{ why: string } | { sb: SuperblockInfo }> {
  try {
    return {
      sb: await checkErofsHeader(path, {
        kind: 'layer',
        uuid: digestUuid(diffId),
        ...(recordedSize !== undefined && recordedSize !== null ? { sizeBytes: recordedSize } : {}),
      }),
    };
  } catch (err) {
    if (err instanceof MsbError && err.code === 'IO' && (err as MsbError & { errno?: string }).errno === 'ENOENT')
      return { why: 'missing' };
    return { why: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Is `layers/<diffId>.erofs` usable? Needs a row whose recorded length matches the file; a valid
 * file without a row is an orphan that the caller can adopt under the lock (docs/storage.md §9).
 * Call it while holding the layer lock, after the diff_id is a lease item.
 */
export async function checkLayer(store: Store, diffId: string): Promise<LayerCheck> {
  const row = (await store.index.read(() => findLayer(store.index, diffId))) ?? null;
  const path = store.paths.layer(diffId);
  let fileExists = true;
  try {
    await lstat(path);
  } catch {
    fileExists = false;
  }
  if (!fileExists) return { valid: false, row, reason: 'missing', fileExists, orphan: null };
  if (row && row.erofs_size_bytes !== null) {
    const r = await layerFileProblem(path, diffId, row.erofs_size_bytes);
    if ('sb' in r) return { valid: true, row, sizeBytes: r.sb.length };
    return { valid: false, row, reason: r.why, fileExists, orphan: null };
  }
  const r = await layerFileProblem(path, diffId);
  if ('sb' in r)
    return { valid: false, row, reason: row ? 'recorded missing' : 'no index row', fileExists, orphan: r.sb };
  return { valid: false, row, reason: r.why, fileExists, orphan: null };
}

/** fsync a candidate written by someone else's stream (the writer may not have). */
async function fsyncFile(path: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    await fh.sync();
  } catch (err) {
    throw toIoError(err, path);
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * docs/storage.md §4 steps 3–5 for a layer candidate already written: validate, then rename over the
 * final name, unless (without force) a valid file is already there, which wins. Returns whether
 * our candidate was the one published.
 */
export async function publishLayerCandidate(
  candidate: string,
  finalPath: string,
  diffId: string,
  force: boolean,
): Promise<boolean> {
  await fsyncFile(candidate);
  const c = await layerFileProblem(candidate, diffId);
  if ('why' in c) throw new CacheCorruptError(candidate, `converted layer ${diffId} fails validation: ${c.why}`);
  if (!force) {
    let exists = false;
    try {
      await lstat(finalPath);
      exists = true;
    } catch {
      /* absent */
    }
    if (exists && 'sb' in (await layerFileProblem(finalPath, diffId))) {
      await unlink(candidate).catch(() => {});
      return false;
    }
  }
  await renameDurable(candidate, finalPath);
  return true;
}

export interface StitchCheck {
  fsmetaValid: boolean;
  vmdkValid: boolean;
  /** fsmeta's length when it is valid. */
  fsmetaSize: number | null;
  fsWhy: string | null;
  vmWhy: string | null;
  fsExists: boolean;
  vmExists: boolean;
}

/**
 * docs/storage.md §5 for fsmeta + VMDK of `manifestDigest` whose positions are `diffIds` and whose
 * layer files have the lengths in `sizes`. Call it under the image lock.
 */
export async function checkStitch(
  store: Store,
  manifestDigest: string,
  diffIds: readonly string[],
  sizes: ReadonlyMap<string, number>,
  recordedFsmeta?: number | null,
): Promise<StitchCheck> {
  const m = manifestDigest;
  const fsPath = store.paths.fsmeta(m);
  const vmPath = store.paths.vmdk(m);
  const exists = async (p: string) => {
    try {
      await lstat(p);
      return true;
    } catch {
      return false;
    }
  };
  const fsExists = await exists(fsPath);
  const vmExists = await exists(vmPath);
  const layerInfo = diffIds.map((d) => ({ sizeBytes: sizes.get(d)!, tag: diffIdTag(d) }));
  const fsWhy = fsExists
    ? await validateFsmetaFile(fsPath, {
        uuid: digestUuid(m),
        layers: layerInfo,
        ...(recordedFsmeta ? { sizeBytes: recordedFsmeta } : {}),
      })
    : 'missing';
  let fsmetaSize: number | null = null;
  if (!fsWhy) fsmetaSize = (await lstat(fsPath)).size;
  let vmWhy: string | null = 'missing';
  if (vmExists && fsmetaSize !== null) {
    vmWhy = await validateVmdkFile(vmPath, {
      paths: [fsPath, ...diffIds.map((d) => store.paths.layer(d))],
      sizes: [fsmetaSize, ...diffIds.map((d) => sizes.get(d)!)],
      cid: cidOf(m),
    });
  } else if (vmExists) {
    vmWhy = 'fsmeta is invalid';
  }
  return { fsmetaValid: !fsWhy, vmdkValid: !vmWhy, fsmetaSize, fsWhy, vmWhy, fsExists, vmExists };
}

/**
 * The public `stitchLayers` utility (docs/api.md §5, docs/cli.md §10): layer EROFS files → fsmeta + VMDK
 * outside the cache, with the stand-in identities of docs/erofs.md §7.2.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, realpath, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CacheCorruptError,
  InternalError,
  InvalidArgumentError,
  LimitExceededError,
  MsbError,
  throwIfAborted,
  toIoError,
} from '../errors.js';
import { readErofsTree } from '../erofs/reader.js';
import type { DirNode } from '../erofs/tree.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { getOrCreate } from '../util/collections.js';
import { fsyncDir, writeNewFile } from '../util/fs.js';
import { digestUuid } from '../util/digest.js';
import { planFsmeta, stitchVmdkText, writeFsmetaPlan, type FsmetaLayer } from './build.js';
import { BLOCK, checkDiskBlocks, standInDigest, uuidTag } from './fsmeta.js';
import { validateFsmetaFile, validateLayerFile, validateVmdkFile } from './validate.js';
import { cidOf, vmdkPathProblem } from './vmdk.js';

export interface StitchResult {
  fsmetaPath: string;
  vmdkPath: string;
  layers: number;
  fsmetaSizeBytes: number;
  diskSizeBytes: number;
}

/** Output names inside `outDir` (docs/api.md §5). */
export const FSMETA_NAME = 'fsmeta.erofs';
export const VMDK_NAME = 'rootfs.vmdk';

interface ReadLayer {
  path: string;
  sizeBytes: number;
  root: DirNode;
  uuid: Buffer;
}

/**
 * Checks and reads one input layer file. Symlinks are resolved first (the VMDK names real
 * paths, docs/erofs.md §8), then the docs/storage.md §5 layer checks that need no index row and no
 * digest-named file run on the real file. Any failure is `CacheCorruptError` naming the path as
 * the caller gave it.
 */
async function readInputLayer(given: string): Promise<ReadLayer> {
  let real: string;
  try {
    real = await realpath(given);
  } catch (err) {
    throw new CacheCorruptError(given, `cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const why = await validateLayerFile(real);
  if (why) throw new CacheCorruptError(given, why);
  try {
    const r = await readErofsTree(real);
    const st = await lstat(real);
    return { path: real, sizeBytes: st.size, root: r.root, uuid: r.uuid };
  } catch (err) {
    if (err instanceof MsbError && err.code !== 'CACHE_CORRUPT') throw err;
    const reason =
      err instanceof CacheCorruptError
        ? String((err.details as { reason?: unknown }).reason ?? err.message)
        : (err as Error).message;
    throw new CacheCorruptError(given, reason);
  }
}

/**
 * Reads each distinct file once; a repeated file is the same tree at several positions, and the
 * merge gives each position its own identities and device.
 */
async function readInputLayers(layers: string[], signal: AbortSignal | undefined): Promise<ReadLayer[]> {
  const byGiven = new Map<string, Promise<ReadLayer>>();
  const read: ReadLayer[] = [];
  for (const given of layers) {
    throwIfAborted(signal);
    const r = await getOrCreate(byGiven, given, () => readInputLayer(given));
    const why = vmdkPathProblem(r.path);
    if (why) throw new InvalidArgumentError('layers', `${JSON.stringify(r.path)} cannot be named in a VMDK: ${why}`);
    read.push(r);
  }
  throwIfAborted(signal);
  return read;
}

function checkStitchArgs(layers: string[], outDir: string): void {
  if (!Array.isArray(layers) || layers.length === 0 || layers.some((l) => typeof l !== 'string' || l === '')) {
    throw new InvalidArgumentError('layers', 'stitchLayers needs one or more layer file paths');
  }
  if (typeof outDir !== 'string' || outDir === '')
    throw new InvalidArgumentError('outDir', 'stitchLayers needs an output directory');
  if (layers.length > DEFAULT_LIMITS.maxLayers)
    throw new LimitExceededError('maxLayers', layers.length, DEFAULT_LIMITS.maxLayers);
}

/** Creates `outDir` (as `mkdir -p`) and returns its real path, which the VMDK must be able to name. */
async function prepareOutDir(outDir: string): Promise<string> {
  let dir: string;
  try {
    await mkdir(resolve(outDir), { recursive: true });
    dir = await realpath(outDir);
  } catch (err) {
    throw toIoError(err, outDir);
  }
  const dirProblem = vmdkPathProblem(join(dir, FSMETA_NAME));
  if (dirProblem)
    throw new InvalidArgumentError('outDir', `${JSON.stringify(dir)} cannot be named in a VMDK: ${dirProblem}`);
  return dir;
}

/**
 * `stitchLayers` (docs/api.md §5): layer EROFS files, bottom first → `<outDir>/fsmeta.erofs` and
 * `<outDir>/rootfs.vmdk`. Tags, fsmeta's uuid and the VMDK CID use the stand-ins of docs/erofs.md
 * §7.2. `outDir` is created when missing (as `mkdir -p`). Both files are written to temporary
 * names in `outDir`, validated (docs/storage.md §5) and renamed; a failure leaves neither. The same
 * file may appear at several positions (each gets its own device slot).
 */
export async function stitchLayers(
  layers: string[],
  outDir: string,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<StitchResult> {
  const { signal } = options;
  throwIfAborted(signal);
  checkStitchArgs(layers, outDir);
  const read = await readInputLayers(layers, signal);
  const dir = await prepareOutDir(outDir);
  const fsmetaPath = join(dir, FSMETA_NAME);
  const vmdkPath = join(dir, VMDK_NAME);

  const uuids = read.map((r) => r.uuid);
  const stand = standInDigest(uuids);
  const fsLayers: FsmetaLayer[] = read.map((r) => ({ root: r.root, sizeBytes: r.sizeBytes, tag: uuidTag(r.uuid) }));
  const plan = planFsmeta(fsLayers);
  const fsmetaSizeBytes = plan.blocks * BLOCK;
  const diskBlocks = plan.blocks + read.reduce((s, r) => s + r.sizeBytes / BLOCK, 0);
  checkDiskBlocks(diskBlocks);
  const uuid = digestUuid(stand);
  const cid = cidOf(stand);
  const fsmetaFiles = { path: fsmetaPath, sizeBytes: fsmetaSizeBytes };
  const layerFiles = read.map((r) => ({ path: r.path, sizeBytes: r.sizeBytes }));
  const text = stitchVmdkText(cid, fsmetaFiles, layerFiles);

  const rand = randomBytes(6).toString('hex');
  const fsmetaTmp = join(dir, `${FSMETA_NAME}.${rand}.partial`);
  const vmdkTmp = join(dir, `${VMDK_NAME}.${rand}.partial`);
  let published = 0;
  try {
    await writeFsmetaPlan(plan, fsmetaTmp, { uuid, signal });
    await writeNewFile(vmdkTmp, text);
    // Check what we wrote, as every later read will (docs/storage.md §5): catches an encoder slip here.
    const expect = {
      uuid,
      layers: fsLayers.map((l, i) => ({ path: read[i]!.path, sizeBytes: l.sizeBytes, tag: l.tag })),
    };
    const fsWhy = await validateFsmetaFile(fsmetaTmp, expect);
    if (fsWhy) throw new InternalError(`stitched fsmeta fails validation: ${fsWhy}`);
    const vWhy = await validateVmdkFile(vmdkTmp, {
      paths: [fsmetaPath, ...layerFiles.map((f) => f.path)],
      sizes: [fsmetaSizeBytes, ...layerFiles.map((f) => f.sizeBytes)],
      cid,
    });
    if (vWhy) throw new InternalError(`stitched VMDK fails validation: ${vWhy}`);
    throwIfAborted(signal);
    await rename(fsmetaTmp, fsmetaPath).catch((e) => {
      throw toIoError(e, fsmetaPath);
    });
    published = 1;
    await rename(vmdkTmp, vmdkPath).catch((e) => {
      throw toIoError(e, vmdkPath);
    });
    published = 2;
    await fsyncDir(dir);
  } catch (err) {
    await unlink(fsmetaTmp).catch(() => undefined);
    await unlink(vmdkTmp).catch(() => undefined);
    // "A failure leaves neither": a half-published pair is taken back.
    if (published >= 1) await unlink(fsmetaPath).catch(() => undefined);
    if (published >= 2) await unlink(vmdkPath).catch(() => undefined);
    if (err instanceof MsbError) throw err;
    // An errno-carrying failure is I/O; anything else is our own invariant breaking.
    if ((err as NodeJS.ErrnoException)?.code) throw toIoError(err, dir);
    throw new InternalError((err as Error)?.message ?? String(err), err);
  }
  return { fsmetaPath, vmdkPath, layers: layers.length, fsmetaSizeBytes, diskSizeBytes: diskBlocks * BLOCK };
}

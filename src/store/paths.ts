/**
 * Cache layout and names (docs/storage.md §1–§2). Every digest is validated (util/digest.ts) before it
 * becomes part of a path, so no input can name a file outside the cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { digestHex, digestPathForm, invalidStoredDigest, isDigest } from '../util/digest.js';
import type { ImageArtifacts } from './types.js';

export type LockKind = 'ref' | 'layer' | 'image' | 'gc';
export type CandidateKind = 'layer' | 'fsmeta' | 'vmdk';

export const MARKER_NAME = 'msb-cache.json';

/** `layers/<alg>_<hex>.erofs` (keyed by diff_id). */
export function layerPath(cacheDir: string, diffId: string): string {
  return join(cacheDir, 'layers', `${digestPathForm(diffId)}.erofs`);
}
/** `fsmeta/<alg>_<hex>.erofs` (keyed by manifest digest). */
export function fsmetaPath(cacheDir: string, manifestDigest: string): string {
  return join(cacheDir, 'fsmeta', `${digestPathForm(manifestDigest)}.erofs`);
}
/** `vmdk/<alg>_<hex>.vmdk` (keyed by manifest digest). */
export function vmdkPath(cacheDir: string, manifestDigest: string): string {
  return join(cacheDir, 'vmdk', `${digestPathForm(manifestDigest)}.vmdk`);
}

function rand(): string {
  return randomBytes(6).toString('hex');
}

/**
 * A candidate name `tmp/<kind>-<alg>_<hex>-<pid>-<rand>.tmp`. `name` is what goes into the lease
 * (`temp` item) BEFORE the file is created with O_EXCL.
 */
export function tmpPath(cacheDir: string, kind: CandidateKind, digest: string): { name: string; path: string } {
  const name = `${kind}-${digestPathForm(digest)}-${process.pid}-${rand()}.tmp`;
  return { name, path: join(cacheDir, 'tmp', name) };
}

/** `tmp/blob-<alg>_<hex>.part`: the resumable compressed download of a blob (lease item `blob`). */
export function partPath(cacheDir: string, blobDigest: string): string {
  return join(cacheDir, 'tmp', `blob-${digestPathForm(blobDigest)}.part`);
}

/** `tmp/load-<pid>-<rand>/`: spool directory of an archive read from a stream (lease item `temp`). */
export function loadSpoolPath(cacheDir: string): { name: string; path: string } {
  const name = `load-${process.pid}-${rand()}`;
  return { name, path: join(cacheDir, 'tmp', name) };
}

/** `tmp/save-<pid>-<rand>.tar`: spool of one regenerated layer tar during save (lease item `temp`). */
export function saveSpoolPath(cacheDir: string): { name: string; path: string } {
  const name = `save-${process.pid}-${rand()}.tar`;
  return { name, path: join(cacheDir, 'tmp', name) };
}

/** The stripe (first 3 hex characters of the key's digest) of a lock key. */
export function lockStripe(kind: Exclude<LockKind, 'gc'>, key: string): string {
  if (kind === 'ref') return createHash('sha256').update(key).digest('hex').slice(0, 3);
  if (!isDigest(key)) throw invalidStoredDigest(key);
  return digestHex(key).slice(0, 3);
}

/**
 * `locks/<kind>-<stripe>.lock`, or `locks/gc.lock`. The key is the canonical reference (`ref`),
 * the diff_id (`layer`) or the manifest digest (`image`).
 */
export function lockPath(cacheDir: string, kind: LockKind, key?: string): string {
  if (kind === 'gc') return join(cacheDir, 'locks', 'gc.lock');
  return join(cacheDir, 'locks', `${kind}-${lockStripe(kind, key ?? '')}.lock`);
}

/** All paths of one cache directory (its real path, as resolved at backend open). */
export class CachePaths {
  constructor(readonly root: string) {}
  get layersDir(): string {
    return join(this.root, 'layers');
  }
  get fsmetaDir(): string {
    return join(this.root, 'fsmeta');
  }
  get vmdkDir(): string {
    return join(this.root, 'vmdk');
  }
  get tmpDir(): string {
    return join(this.root, 'tmp');
  }
  get locksDir(): string {
    return join(this.root, 'locks');
  }
  get marker(): string {
    return join(this.root, MARKER_NAME);
  }
  layer(diffId: string): string {
    return layerPath(this.root, diffId);
  }
  fsmeta(manifestDigest: string): string {
    return fsmetaPath(this.root, manifestDigest);
  }
  vmdk(manifestDigest: string): string {
    return vmdkPath(this.root, manifestDigest);
  }
  tmp(kind: CandidateKind, digest: string): { name: string; path: string } {
    return tmpPath(this.root, kind, digest);
  }
  part(blobDigest: string): string {
    return partPath(this.root, blobDigest);
  }
  lock(kind: LockKind, key?: string): string {
    return lockPath(this.root, kind, key);
  }
  /** What a VMM attaches for an image: VMDK, fsmeta, and the layer files in manifest order. */
  artifacts(manifestDigest: string, layers: readonly { position: number; diffId: string }[]): ImageArtifacts {
    return {
      vmdkPath: this.vmdk(manifestDigest),
      fsmetaPath: this.fsmeta(manifestDigest),
      layers: layers.map((l) => ({ position: l.position, diffId: l.diffId, path: this.layer(l.diffId) })),
    };
  }
}

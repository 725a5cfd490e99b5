/**
 * Measured deletion (docs/storage.md §8 "Measure"): `st_blocks × 512` from an `lstat` taken just before
 * the unlink; it counts only if the unlink succeeded and `st_nlink == 1` (a file with other hard
 * links frees nothing). `predict*` are the dry-run twins: same lstat, no unlink.
 *
 * lstat and unlink are issued synchronously: they are metadata-only syscalls on the cache's local
 * filesystem (docs/storage.md §1 rules out network filesystems), a few microseconds each, while the
 * promise API costs two thread-pool round trips per file — the bulk of a 1,000-image prune.
 */
import { lstatSync, promises as fsp, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { toIoError } from '../errors.js';

export async function lstatOrNull(path: string): Promise<Stats | null> {
  return lstatOrNullSync(path);
}

export function lstatOrNullSync(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw toIoError(err, path);
  }
}

export function freedBytes(st: Stats): number {
  return st.nlink === 1 ? st.blocks * 512 : 0;
}

/** Accumulates measures; `bytes` is null iff no file was deleted. */
export class Measures {
  files = 0;
  total = 0;
  add(bytes: number): void {
    this.files++;
    this.total += bytes;
  }
  get bytes(): number | null {
    return this.files === 0 ? null : this.total;
  }
}

/**
 * lstat + unlink of a non-directory. Missing → `{deleted:false}`. A directory (or any unlink error)
 * throws IoError naming the path.
 */
export async function unlinkMeasured(path: string): Promise<{ deleted: boolean; bytes: number }> {
  const st = lstatOrNullSync(path);
  if (!st) return { deleted: false, bytes: 0 };
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { deleted: false, bytes: 0 };
    throw toIoError(err, path);
  }
  return { deleted: true, bytes: freedBytes(st) };
}

/** Dry-run twin of unlinkMeasured: a directory would fail to unlink, so it is not counted. */
export async function predictUnlink(path: string): Promise<{ deleted: boolean; bytes: number }> {
  const st = await lstatOrNull(path);
  if (!st || st.isDirectory()) return { deleted: false, bytes: 0 };
  return { deleted: true, bytes: freedBytes(st) };
}

/**
 * Removes `path` (file or directory tree), measuring each file as it goes into `m`. With `dry`,
 * only measures. Files deleted before a failure stay counted; the failure is thrown.
 */
export async function removeTreeMeasured(path: string, m: Measures, dry: boolean): Promise<void> {
  const st = await lstatOrNull(path);
  if (!st) return;
  if (!st.isDirectory()) {
    if (dry) {
      m.add(freedBytes(st));
      return;
    }
    const r = await unlinkMeasured(path);
    if (r.deleted) m.add(r.bytes);
    return;
  }
  let names: string[];
  try {
    names = await fsp.readdir(path);
  } catch (err) {
    throw toIoError(err, path);
  }
  for (const n of names) await removeTreeMeasured(join(path, n), m, dry);
  if (!dry) {
    try {
      await fsp.rmdir(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(err, path);
    }
  }
}

/** Σ st_blocks*512 and file count of a tree (diskUsage: every file, nlink ignored). */
export async function treeUsage(path: string, seen?: Set<string>): Promise<{ files: number; bytes: number }> {
  const st = await lstatOrNull(path);
  if (!st) return { files: 0, bytes: 0 };
  if (!st.isDirectory()) {
    const key = `${st.dev}:${st.ino}`;
    if (seen?.has(key)) return { files: 1, bytes: 0 };
    seen?.add(key);
    return { files: 1, bytes: st.blocks * 512 };
  }
  let files = 0;
  let bytes = 0;
  let names: string[] = [];
  try {
    names = await fsp.readdir(path);
  } catch {
    /* unreadable: counts as empty */
  }
  for (const n of names) {
    const u = await treeUsage(join(path, n), seen);
    files += u.files;
    bytes += u.bytes;
  }
  return { files, bytes };
}

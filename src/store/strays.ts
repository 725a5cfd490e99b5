/**
 * The stray files of the cache directory that prune (docs/storage.md §8 steps 7–8), disk usage and
 * verify (§10) look at: temp entries past their grace period, and the entries of the artifact
 * directories (`layers/`, `fsmeta/`, `vmdk/`) whose names do or do not parse as ours.
 */
import { promises as fsp, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { toIoError } from '../errors.js';
import type { IndexDb } from '../catalog/db.js';
import { layerExists, manifestExists } from '../catalog/queries.js';
import { digestFromPathForm } from '../util/digest.js';
import { cmp } from './gc.js';
import { lstatOrNull, lstatOrNullSync } from './measure.js';
import type { Store } from './store.js';

/** `blob-<alg>_<hex>.part` → digest, else null. */
export function partDigest(name: string): string | null {
  return name.startsWith('blob-') ? digestFromPathForm(name.slice(5), '.part') : null;
}

export interface TempEntry {
  name: string;
  path: string;
}

/** Step 7 selection (shared by both runs). */
export async function tempCandidates(
  store: Store,
  now: number,
  graceMs: number,
  leasedBlobs: Set<string>,
  leasedTemps: Set<string>,
): Promise<TempEntry[]> {
  let names: string[];
  try {
    names = await fsp.readdir(store.paths.tmpDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toIoError(err, store.paths.tmpDir);
  }
  const out: TempEntry[] = [];
  for (const name of names.sort(cmp)) {
    const path = join(store.paths.tmpDir, name);
    const st = await lstatOrNull(path);
    if (!st) continue;
    if (!(st.mtimeMs < now - graceMs)) continue;
    const d = partDigest(name);
    if (d !== null && leasedBlobs.has(d)) continue;
    if (leasedTemps.has(name)) continue;
    out.push({ name, path });
  }
  return out;
}

export const ORPHAN_DIRS = [
  { dir: 'layers', ext: '.erofs', table: 'layer', lock: 'layer', leaseKind: 'layer' },
  { dir: 'fsmeta', ext: '.erofs', table: 'manifest', lock: 'image', leaseKind: 'manifest' },
  { dir: 'vmdk', ext: '.vmdk', table: 'manifest', lock: 'image', leaseKind: 'manifest' },
] as const;

export function hasRow(index: IndexDb, table: 'layer' | 'manifest', digest: string): boolean {
  return table === 'layer' ? layerExists(index, digest) : manifestExists(index, digest);
}

/** Files (not directories) in an artifact directory whose names parse as digests. */
export async function artifactFiles(
  dirPath: string,
  ext: string,
): Promise<{ name: string; path: string; digest: string }[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dirPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toIoError(err, dirPath);
  }
  const out = [];
  for (const name of names.sort(cmp)) {
    const digest = digestFromPathForm(name, ext);
    if (!digest) continue; // not ours: left alone
    const path = join(dirPath, name);
    const st = await lstatOrNull(path);
    if (!st || st.isDirectory()) continue;
    out.push({ name, path, digest });
  }
  return out;
}

/**
 * Removes entries of the artifact directories whose names are not ours (verify --repair, docs/storage.md
 * §10.3): each must still be a direct, non-directory entry of `layers/`, `fsmeta/` or `vmdk/` whose
 * name does not parse as an artifact. A symlink is unlinked itself; its target is never touched.
 * Returns the paths it could not remove, with the reason.
 */
export function removeForeignEntries(store: Store, paths: readonly string[]): Map<string, string> {
  const refused = new Map<string, string>();
  for (const path of paths) {
    const d = ORPHAN_DIRS.find((x) => dirname(path) === join(store.cacheDir, x.dir));
    const name = basename(path);
    if (!d || digestFromPathForm(name, d.ext)) {
      refused.set(path, 'not a foreign entry of an artifact directory');
      continue;
    }
    const st = lstatOrNullSync(path);
    if (!st) continue;
    if (st.isDirectory()) {
      refused.set(path, 'a directory: msb removes no directory it did not create; remove it by hand');
      continue;
    }
    try {
      unlinkSync(path);
    } catch (err) {
      refused.set(path, `cannot remove: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  return refused;
}

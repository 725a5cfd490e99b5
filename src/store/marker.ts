/**
 * The cache marker `cache/msb-cache.json` (docs/storage.md §1): `{"format":"msb-image/1","indexId":…}`
 * ties a cache directory to exactly one index, so two homes never treat each other's files as
 * orphans. It is created once, by `link(2)` from a temporary name, so an existing marker is never
 * replaced.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, lstatSync, openSync, unlinkSync, writeSync, constants as C } from 'node:fs';
import { join } from 'node:path';
import { IoError, MsbError, SettingsError, toIoError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import { readSmallFileSync } from '../util/fs.js';
import { MARKER_NAME } from './paths.js';

export const MARKER_FORMAT = 'msb-image/1';

export type MarkerState =
  | { kind: 'absent' } // neither a marker nor layers/: a new cache
  | { kind: 'ours' }
  | { kind: 'foreign'; reason: string };

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return false;
    throw toIoError(err, p);
  }
}

/** Reads the marker and classifies the cache directory for the index `indexId` (null: no index yet). */
export function readMarker(cacheDir: string, indexId: string | null): MarkerState {
  const file = join(cacheDir, MARKER_NAME);
  let text: string | null = null;
  try {
    text = readSmallFileSync(file, {
      maxBytes: FIXED_LIMITS.markerFileBytes,
      limitName: 'markerFileBytes',
      noFollow: true,
    }).data.toString('utf8');
  } catch (err) {
    const code = err instanceof IoError ? err.errno : err instanceof MsbError ? err.code : 'EIO';
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return { kind: 'foreign', reason: `unreadable marker (${code})` };
  }
  if (text === null) {
    return exists(join(cacheDir, 'layers'))
      ? { kind: 'foreign', reason: 'layers/ without a marker' }
      : { kind: 'absent' };
  }
  try {
    const m = JSON.parse(text) as { format?: unknown; indexId?: unknown };
    if (m.format !== MARKER_FORMAT) return { kind: 'foreign', reason: `marker format ${JSON.stringify(m.format)}` };
    if (indexId === null || m.indexId !== indexId) return { kind: 'foreign', reason: 'marker of another index' };
    return { kind: 'ours' };
  } catch {
    return { kind: 'foreign', reason: 'malformed marker' };
  }
}

/**
 * "belongs to another msb home", with the reason and a recovery hint: the usual cause is another
 * home's cache; the other is this home's index lost or re-created (the marker names the old one).
 */
export function foreignCacheError(cacheDir: string, reason?: string): SettingsError {
  const marker = join(cacheDir, MARKER_NAME);
  const e = new SettingsError(
    marker,
    `cache directory ${cacheDir} belongs to another msb home${reason ? ` (${reason})` : ''}`,
  );
  (e.details as Record<string, unknown>).hint =
    `use that home (MSB_HOME), or another paths.cache; if this home's index was lost or re-created, move ${cacheDir} aside (or delete it): the next command starts a new cache`;
  return e;
}

/** Throws SettingsError unless the cache is ours or new. */
export function checkMarker(cacheDir: string, indexId: string | null): MarkerState {
  const st = readMarker(cacheDir, indexId);
  if (st.kind === 'foreign') throw foreignCacheError(cacheDir, st.reason);
  return st;
}

/**
 * Creates the marker if absent: written to a temporary name, fsynced, then `link`ed into place.
 * Losing a race to another process is fine if the winner's marker names the same index.
 */
export function ensureMarker(cacheDir: string, indexId: string): void {
  const st = checkMarker(cacheDir, indexId);
  if (st.kind === 'ours') return;
  const final = join(cacheDir, MARKER_NAME);
  const tmp = join(cacheDir, `.${MARKER_NAME}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
    try {
      writeSync(fd, JSON.stringify({ format: MARKER_FORMAT, indexId }) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, final);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  } catch (err) {
    throw toIoError(err, final);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
  checkMarker(cacheDir, indexId);
}

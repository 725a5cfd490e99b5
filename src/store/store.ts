/**
 * The open cache (docs/storage.md §1): one home's SQLite index plus its cache directory, resolved
 * once. Every operation below the API receives a `Store`; the API's `LocalBackend` only decides
 * when to open one (lazily) and tracks running operations (`StoreOpener`).
 *
 * Opening for reading creates nothing: a home without an index answers `null`. Opening for
 * writing creates the directories, the database and the cache marker, in that order (the marker
 * before `layers/`, which would otherwise read as another home's cache).
 */
import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DatabaseError, IoError } from '../errors.js';
import { openIndex, indexPath, type IndexDb } from '../catalog/db.js';
import type { Limits } from '../limits.js';
import type { Settings } from '../settings/settings.js';
import { deleteStaleLeases } from './lease.js';
import { checkMarker, ensureMarker, readMarker } from './marker.js';
import { CachePaths } from './paths.js';
import { ensureDirSync, writeErrnoSync } from '../util/fs.js';

/**
 * Everything an operation needs once the cache is open. `paths.root` is the REAL path of the cache
 * directory, resolved once at open (it is what VMDK extents and `inspect` report).
 */
export interface Store {
  readonly home: string;
  readonly cacheDir: string;
  readonly paths: CachePaths;
  readonly index: IndexDb;
  readonly settings: Settings;
  readonly limits: Limits;
  /** How old an unleased temp entry must be before prune removes it. */
  readonly tempGraceMs: number;
  readonly pullConcurrency: number;
  /** True once directories, lock dir and marker exist (the first write-mode open did that). */
  writeReady: boolean;
}

/**
 * What operations that open the cache themselves (pull, load, save, Sandbox.create) need from
 * their caller. `LocalBackend` implements it; lower layers never see the API class.
 */
export interface StoreOpener {
  readonly home: string;
  /** config.json overlaid with the caller's settings (read once). */
  readonly settings: Settings;
  /** Opens for reading: `null` means "no index yet" (nothing was created). */
  _open(mode: 'read'): Promise<Store | null>;
  /** Opens for writing: creates directories, database and marker as needed. */
  _open(mode: 'write', signal?: AbortSignal): Promise<Store>;
  /** Runs `fn` as a tracked operation (closing waits for it). */
  _run<T>(fn: () => Promise<T>): Promise<T>;
}

export interface StoreConfig {
  home: string;
  /** The configured cache directory (absolute, not yet resolved through symlinks). */
  cacheDir: string;
  settings: Settings;
  limits: Limits;
  tempGraceMs: number;
  pullConcurrency: number;
}

/** realpath of `p`, or of its nearest existing ancestor joined with the rest. */
function realPathLoose(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    const parent = dirname(p);
    if (parent === p) return p;
    return join(realPathLoose(parent), basename(p));
  }
}

function existsDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Modes of the directories we create, whatever the umask (util/fs.ts `ensureDirSync`): the home and
 * the cache's private parts 0700; the cache and its artifact directories 0755, so that a VMM
 * running as another user can read the layer files it is given.
 */
const PRIVATE = 0o700;
const SHARED = 0o755;
const CACHE_DIRS: [string, number][] = [
  ['layers', SHARED],
  ['fsmeta', SHARED],
  ['vmdk', SHARED],
  ['tmp', PRIVATE],
  ['locks', PRIVATE],
];

/**
 * The index file exists but is empty while the cache holds a marker (or layers/): the index was
 * lost or truncated. Creating a new one would tie nothing to the cache, and every later command
 * would call the cache another home's. Refused with what happened and how to recover.
 */
function refuseEmptyIndex(home: string, cacheDir: string): void {
  const st = readMarker(cacheDir, null);
  if (st.kind !== 'foreign') return;
  const e = new DatabaseError(
    `index ${indexPath(home)} is empty, but the cache ${cacheDir} was filled for an index: the index was lost or truncated`,
  );
  (e.details as Record<string, unknown>).hint =
    `restore ${indexPath(home)} from a backup; or start over without the cached images: move ${cacheDir} aside (or delete it) and run the command again`;
  throw e;
}

const READ_ONLY_HINT = (home: string) =>
  `${home} is not writable: listing, inspecting and disk usage still work; operations that change the cache need a writable home`;

/** A failure to create the home: on a read-only home, say so (reads still work, docs/storage.md §1). */
function homeWriteError(err: unknown, home: string): unknown {
  if (err instanceof IoError && (err.errno === 'EROFS' || err.errno === 'EACCES' || err.errno === 'EPERM'))
    (err.details as Record<string, unknown>).hint = READ_ONLY_HINT(home);
  return err;
}

/**
 * Opening for writing: the directories that exist must be writable, checked first, so that a
 * read-only home fails here, with the reason and the hint, and not at some lock file later.
 */
function checkWritable(home: string, dirs: string[]): void {
  for (const d of dirs) {
    const errno = writeErrnoSync(d);
    if (errno === null || errno === 'ENOENT') continue;
    const e = new IoError(d, errno, `${errno}: ${d}: cannot write here`);
    (e.details as Record<string, unknown>).hint = READ_ONLY_HINT(home);
    throw e;
  }
}

/**
 * Opens the index of `cfg.home` and binds it to the cache directory. `current` (an open store of
 * the same config) is upgraded to write-ready instead of being reopened.
 */
export async function openStore(
  cfg: StoreConfig,
  mode: 'read' | 'write',
  current: Store | null,
  signal?: AbortSignal,
): Promise<Store | null> {
  let store = current && !current.index.isClosed ? current : null;
  // A store opened read-only (read-only home) is reopened for writing: the error then says why.
  if (store && mode === 'write' && store.index.readOnly) {
    store.index.close();
    store = null;
  }
  if (!store) {
    const dbExists = (() => {
      try {
        lstatSync(indexPath(cfg.home));
        return true;
      } catch {
        return false;
      }
    })();
    // A cache that already carries a marker (or layers/) cannot be ours when we have no index.
    if (!dbExists) checkMarker(cfg.cacheDir, null);
    if (mode === 'write') checkWritable(cfg.home, [cfg.home, dirname(indexPath(cfg.home)), cfg.cacheDir]);
    let index: IndexDb | null;
    try {
      if (mode === 'write') ensureDirSync(cfg.home, PRIVATE);
      index = await openIndex(cfg.home, {
        create: mode === 'write',
        signal,
        onEmpty: () => refuseEmptyIndex(cfg.home, cfg.cacheDir),
      });
    } catch (err) {
      throw homeWriteError(err, cfg.home);
    }
    if (!index) return null;
    try {
      checkMarker(cfg.cacheDir, index.indexId);
    } catch (err) {
      index.close();
      throw err;
    }
    const root = realPathLoose(cfg.cacheDir);
    store = {
      home: cfg.home,
      cacheDir: root,
      paths: new CachePaths(root),
      index,
      settings: cfg.settings,
      limits: cfg.limits,
      tempGraceMs: cfg.tempGraceMs,
      pullConcurrency: cfg.pullConcurrency,
      writeReady: false,
    };
  }
  if (mode === 'write' && !store.writeReady) store = await makeWriteReady(store, cfg.cacheDir, signal);
  return store;
}

async function makeWriteReady(store: Store, cacheDir: string, signal?: AbortSignal): Promise<Store> {
  const existed = existsDir(cacheDir);
  // The marker first: `layers/` without a marker would read as another home's cache.
  ensureDirSync(cacheDir, SHARED);
  ensureMarker(cacheDir, store.index.indexId);
  for (const [d, m] of CACHE_DIRS) ensureDirSync(join(cacheDir, d), m);
  // The directory did not exist when its real path was first computed.
  const root = existed ? store.cacheDir : realpathSync(cacheDir);
  const ready: Store = {
    ...store,
    cacheDir: root,
    paths: root === store.cacheDir ? store.paths : new CachePaths(root),
    writeReady: true,
  };
  // Opportunistic: stale leases of this host (docs/storage.md §6.2). Never fatal.
  try {
    await deleteStaleLeases(ready.index, { onlyThisHost: true, ...(signal ? { signal } : {}) });
  } catch {
    /* retried by prune */
  }
  return ready;
}

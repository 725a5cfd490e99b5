/**
 * Prune options (docs/storage.md §8), validated and resolved once for the dry run, the real run and
 * a budget eviction (§11), and the empty report they all start from.
 */
import { InvalidArgumentError } from '../errors.js';
import { compileGlob, type Glob } from '../reference/glob.js';
import { parseDuration } from '../util/duration.js';
import type { RefFilter } from './gc.js';
import type { ImagePruneReport, PruneOptions } from './types.js';

export interface ResolvedPrune {
  dryRun: boolean;
  filter: RefFilter;
  /** filter or unusedFor given (docs/storage.md §8 "Restricted prune") */
  restricted: boolean;
  /** Run steps 7–8 (temp files, orphans): an unrestricted prune; never a budget eviction (§11). */
  strays: boolean;
  tempGraceMs: number;
  signal?: AbortSignal | undefined;
}

/** Validates PruneOptions (InvalidArgumentError) and fills the temp grace from the store. */
export function resolvePruneOptions(
  o: PruneOptions | undefined,
  storeGraceMs: number,
  now = Date.now(),
): ResolvedPrune {
  const opts = o ?? {};
  if (typeof opts !== 'object') throw new InvalidArgumentError('options', 'prune options must be an object');
  let patterns: Glob[] | null = null;
  if (opts.filter !== undefined) {
    const f = opts.filter;
    if (f === null || typeof f !== 'object')
      throw new InvalidArgumentError('filter', 'filter must be an object like {reference: "glob"}');
    if (f.reference !== undefined) {
      const list = Array.isArray(f.reference) ? f.reference : [f.reference];
      if (list.length === 0 || list.some((p) => typeof p !== 'string' || p === ''))
        throw new InvalidArgumentError('filter', 'filter.reference must be a non-empty glob or list of globs');
      patterns = list.map(compileGlob);
    }
  }
  const usedBefore = opts.unusedFor !== undefined ? now - parseDuration(opts.unusedFor, 'unusedFor') : null;
  const tempGraceMs = opts.tempGrace !== undefined ? parseDuration(opts.tempGrace, 'tempGrace') : storeGraceMs;
  return {
    dryRun: opts.dryRun === true,
    filter: { patterns, usedBefore, references: null },
    restricted: patterns !== null || usedBefore !== null,
    strays: patterns === null && usedBefore === null,
    tempGraceMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

export function emptyPruneReport(dryRun: boolean): ImagePruneReport {
  return {
    imageRefsRemoved: 0,
    manifestsRemoved: 0,
    layersRemoved: 0,
    fsmetaRemoved: 0,
    vmdkRemoved: 0,
    bytesReclaimed: null,
    tempRemoved: 0,
    orphansRemoved: 0,
    skippedInUse: 0,
    keptPinned: [],
    errors: [],
    dryRun,
    removed: { references: [], manifests: [], layers: [] },
  };
}

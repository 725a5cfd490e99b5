/**
 * Pure garbage-collection logic (storage.md §7–§8), separate from locks, transactions and files so
 * that the real prune, its dry run and `diskUsage().reclaimableBytes` share one set of predicates.
 */
import { familiarOf } from '../reference/reference.js';

/** `*` = any run of characters except `/`, `?` = one such character; anchored (api.md §2.5). */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

export interface RefFilter {
  /** Compiled globs; null = no filter. */
  patterns: RegExp[] | null;
  /** last_used_at must be < this (now − unusedFor); null = no age condition. */
  usedBefore: number | null;
}

export function refMatchesFilter(canonical: string, lastUsedAt: number, f: RefFilter): boolean {
  if (f.usedBefore !== null && !(lastUsedAt < f.usedBefore)) return false;
  if (f.patterns) {
    const familiar = familiarOf(canonical);
    if (!f.patterns.some((p) => p.test(familiar) || p.test(canonical))) return false;
  }
  return true;
}

export interface GcRef { id: number; reference: string; manifestId: number; lastUsedAt: number }
export interface GcManifest { id: number; digest: string; configDigest: string }
export interface GcState {
  refs: GcRef[];
  manifests: GcManifest[];
  /** manifest_layer rows (duplicates allowed). */
  manifestLayers: { manifestId: number; layerId: number }[];
  layers: { id: number; diffId: string }[];
  /** pin.manifest_digest values */
  pinned: Set<string>;
  leasedManifests: Set<string>;
  leasedLayers: Set<string>;
}

/** Step 4 candidate rule: not pinned, not leased, and matching the filter. */
export function refIsCandidate(ref: GcRef, manifestDigest: string, s: Pick<GcState, 'pinned' | 'leasedManifests'>, f: RefFilter): boolean {
  return !s.pinned.has(manifestDigest) && !s.leasedManifests.has(manifestDigest) && refMatchesFilter(ref.reference, ref.lastUsedAt, f);
}

export interface PrunePlan {
  refs: GcRef[];
  /** in digest order */
  manifests: GcManifest[];
  /** in diff_id order */
  layers: { id: number; diffId: string }[];
  /** configs that lose their last manifest */
  configs: string[];
}

/**
 * Steps 4–6 evaluated on a snapshot (the dry run). `restricted` (filter or unusedFor given):
 * manifests only if they lose their last ref in step 4, layers only if such manifests released
 * them.
 */
export function planPrune(s: GcState, f: RefFilter, restricted: boolean): PrunePlan {
  const byId = new Map(s.manifests.map((m) => [m.id, m]));
  const refs = s.refs.filter((r) => refIsCandidate(r, byId.get(r.manifestId)!.digest, s, f));
  const removedRefIds = new Set(refs.map((r) => r.id));
  const refCount = new Map<number, number>();
  for (const r of s.refs) if (!removedRefIds.has(r.id)) refCount.set(r.manifestId, (refCount.get(r.manifestId) ?? 0) + 1);
  const lostLast = new Set<number>();
  for (const r of refs) if (!refCount.has(r.manifestId)) lostLast.add(r.manifestId);

  const manifests = s.manifests
    .filter((m) => !refCount.has(m.id) && !s.pinned.has(m.digest) && !s.leasedManifests.has(m.digest) && (!restricted || lostLast.has(m.id)))
    .sort((a, b) => cmp(a.digest, b.digest));
  const removedM = new Set(manifests.map((m) => m.id));

  const usedBy = new Map<number, Set<number>>();
  for (const ml of s.manifestLayers) {
    let u = usedBy.get(ml.layerId);
    if (!u) usedBy.set(ml.layerId, (u = new Set()));
    u.add(ml.manifestId);
  }
  const layers = s.layers.filter((l) => {
    if (s.leasedLayers.has(l.diffId)) return false;
    const users = usedBy.get(l.id);
    const remaining = users ? [...users].filter((m) => !removedM.has(m)) : [];
    if (remaining.length > 0) return false;
    if (restricted) return users !== undefined && [...users].some((m) => removedM.has(m));
    return true;
  }).sort((a, b) => cmp(a.diffId, b.diffId));

  const configUsers = new Map<string, number>();
  for (const m of s.manifests) if (!removedM.has(m.id)) configUsers.set(m.configDigest, (configUsers.get(m.configDigest) ?? 0) + 1);
  const configs = [...new Set(manifests.map((m) => m.configDigest))].filter((c) => !configUsers.has(c));
  return { refs, manifests, layers, configs };
}

/** Byte-wise string order (SQLite's default BINARY collation). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** storage.md §7 step 2.2: removing `refs` of a pinned manifest without force must leave a ref. */
export function removeNeedsForce(pinCount: number, refsTotal: number, refsRemoved: number, force: boolean): boolean {
  return pinCount > 0 && !force && refsTotal - refsRemoved === 0;
}

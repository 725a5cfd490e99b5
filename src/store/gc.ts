/**
 * Pure garbage-collection rules (docs/storage.md §7–§8), apart from locks, transactions and files.
 * The real prune, its dry run, `remove` and `diskUsage().reclaimableBytes` all decide with these
 * functions, so the rule "what may be deleted" is written once.
 */
import { referenceMatches, type Glob } from '../reference/glob.js';
import { familiarOf } from '../reference/reference.js';
import { forEachSliced } from '../util/abort.js';
import { getOrCreate } from '../util/collections.js';
import type { GcLayer, GcManifest, GcManifestLayer, GcRef } from '../catalog/gc.js';
import type { PinnedImage } from './types.js';

export type { GcLayer, GcManifest, GcManifestLayer, GcRef };

export interface RefFilter {
  /** Compiled `reference=` globs (src/reference/glob.ts); null = no filter. */
  patterns: Glob[] | null;
  /** last_used_at must be < this (now − unusedFor); null = no age condition. */
  usedBefore: number | null;
  /**
   * Budget eviction (docs/storage.md §11): only these canonical references, each only while its
   * last_used_at is still the value the plan saw (a ref used since is spared); absent or null = any.
   */
  references?: ReadonlyMap<string, number> | null | undefined;
  /**
   * Pattern results computed ahead (canonical → matches), so that a write transaction never runs
   * long matching work: see `precomputeMatches`. A reference missing from it is matched on the spot.
   */
  known?: ReadonlyMap<string, boolean> | undefined;
}

function patternsMatch(f: RefFilter, canonical: string): boolean {
  const k = f.known?.get(canonical);
  if (k !== undefined) return k;
  return referenceMatches(f.patterns ?? [], canonical, familiarOf(canonical));
}

export function refMatchesFilter(canonical: string, lastUsedAt: number, f: RefFilter): boolean {
  if (f.references) {
    const planned = f.references.get(canonical);
    if (planned === undefined || lastUsedAt > planned) return false;
  }
  if (f.usedBefore !== null && !(lastUsedAt < f.usedBefore)) return false;
  return f.patterns === null || patternsMatch(f, canonical);
}

/**
 * `f` with the pattern result of every reference in `canonicals` computed ahead, in slices that
 * yield to the event loop and honour `signal` (a long filter list over 10,000 references stays
 * interruptible by SIGINT).
 */
export async function precomputeMatches(
  f: RefFilter,
  canonicals: readonly string[],
  signal?: AbortSignal,
): Promise<RefFilter> {
  if (f.patterns === null) return f;
  const patterns = f.patterns;
  const known = new Map<string, boolean>();
  await forEachSliced(
    canonicals.length,
    (i) => {
      const c = canonicals[i]!;
      known.set(c, referenceMatches(patterns, c, familiarOf(c)));
    },
    signal,
  );
  return { ...f, known };
}

/** What keeps a manifest: its refs, a pin, a live lease. */
export interface ManifestFacts {
  refCount: number;
  pinned: boolean;
  leased: boolean;
}
/** What keeps a layer: the manifests that use it, a live lease. */
export interface LayerFacts {
  userCount: number;
  leased: boolean;
}

/** THE manifest rule: deletable when no ref, no pin and no live lease hold it. */
export function manifestIsFree(f: ManifestFacts): boolean {
  return f.refCount === 0 && !f.pinned && !f.leased;
}

/** THE layer rule: deletable when no manifest uses it and no live lease names it. */
export function layerIsFree(f: LayerFacts): boolean {
  return f.userCount === 0 && !f.leased;
}

/** Prune step 4: a ref is removed when its manifest is neither pinned nor leased and it matches the filter. */
export function refIsCandidate(ref: GcRef, manifest: { pinned: boolean; leased: boolean }, f: RefFilter): boolean {
  return !manifest.pinned && !manifest.leased && refMatchesFilter(ref.reference, ref.lastUsedAt, f);
}

/** docs/storage.md §7 step 2.2: removing refs of a pinned manifest without force must leave a ref. */
export function removeNeedsForce(pinCount: number, refsTotal: number, refsRemoved: number, force: boolean): boolean {
  return pinCount > 0 && !force && refsTotal - refsRemoved === 0;
}

export interface GcState {
  refs: GcRef[];
  manifests: GcManifest[];
  /** manifest_layer rows (duplicates allowed). */
  manifestLayers: GcManifestLayer[];
  layers: GcLayer[];
  /** pin.manifest_digest values */
  pinned: Set<string>;
  leasedManifests: Set<string>;
  leasedLayers: Set<string>;
}

export interface PrunePlan {
  refs: GcRef[];
  /** in digest order */
  manifests: GcManifest[];
  /** in diff_id order */
  layers: GcLayer[];
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
  const held = (digest: string) => ({ pinned: s.pinned.has(digest), leased: s.leasedManifests.has(digest) });
  const refs = s.refs.filter((r) => refIsCandidate(r, held(byId.get(r.manifestId)!.digest), f));
  const removedRefIds = new Set(refs.map((r) => r.id));
  const refCount = new Map<number, number>();
  for (const r of s.refs)
    if (!removedRefIds.has(r.id)) refCount.set(r.manifestId, (refCount.get(r.manifestId) ?? 0) + 1);
  const lostLast = new Set<number>();
  for (const r of refs) if (!refCount.has(r.manifestId)) lostLast.add(r.manifestId);

  const manifests = s.manifests
    .filter(
      (m) =>
        manifestIsFree({ refCount: refCount.get(m.id) ?? 0, ...held(m.digest) }) && (!restricted || lostLast.has(m.id)),
    )
    .sort((a, b) => cmp(a.digest, b.digest));
  const removedM = new Set(manifests.map((m) => m.id));

  const usedBy = new Map<number, Set<number>>();
  for (const ml of s.manifestLayers) getOrCreate(usedBy, ml.layerId, () => new Set()).add(ml.manifestId);
  const layers = s.layers
    .filter((l) => {
      const users = [...(usedBy.get(l.id) ?? [])];
      const remaining = users.filter((m) => !removedM.has(m)).length;
      if (!layerIsFree({ userCount: remaining, leased: s.leasedLayers.has(l.diffId) })) return false;
      return !restricted || users.some((m) => removedM.has(m));
    })
    .sort((a, b) => cmp(a.diffId, b.diffId));

  const configUsers = new Map<string, number>();
  for (const m of s.manifests)
    if (!removedM.has(m.id)) configUsers.set(m.configDigest, (configUsers.get(m.configDigest) ?? 0) + 1);
  const configs = [...new Set(manifests.map((m) => m.configDigest))].filter((c) => !configUsers.has(c));
  return { refs, manifests, layers, configs };
}

/** Byte-wise string order (SQLite's default BINARY collation). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The pinned images a prune keeps that it would otherwise remove: every cached pinned manifest, or
 * with a filter (`restricted`), those with a reference the filter selects. Pure: `refs` carry their
 * manifest digest, `pins` are pin rows, `cached` says whether a manifest row exists.
 */
export function pinnedKept(
  refs: readonly { reference: string; lastUsedAt: number; digest: string }[],
  pins: readonly { kind: 'sandbox' | 'snapshot'; key: string; name: string | null; manifest_digest: string }[],
  cached: (digest: string) => boolean,
  f: RefFilter,
  restricted: boolean,
): PinnedImage[] {
  const byDigest = new Map<string, PinnedImage>();
  for (const p of pins) {
    if (!cached(p.manifest_digest)) continue;
    const img = getOrCreate(byDigest, p.manifest_digest, () => ({
      manifestDigest: p.manifest_digest,
      references: [],
      pins: [],
    }));
    img.pins.push({ kind: p.kind, name: p.name ?? p.key });
  }
  const selected = new Set<string>();
  for (const r of refs) {
    const img = byDigest.get(r.digest);
    if (!img) continue;
    img.references.push(familiarOf(r.reference));
    if (refMatchesFilter(r.reference, r.lastUsedAt, f)) selected.add(r.digest);
  }
  return [...byDigest.values()]
    .filter((i) => !restricted || selected.has(i.manifestDigest))
    .sort((a, b) => cmp(a.manifestDigest, b.manifestDigest));
}

/** What deleting a file would free (0 when absent or hard-linked elsewhere). */
export interface FreedBytes {
  /** fsmeta + VMDK of a manifest */
  manifest(digest: string): number;
  layer(diffId: string): number;
}

export interface EvictionPlan {
  /** The refs to remove, least recently used image first (all refs of an image together). */
  refs: GcRef[];
  /** Bytes freed: garbage (what an unrestricted prune would delete) plus the evicted images. */
  freedBytes: number;
  /** freedBytes ≥ the need. */
  enough: boolean;
  /** Bytes nothing may evict: pinned or leased manifests, their layers and leased layers. */
  heldBytes: number;
}

/**
 * docs/storage.md §11: which images to evict to free `need` bytes. Garbage goes first (manifests
 * no ref, pin or lease holds, and layers nothing uses, exactly as `planPrune` frees them); then
 * unpinned, unleased images in least-recently-used order (an image's last use is the latest
 * `last_used_at` of its refs, ties by digest), each freeing its fsmeta and VMDK and every layer
 * whose last user it was — a shared layer counts only when its last user goes.
 */
export function planEviction(s: GcState, bytes: FreedBytes, need: number): EvictionPlan {
  const garbage = planPrune(s, { patterns: null, usedBefore: null, references: new Map() }, false);
  const gone = new Set(garbage.manifests.map((m) => m.id));
  let freed = garbage.manifests.reduce((n, m) => n + bytes.manifest(m.digest), 0);
  freed += garbage.layers.reduce((n, l) => n + bytes.layer(l.diffId), 0);
  const layerOf = new Map(s.layers.map((l) => [l.id, l.diffId]));
  const users = new Map<string, number>();
  const layersOf = new Map<number, Set<string>>();
  for (const ml of s.manifestLayers) {
    const d = layerOf.get(ml.layerId)!;
    const set = getOrCreate(layersOf, ml.manifestId, () => new Set<string>());
    if (set.has(d) || gone.has(ml.manifestId)) continue;
    set.add(d);
    users.set(d, (users.get(d) ?? 0) + 1);
  }
  const held = (digest: string) => s.pinned.has(digest) || s.leasedManifests.has(digest);
  const refsOf = new Map<number, GcRef[]>();
  for (const r of s.refs) getOrCreate(refsOf, r.manifestId, () => []).push(r);
  const lastUse = (id: number) => Math.max(...(refsOf.get(id) ?? []).map((r) => r.lastUsedAt));
  const candidates = s.manifests
    .filter((m) => !gone.has(m.id) && refsOf.has(m.id) && !held(m.digest))
    .sort((a, b) => lastUse(a.id) - lastUse(b.id) || cmp(a.digest, b.digest));
  const refs: GcRef[] = [];
  for (const m of candidates) {
    if (freed >= need) break;
    refs.push(...refsOf.get(m.id)!);
    freed += bytes.manifest(m.digest);
    for (const d of layersOf.get(m.id) ?? []) {
      const left = (users.get(d) ?? 1) - 1;
      users.set(d, left);
      if (layerIsFree({ userCount: left, leased: s.leasedLayers.has(d) })) freed += bytes.layer(d);
    }
  }
  const heldLayers = new Set(s.leasedLayers);
  let heldBytes = 0;
  for (const m of s.manifests)
    if (held(m.digest)) {
      heldBytes += bytes.manifest(m.digest);
      for (const d of layersOf.get(m.id) ?? []) heldLayers.add(d);
    }
  for (const d of heldLayers) heldBytes += bytes.layer(d);
  return { refs, freedBytes: freed, enough: freed >= need, heldBytes };
}

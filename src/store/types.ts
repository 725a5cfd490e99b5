/** Result and option types of the store's operations (remove, prune, disk usage), re-exported by the API. */
import type { ErrorCode } from '../errors.js';

/**
 * The files a VMM attaches for one image: the VMDK descriptor, the fsmeta EROFS and each layer
 * EROFS in manifest order (docs/api.md §3).
 */
export interface ImageArtifacts {
  vmdkPath: string;
  fsmetaPath: string;
  /** manifest order */
  layers: { position: number; diffId: string; path: string }[];
}

/** One sandbox or snapshot pinning a manifest (docs/api.md §4). */
export interface PinInfo {
  kind: 'sandbox' | 'snapshot';
  name: string;
}

/** A cached image a prune keeps because sandboxes or snapshots pin it. */
export interface PinnedImage {
  manifestDigest: string;
  /** Its references (familiar forms), kept with it. */
  references: string[];
  pins: PinInfo[];
}

/**
 * Options of `Image.remove`: `force` untags even when pins or other references hold the
 * manifest (docs/api.md §2.4); `signal` aborts.
 */
export interface RemoveOptions {
  force?: boolean;
  signal?: AbortSignal | undefined;
}

/** What `Image.remove` untagged and deleted, and the pins that keep the manifest cached. */
export interface ImageRemoveReport {
  /** familiar forms */
  untagged: string[];
  deletedManifests: string[];
  /** diff_ids */
  deletedLayers: string[];
  bytesReclaimed: number | null;
  /**
   * The sandboxes and snapshots pinning the manifest when it stays cached because of them (after
   * untagging one of several tags, or a forced removal); empty when it was deleted or is not pinned.
   */
  pinnedBy: PinInfo[];
}

/** Options of `Image.prune` (docs/api.md §2.5). */
export interface PruneOptions {
  /** compute the report, delete nothing */
  dryRun?: boolean;
  /** only refs with lastUsedAt older than this (ms, or "36h", "7d") */
  unusedFor?: number | string;
  /**
   * `reference`: glob(s) in Go `path.Match` syntax, as docker's `--filter reference=`; a reference
   * is selected when any pattern matches its familiar form or name (`busybox:latest`, `busybox`)
   * or its canonical form or name
   */
  filter?: { reference?: string | string[] };
  /** minimum age of temp files it deletes; default: builder tempGraceMs, else config prune.temp_grace, else "1h" */
  tempGrace?: number | string;
  /**
   * Enforce the size budget instead (docs/storage.md §11): when the cache is above its high mark,
   * evict unpinned, unleased images in least-recently-used order until it is under the low mark.
   * Not combinable with `filter`, `unusedFor` or `tempGrace`.
   */
  budget?: boolean;
  signal?: AbortSignal | undefined;
}

/** One item a prune could not delete, with the MsbError code it met; the prune goes on. */
export interface PruneItemError {
  kind: 'ref' | 'manifest' | 'fsmeta' | 'vmdk' | 'layer' | 'temp' | 'orphan' | 'lease';
  item: string;
  path?: string;
  code: ErrorCode;
  message: string;
}

/**
 * What `Image.prune` removed (or would remove, with `dryRun`), kept and failed on
 * (docs/api.md §2.5).
 */
export interface ImagePruneReport {
  imageRefsRemoved: number;
  manifestsRemoved: number;
  layersRemoved: number;
  fsmetaRemoved: number;
  vmdkRemoved: number;
  /** Σ st_blocks*512 of files deleted; null iff no file was deleted */
  bytesReclaimed: number | null;
  tempRemoved: number;
  orphansRemoved: number;
  /**
   * Items left because another operation (a pull, load, save or remove) held their lock at that
   * moment; a later prune retries them. Not images in use by sandboxes: those are `keptPinned`.
   */
  skippedInUse: number;
  /**
   * Images kept because sandboxes or snapshots pin them, with their references and pins: every
   * pinned image, or with `filter`/`unusedFor`, those with a reference the filter selects.
   */
  keptPinned: PinnedImage[];
  errors: PruneItemError[];
  dryRun: boolean;
  removed: { references: string[]; manifests: string[]; layers: string[] };
  /** With `budget`: where the cache stood and what the eviction could do. */
  budget?: BudgetReport;
}

/** The size budget and how far the cache is from it (docs/storage.md §11). All sizes are allocated bytes. */
export interface BudgetStatus {
  /** False when no budget is set (cache.max_bytes and cache.high_watermark both unset). */
  configured: boolean;
  maxBytes: number | null;
  /** Percent of the file system in use at which eviction starts, and down to which it evicts. */
  highWatermark: number | null;
  lowWatermark: number | null;
  /** The cache now (= diskUsage().totalBytes). */
  cacheBytes: number;
  /** The file system holding the cache (statfs), when a watermark is set. */
  filesystem: { sizeBytes: number; availableBytes: number; usedPercent: number } | null;
  /** The high and low marks as cache sizes (given the rest of the file system as it is now). */
  highMarkBytes: number | null;
  lowMarkBytes: number | null;
  /** Bytes above the high mark (0 when under it). */
  overBytes: number;
  /** Bytes left before the high mark (negative when over it); null when no budget is set. */
  headroomBytes: number | null;
  /** What an eviction must free to reach the low mark (0 unless over the high mark). */
  toFreeBytes: number;
}

/**
 * The size budget's eviction by `prune({ budget: true })`: the status plus what was evicted
 * (docs/storage.md §11).
 */
export interface BudgetReport extends BudgetStatus {
  /** The references evicted (familiar forms), least recently used first. */
  evicted: string[];
  /** Bytes nothing may evict: images a sandbox, snapshot or running operation holds, and their layers. */
  pinnedBytes: number;
  /** False when evicting everything allowed still leaves the cache above its low mark. */
  enough: boolean;
}

/**
 * What the cache occupies, per image and in total, and what a prune would reclaim
 * (docs/api.md §2.8).
 */
export interface DiskUsageReport {
  images: {
    manifestDigest: string;
    references: string[];
    pinned: boolean;
    sizeBytes: number | null;
    uniqueBytes: number | null;
    sharedBytes: number | null;
  }[];
  layers: { count: number; bytes: number };
  fsmeta: { count: number; bytes: number };
  vmdk: { count: number; bytes: number };
  temp: { count: number; bytes: number };
  /** artifact files with no index row */
  orphans: { count: number; bytes: number };
  /** distinct files, each counted once */
  totalBytes: number;
  /** equals prune({dryRun: true}).bytesReclaimed */
  reclaimableBytes: number | null;
  /** The size budget and how far the cache is from it; null without an index. */
  budget: BudgetStatus | null;
}

/** What verify found wrong (docs/storage.md §10.2). */
export type VerifyFindingKind =
  | 'missing'
  | 'not-regular'
  | 'size'
  | 'structure'
  | 'digest'
  | 'stale'
  | 'orphan'
  | 'foreign'
  | 'temp'
  | 'index';

/**
 * One problem `Image.verify` found in an artifact, a cache entry or the index, with its repair
 * outcome when `repair` was asked (docs/storage.md §10.2).
 */
export interface VerifyFinding {
  kind: VerifyFindingKind;
  /** What the finding is about: an artifact, an entry of the cache directory, or the index. */
  artifact: 'layer' | 'fsmeta' | 'vmdk' | 'file' | 'temp' | 'index';
  /** diff_id (layer), manifest digest (fsmeta, vmdk), entry name (file, temp), or 'index'. */
  item: string;
  /** Absolute path inside the cache, or the index file. */
  path: string | null;
  expected: string | number | null;
  actual: string | number | null;
  message: string;
  /** With `repair`: what was done about it. */
  repair?: VerifyRepairOutcome;
}

export interface VerifyRepairOutcome {
  action: 'refetch' | 'rebuild' | 'remove' | 'none';
  /** fixed: a re-check finds it no more; unfixable: nothing can be done here; failed: it was tried. */
  result: 'fixed' | 'unfixable' | 'failed';
  message?: string;
}

export interface VerifyStepReport {
  name: 'index' | 'layers' | 'images' | 'orphans' | 'temp';
  /** Items looked at (rows, files or entries). */
  checked: number;
  findings: number;
  durationMs: number;
}

/** Options of `Image.verify`: `repair` fixes what can be fixed (docs/storage.md §10.3). */
export interface VerifyOptions {
  /** Fix what can be fixed (docs/storage.md §10.3), then check again. */
  repair?: boolean;
  signal?: AbortSignal | undefined;
}

/** The result of `Image.verify`: per-step counts, findings, and what remains after a repair. */
export interface VerifyReport {
  /** No finding remains (after the repair, with `repair`). */
  ok: boolean;
  repair: boolean;
  /** The familiar references verified, or null for the whole cache. */
  scope: string[] | null;
  steps: VerifyStepReport[];
  counts: {
    layers: number;
    fsmeta: number;
    vmdk: number;
    /** Bytes read to recompute content digests. */
    bytesHashed: number;
    /** Digests of older rows measured and recorded by this run (docs/storage.md §10.1). */
    digestsRecorded: number;
    findings: number;
    fixed: number;
    unfixable: number;
    failed: number;
  };
  /** What the check found (with `repair`: each with its outcome). */
  findings: VerifyFinding[];
  /** What a check after the repair still finds (= `findings` without `repair`). */
  remaining: VerifyFinding[];
  durationMs: number;
}

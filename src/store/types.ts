/** Result and option types of the store's operations (remove, prune, disk usage), re-exported by the API. */
import type { ErrorCode } from '../errors.js';

export interface ImageArtifacts {
  vmdkPath: string;
  fsmetaPath: string;
  /** manifest order */
  layers: { position: number; diffId: string; path: string }[];
}

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

export interface RemoveOptions {
  force?: boolean;
  signal?: AbortSignal | undefined;
}

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
  signal?: AbortSignal | undefined;
}

export interface PruneItemError {
  kind: 'ref' | 'manifest' | 'fsmeta' | 'vmdk' | 'layer' | 'temp' | 'orphan' | 'lease';
  item: string;
  path?: string;
  code: ErrorCode;
  message: string;
}

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
}

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
}

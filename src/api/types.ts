/**
 * Public result and option types (api.md §2–§4). `PullEvent` is defined next to its emitter in
 * src/pull/events.ts and re-exported here.
 */
import type { ErrorCode } from '../errors.js';
import type { Limits } from '../limits.js';
import type { PullEvent } from '../pull/events.js';
import type { ImageHandle } from '../store/handle.js';

export type { PullEvent } from '../pull/events.js';
export type { Limits } from '../limits.js';

export interface Platform { os: string; architecture: string; variant: string | null }

export interface ImageConfigDetail {
  digest: string; env: string[]; cmd: string[] | null; entrypoint: string[] | null;
  workingDir: string | null; user: string | null; labels: Record<string, string> | null;
  stopSignal: string | null;
}

export interface ImageLayerDetail {
  /** 0 = bottom */
  position: number;
  diffId: string; blobDigest: string; mediaType: string | null;
  /** descriptor size */
  compressedSizeBytes: number | null;
  /** length of the layer EROFS file; null only if recorded missing */
  erofsSizeBytes: number | null;
}

export interface ImageArtifacts {
  vmdkPath: string; fsmetaPath: string;
  /** manifest order */
  layers: { position: number; diffId: string; path: string }[];
}

export interface PinInfo { kind: 'sandbox' | 'snapshot'; name: string }

export interface ImageDetail {
  handle: ImageHandle;
  config: ImageConfigDetail | null;
  layers: ImageLayerDetail[];
  artifacts: ImageArtifacts;
  pins: PinInfo[];
}

export interface RemoveOptions { force?: boolean; signal?: AbortSignal }

export interface ImageRemoveReport {
  /** familiar forms */
  untagged: string[];
  deletedManifests: string[];
  /** diff_ids */
  deletedLayers: string[];
  bytesReclaimed: number | null;
}

export interface PruneOptions {
  /** compute the report, delete nothing */
  dryRun?: boolean;
  /** only refs with lastUsedAt older than this (ms, or "36h", "7d") */
  unusedFor?: number | string;
  /** glob(s) tested against familiar and canonical forms */
  filter?: { reference?: string | string[] };
  /** minimum age of temp files it deletes; default: builder tempGraceMs, else config prune.temp_grace, else "1h" */
  tempGrace?: number | string;
  signal?: AbortSignal;
}

export interface PruneItemError {
  kind: 'ref' | 'manifest' | 'fsmeta' | 'vmdk' | 'layer' | 'temp' | 'orphan' | 'lease';
  item: string; path?: string; code: ErrorCode; message: string;
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
  skippedInUse: number;
  errors: PruneItemError[];
  dryRun: boolean;
  removed: { references: string[]; manifests: string[]; layers: string[] };
}

export interface DiskUsageReport {
  images: { manifestDigest: string; references: string[]; pinned: boolean;
            sizeBytes: number | null; uniqueBytes: number | null; sharedBytes: number | null }[];
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

export type PullPolicy = 'if-missing' | 'always' | 'never';
export type RegistryAuth = { username: string; password: string } | { anonymous: true } | { registryToken: string };

export interface PullOptions {
  /** default 'if-missing' */
  policy?: PullPolicy;
  /** re-download and rebuild every artifact of this image */
  force?: boolean;
  /** default: the host's linux/<arch>[/<variant>] */
  platform?: string | Platform;
  /** overrides every other credential source */
  auth?: RegistryAuth;
  /** allow plain HTTP / unverified TLS for this registry */
  insecure?: boolean;
  /** extra PEM files trusted for this call */
  caCerts?: string[];
  /** layers in flight, default 4 */
  concurrency?: number;
  limits?: Partial<Limits>;
  onProgress?: (event: PullEvent) => void;
  signal?: AbortSignal;
}

export interface PullResult {
  /** familiar */
  reference: string;
  canonicalReference: string;
  /** always the platform manifest, never the index */
  manifestDigest: string;
  indexDigest: string | null;
  configDigest: string;
  platform: Platform;
  /** true iff nothing was fetched or built */
  cached: boolean;
  /** endpoint that served the manifest or answered the HEAD; null when no request was made */
  source: string | null;
  layers: { position: number; diffId: string; blobDigest: string; mediaType: string;
            downloaded: boolean; materialized: boolean }[];
  artifacts: ImageArtifacts;
  handle: ImageHandle;
}

export interface PullOperation extends AsyncIterable<PullEvent> {
  readonly result: Promise<PullResult>;
  abort(reason?: unknown): void;
}

export interface LoadOptions {
  tag?: string | string[]; platform?: string | Platform;
  onProgress?: (e: PullEvent) => void; signal?: AbortSignal;
}
export interface SaveOptions { format?: 'docker' | 'oci'; onProgress?: (e: PullEvent) => void; signal?: AbortSignal }
export interface SaveResult {
  format: 'docker' | 'oci'; bytesWritten: number;
  images: { reference: string; manifestDigest: string; diffIds: string[] }[];
}

export interface SandboxCreateOptions extends PullOptions {
  /** the reference to pull and pin */
  image: string;
}

export interface SandboxHandle {
  readonly name: string; readonly reference: string; readonly manifestDigest: string;
  readonly platform: Platform; readonly createdAt: Date;
  /** what a VMM attaches: vmdkPath (+ fsmetaPath, ordered layers) */
  readonly rootfs: ImageArtifacts;
  readonly config: ImageConfigDetail;
}

export interface SnapshotHandle {
  readonly digest: string; readonly name: string | null;
  readonly imageManifestDigest: string; readonly reference: string | null; readonly createdAt: Date;
}

export interface SnapshotRecord { digest: string; imageManifestDigest: string; name?: string; reference?: string }

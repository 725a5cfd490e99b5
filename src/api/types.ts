/**
 * Public result and option types (docs/api.md §2–§4). Each is defined beside the code that
 * produces it and re-exported here, so an API user imports them from one place.
 */
import type { ImageHandle } from '../store/handle.js';
import type { ImageArtifacts, PinInfo } from '../store/types.js';
import type { Platform } from '../oci/platform.js';
import type { PullOptions } from '../pull/types.js';

export type { PullEvent } from '../pull/events.js';
export type { Limits } from '../limits.js';
export type { Platform } from '../oci/platform.js';
export type { RegistryAuth } from '../registry/types.js';
export type {
  ImageArtifacts,
  PinInfo,
  RemoveOptions,
  ImageRemoveReport,
  PruneOptions,
  PruneItemError,
  PinnedImage,
  ImagePruneReport,
  DiskUsageReport,
  BudgetStatus,
  BudgetReport,
  VerifyOptions,
  VerifyReport,
  VerifyFinding,
  VerifyFindingKind,
  VerifyRepairOutcome,
  VerifyStepReport,
} from '../store/types.js';
export type { PullPolicy, PullOptions, PullResult, PullOperation } from '../pull/types.js';
export type { LoadOptions, SaveOptions, SaveResult } from '../archive/types.js';
export type { ExportOptions, ExportResult } from '../archive/export.js';
export type { MountResult } from '../archive/mount.js';

/** Options of `Image.list`. */
export interface ListOptions {
  /**
   * Also list the manifests no reference names (kept by a sandbox or snapshot pin or a running
   * operation's lease, or waiting for prune), as handles whose `reference` is their digest.
   */
  all?: boolean;
}

/** The parts of an image config a sandbox needs (env, cmd, entrypoint, user…), docs/api.md §3. */
export interface ImageConfigDetail {
  digest: string;
  env: string[];
  cmd: string[] | null;
  entrypoint: string[] | null;
  workingDir: string | null;
  user: string | null;
  labels: Record<string, string> | null;
  stopSignal: string | null;
}

/** One layer of `Image.inspect`: its diff_id, blob and EROFS sizes. */
export interface ImageLayerDetail {
  /** 0 = bottom */
  position: number;
  diffId: string;
  blobDigest: string;
  mediaType: string | null;
  /** descriptor size */
  compressedSizeBytes: number | null;
  /** length of the layer EROFS file; null only if recorded missing */
  erofsSizeBytes: number | null;
}

/** The result of `Image.inspect`: handle, config, layers, artifact paths and pins (docs/api.md §3). */
export interface ImageDetail {
  handle: ImageHandle;
  config: ImageConfigDetail | null;
  layers: ImageLayerDetail[];
  artifacts: ImageArtifacts;
  pins: PinInfo[];
}

/** Options of `Sandbox.create`: the image to pin, plus the PullOptions of its pull. */
export interface SandboxCreateOptions extends PullOptions {
  /** the reference to pull and pin */
  image: string;
}

/** A sandbox pin: the manifest it holds and what a VMM attaches (docs/api.md §4). */
export interface SandboxHandle {
  readonly name: string;
  readonly reference: string;
  readonly manifestDigest: string;
  readonly platform: Platform;
  readonly createdAt: Date;
  /** what a VMM attaches: vmdkPath (+ fsmetaPath, ordered layers) */
  readonly rootfs: ImageArtifacts;
  readonly config: ImageConfigDetail;
}

/** A snapshot pin: the snapshot digest and the image manifest it holds (docs/api.md §4). */
export interface SnapshotHandle {
  readonly digest: string;
  readonly name: string | null;
  readonly imageManifestDigest: string;
  readonly reference: string | null;
  readonly createdAt: Date;
}

/**
 * The argument of `Snapshot.index`: snapshot digest, image manifest digest, optional name and
 * reference.
 */
export interface SnapshotRecord {
  digest: string;
  imageManifestDigest: string;
  name?: string;
  reference?: string;
}

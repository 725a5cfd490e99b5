/**
 * msb-image: the ONE public entry (docs/api.md). ESM only, Node ≥ 20.
 */
export { Image } from './api/image.js';
export { ImageHandle } from './store/handle.js';
export { Sandbox, Snapshot } from './api/sandbox.js';
export {
  LocalBackend,
  LocalBackendBuilder,
  CloudBackend,
  setDefaultBackend,
  defaultBackend,
  type LocalBackendOptions,
} from './api/backend.js';
export type {
  Settings,
  HostSettings,
  HostAuthSettings,
  MirrorSettings,
  MirrorEntry,
  MirrorCapability,
} from './settings/settings.js';
export type {
  RemoteOptions,
  RemotePlatformOptions,
  ResolvedRemoteImage,
  RemoteManifest,
  RemoteTagList,
} from './api/remote.js';
export type {
  Platform,
  ImageConfigDetail,
  ImageLayerDetail,
  ImageArtifacts,
  ImageDetail,
  ListOptions,
  PinInfo,
  RemoveOptions,
  ImageRemoveReport,
  PruneOptions,
  PruneItemError,
  PinnedImage,
  ImagePruneReport,
  DiskUsageReport,
  PullPolicy,
  RegistryAuth,
  PullOptions,
  PullResult,
  PullOperation,
  PullEvent,
  LoadOptions,
  SaveOptions,
  SaveResult,
  SandboxCreateOptions,
  SandboxHandle,
  SnapshotHandle,
  SnapshotRecord,
  Limits,
  BudgetStatus,
  BudgetReport,
  ExportOptions,
  ExportResult,
  MountResult,
  VerifyOptions,
  VerifyReport,
  VerifyFinding,
} from './api/types.js';
export {
  MsbError,
  ImageNotFoundError,
  ImageInUseError,
  ImageReferencedError,
  UnsupportedError,
  InvalidReferenceError,
  InvalidArgumentError,
  NotCachedError,
  PlatformNotFoundError,
  DigestMismatchError,
  ManifestInvalidError,
  ConfigInvalidError,
  LayerInvalidError,
  RegistryAuthError,
  RegistryError,
  NetworkError,
  ArchiveInvalidError,
  CacheCorruptError,
  LimitExceededError,
  AbortedError,
  SettingsError,
  IoError,
  DatabaseError,
  PinNotFoundError,
  type ErrorCode,
  type PinRef,
} from './errors.js';
import { guarded } from './errors.js';
import { convertLayer as convertLayerUnguarded } from './erofs/convert.js';
import { stitchLayers as stitchLayersUnguarded } from './stitch/index.js';
/** docs/api.md §5; every rejection is an MsbError (the one wrapping point of this boundary). */
export const convertLayer = guarded(convertLayerUnguarded);
/** docs/api.md §5; every rejection is an MsbError (the one wrapping point of this boundary). */
export const stitchLayers = guarded(stitchLayersUnguarded);

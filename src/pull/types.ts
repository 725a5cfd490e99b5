/** Options and results of a pull, re-exported by the API. */
import type { Limits } from '../limits.js';
import type { Platform } from '../oci/platform.js';
import type { RegistryAuth } from '../registry/types.js';
import type { ImageHandle } from '../store/handle.js';
import type { ImageArtifacts } from '../store/types.js';
import type { PullEvent } from './events.js';

/**
 * When a pull goes to the registry: `if-missing` (default) only when not cached, `always` to
 * re-resolve the tag, `never` rejects with NOT_CACHED instead (docs/api.md §2.6).
 */
export type PullPolicy = 'if-missing' | 'always' | 'never';

/** Options of `Image.pull` and `Image.pullWithProgress` (docs/api.md §2.6). */
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
  signal?: AbortSignal | undefined;
}

/** A pulled (or already cached) image: its digests, platform, layers, artifacts and handle. */
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
  layers: {
    position: number;
    diffId: string;
    blobDigest: string;
    mediaType: string;
    downloaded: boolean;
    materialized: boolean;
  }[];
  artifacts: ImageArtifacts;
  handle: ImageHandle;
}

/**
 * A running pull: iterate it for PullEvents, await `result` for the PullResult (it rejects as
 * `Image.pull` does), `abort()` to cancel (then ABORTED).
 */
export interface PullOperation extends AsyncIterable<PullEvent> {
  readonly result: Promise<PullResult>;
  abort(reason?: unknown): void;
}

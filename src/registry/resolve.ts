/**
 * Resolution, docs/pull.md §8 step 4 minus events and leases: fetch the manifest (§5.1), follow an
 * index to one platform manifest (§5.2), fetch and validate the config (§6). Everything is
 * verified and validated before it is returned, and nothing touches the disk, so the caller can
 * lease `manifestDigest` + `config.diffIds` and start on the layers.
 */
import { ManifestInvalidError } from '../errors.js';
import { DEFAULT_LIMITS, type Limits } from '../limits.js';
import {
  parseImageConfig,
  parseManifest,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type IndexEntry,
} from '../oci/manifest.js';
import { hostPlatform, parsePlatform, recordedPlatform, selectPlatform, type Platform } from '../oci/platform.js';
import type { ParsedReference } from '../reference/reference.js';
import type { RegistryClient } from './client.js';
import type { WarningInfo } from './types.js';

export interface ResolvedImage {
  /** Endpoint that served the first manifest (PullResult.source). */
  source: string;
  /** Set when the reference named an index (PullResult.indexDigest, image_ref.index_digest). */
  indexDigest: string | null;
  indexBytes: Buffer | null;
  indexMediaType: string | null;
  /** The platform manifest (always a manifest, never an index). */
  manifestDigest: string;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configDigest: string;
  configBytes: Buffer;
  config: ImageConfig;
  /** Recorded platform (§5.2): the index entry's as written, or the config's. */
  platform: Platform;
  /** Warnings also passed to the client's onWarning (PLATFORM_MISMATCH). */
  warnings: WarningInfo[];
}

export interface ResolveOptions {
  /** The `platform` option; absent → the host platform (not explicit). */
  platform?: string | Platform;
  limits?: Partial<Limits>;
  signal?: AbortSignal | undefined;
  onWarning?: (w: WarningInfo) => void;
}

export async function resolveImage(
  client: RegistryClient,
  ref: ParsedReference,
  opts: ResolveOptions = {},
): Promise<ResolvedImage> {
  const maxBytes = opts.limits?.maxManifestBytes ?? DEFAULT_LIMITS.maxManifestBytes;
  const maxLayers = opts.limits?.maxLayers ?? DEFAULT_LIMITS.maxLayers;
  const explicit = opts.platform !== undefined && opts.platform !== null;
  const target = explicit ? parsePlatform(opts.platform!) : hostPlatform();
  const warnings: WarningInfo[] = [];
  const warn = (w: WarningInfo) => {
    warnings.push(w);
    opts.onWarning?.(w);
  };
  const sig = opts.signal ? { signal: opts.signal } : {};

  const top = await client.fetchManifest(ref, ref.digest ?? ref.tag ?? 'latest', { maxBytes, ...sig });
  const parsed = parseManifest(top.bytes, { contentType: top.contentType, digest: top.digest, maxLayers });
  let indexDigest: string | null = null;
  let indexBytes: Buffer | null = null;
  let indexMediaType: string | null = null;
  let manifestDigest = top.digest;
  let manifestBytes = top.bytes;
  let manifest: ImageManifest;
  let entryPlatform: Platform | null = null;

  if (parsed.kind === 'index') {
    indexDigest = top.digest;
    indexBytes = top.bytes;
    indexMediaType = parsed.mediaType;
    const loadIndex = async (e: IndexEntry): Promise<ImageIndex> => {
      const r = await client.fetchManifest(ref, e.digest, { maxBytes, ...sig });
      const p = parseManifest(r.bytes, { contentType: r.contentType, digest: r.digest, maxLayers });
      if (p.kind !== 'index')
        throw new ManifestInvalidError(`index entry ${e.digest} is typed as an index but is a manifest`, r.digest);
      return p;
    };
    const sel = await selectPlatform(parsed, target, loadIndex);
    entryPlatform = sel.platform;
    const r = await client.fetchManifest(ref, sel.descriptor.digest, { maxBytes, ...sig });
    if (r.bytes.length !== sel.descriptor.size) {
      throw new ManifestInvalidError(
        `manifest ${sel.descriptor.digest} is ${r.bytes.length} bytes; the index says ${sel.descriptor.size}`,
        r.digest,
      );
    }
    const p = parseManifest(r.bytes, { contentType: r.contentType, digest: r.digest, maxLayers });
    if (p.kind !== 'manifest')
      throw new ManifestInvalidError(`index entry ${sel.descriptor.digest} is not an image manifest`, r.digest);
    manifest = p;
    manifestDigest = r.digest;
    manifestBytes = r.bytes;
  } else {
    manifest = parsed;
  }

  const configBytes = await client.fetchBlobBytes(ref, manifest.config, maxBytes, { what: 'config', ...sig });
  const config = parseImageConfig(configBytes, manifest.config.digest, manifest.layers.length);
  const rec = recordedPlatform({ indexEntry: entryPlatform, config: config.raw, target, explicit });
  if (rec.warning) warn(rec.warning);
  return {
    source: top.source,
    indexDigest,
    indexBytes,
    indexMediaType,
    manifestDigest,
    manifestBytes,
    manifest,
    configDigest: manifest.config.digest,
    configBytes,
    config,
    platform: rec.platform,
    warnings,
  };
}

/**
 * Manifest, index and image-config parsing and validation (docs/pull.md §5.1, §6, §7). Pure: bytes
 * in, typed objects out. Every digest is validated (§1.1) before anything can use it, so a
 * digest from a manifest can safely become a path or URL component.
 *
 * Choices where docs/pull.md is silent:
 * - A `Content-Type` that is not one of the four manifest types (e.g. `application/json`, a
 *   registry's generic default) is ignored and the type comes from the shape.
 * - The config descriptor's media type is not checked here: a non-image config fails later,
 *   when it does not parse as an image config (ConfigInvalidError).
 * - Index entries are validated (digest, size, platform shape) even when they will be skipped.
 */
import { ConfigInvalidError, LimitExceededError, ManifestInvalidError } from '../errors.js';
import { isDigest } from '../util/digest.js';
import { MEDIA_TYPES, layerCompression, type Compression } from './media-types.js';

const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const SCHEMA1_TYPES = new Set<string>([MEDIA_TYPES.dockerSchema1, MEDIA_TYPES.dockerSchema1Signed]);
export const SCHEMA1_MESSAGE = 'Docker schema 1 manifests are not supported; re-push the image with a current tool';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  /** Present for nondistributable layers; ignored (we fetch by digest from the registry). */
  urls?: string[];
  annotations?: Record<string, string>;
}

export interface LayerDescriptor extends Descriptor {
  compression: Compression;
}

export interface IndexEntry extends Omit<Descriptor, 'mediaType'> {
  /** Absent in some hand-made indexes; such entries are not candidates (platform.ts). */
  mediaType?: string;
  platform?: { os: string; architecture: string; variant?: string; 'os.version'?: string; 'os.features'?: string[] };
}

export interface ImageManifest {
  kind: 'manifest';
  /** Effective type (body `mediaType`, else Content-Type, else OCI by shape). */
  mediaType: string;
  config: Descriptor;
  layers: LayerDescriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: IndexEntry[];
  annotations?: Record<string, string>;
}

export type ParsedManifest = ImageManifest | ImageIndex;

export interface ParseManifestOptions {
  /** The response `Content-Type` (parameters allowed), used when the body has no `mediaType`. */
  contentType?: string | null;
  /** The manifest's digest, named in errors. */
  digest?: string;
  /** `maxLayers` (docs/api.md §6); exceeding it is LimitExceededError before any config fetch. */
  maxLayers?: number;
}

function bad(msg: string, digest?: string): never {
  throw new ManifestInvalidError(msg, digest);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJsonObject(
  bytes: Buffer | Uint8Array,
  what: string,
  onError: (m: string) => never,
): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    onError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) onError(`${what} is not a JSON object`);
  return v;
}

function stringMap(v: unknown, where: string, digest?: string): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string'))
    bad(`${where}.annotations must map strings to strings`, digest);
  return v as Record<string, string>;
}

/** Validates one descriptor: digest (§1.1) and size (a non-negative safe integer). */
function descriptor(
  v: unknown,
  where: string,
  digest: string | undefined,
  mediaTypeRequired: boolean,
): Descriptor & { mediaType?: string } {
  if (!isObject(v)) bad(`${where} is not a descriptor object`, digest);
  if (!isDigest(v.digest)) bad(`${where}.digest ${JSON.stringify(v.digest)} is not a valid digest`, digest);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    bad(`${where}.size must be a non-negative integer`, digest);
  if (v.mediaType !== undefined && typeof v.mediaType !== 'string') bad(`${where}.mediaType must be a string`, digest);
  if (mediaTypeRequired && typeof v.mediaType !== 'string') bad(`${where}.mediaType is missing`, digest);
  const out = { digest: v.digest, size: v.size } as Descriptor & { mediaType?: string };
  if (typeof v.mediaType === 'string') out.mediaType = v.mediaType;
  if (v.urls !== undefined) {
    if (!Array.isArray(v.urls) || v.urls.some((u) => typeof u !== 'string'))
      bad(`${where}.urls must be an array of strings`, digest);
    out.urls = v.urls as string[];
  }
  const ann = stringMap(v.annotations, where, digest);
  if (ann) out.annotations = ann;
  return out;
}

/** The media type named by a Content-Type header, if it is a manifest-ish type; else null. */
function contentTypeMediaType(ct: string | null | undefined): string | null {
  if (!ct) return null;
  const t = ct.split(';')[0]!.trim().toLowerCase();
  return INDEX_TYPES.has(t) || MANIFEST_TYPES.has(t) || SCHEMA1_TYPES.has(t) ? t : null;
}

/**
 * Parses manifest or index bytes (docs/pull.md §5.1 Type): the type comes from the body's
 * `mediaType`, else `Content-Type`, else the shape. Schema 1 and shape conflicts are
 * ManifestInvalidError; too many layers is LimitExceededError('maxLayers').
 */
export function parseManifest(bytes: Buffer | Uint8Array, opts: ParseManifestOptions = {}): ParsedManifest {
  const d = opts.digest;
  const obj = parseJsonObject(bytes, 'manifest', (m) => bad(m, d));
  const bodyType = obj.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') bad('manifest mediaType must be a string', d);
  const headerType = contentTypeMediaType(opts.contentType);
  if (
    obj.schemaVersion === 1 ||
    SCHEMA1_TYPES.has((bodyType ?? '') as string) ||
    (bodyType === undefined && headerType !== null && SCHEMA1_TYPES.has(headerType))
  ) {
    bad(`${SCHEMA1_MESSAGE} (schema 1)`, d);
  }
  if (obj.schemaVersion !== 2) bad(`unsupported schemaVersion ${JSON.stringify(obj.schemaVersion)} (expected 2)`, d);

  const looksIndex = Array.isArray(obj.manifests);
  const looksManifest = obj.config !== undefined || obj.layers !== undefined;
  let type: string;
  if (typeof bodyType === 'string') type = bodyType;
  else if (headerType !== null) type = headerType;
  else if (looksIndex && !looksManifest) type = MEDIA_TYPES.ociIndex;
  else if (looksManifest && !looksIndex) type = MEDIA_TYPES.ociManifest;
  else
    bad(
      'cannot tell whether this is a manifest or an index (no mediaType, no usable Content-Type, ambiguous shape)',
      d,
    );

  if (INDEX_TYPES.has(type)) {
    if (!looksIndex || looksManifest) bad(`manifest says ${type} but its shape is not an index`, d);
    return parseIndexBody(obj, type, d);
  }
  if (MANIFEST_TYPES.has(type)) {
    if (looksIndex || !isObject(obj.config) || !Array.isArray(obj.layers))
      bad(`manifest says ${type} but has no config and layers`, d);
    return parseManifestBody(obj, type, d, opts.maxLayers);
  }
  bad(`unsupported manifest media type ${JSON.stringify(type)}`, d);
}

function parseManifestBody(
  obj: Record<string, unknown>,
  type: string,
  d: string | undefined,
  maxLayers: number | undefined,
): ImageManifest {
  const layersIn = obj.layers as unknown[];
  if (maxLayers !== undefined && layersIn.length > maxLayers)
    throw new LimitExceededError('maxLayers', layersIn.length, maxLayers, 'manifest layers');
  const config = descriptor(obj.config, 'config', d, false) as Descriptor;
  if (config.mediaType === undefined) bad('config.mediaType is missing', d);
  const layers: LayerDescriptor[] = layersIn.map((l, i) => {
    const desc = descriptor(l, `layers[${i}]`, d, true) as Descriptor;
    return { ...desc, compression: layerCompression(desc.mediaType, d) };
  });
  const out: ImageManifest = { kind: 'manifest', mediaType: type, config, layers };
  const ann = stringMap(obj.annotations, 'manifest', d);
  if (ann) out.annotations = ann;
  return out;
}

function parseIndexBody(obj: Record<string, unknown>, type: string, d: string | undefined): ImageIndex {
  const entries = obj.manifests as unknown[];
  const manifests: IndexEntry[] = entries.map((e, i) => {
    const where = `manifests[${i}]`;
    const desc = descriptor(e, where, d, false) as IndexEntry;
    const p = (e as Record<string, unknown>).platform;
    if (p !== undefined && p !== null) {
      if (
        !isObject(p) ||
        typeof p.os !== 'string' ||
        typeof p.architecture !== 'string' ||
        (p.variant !== undefined && typeof p.variant !== 'string')
      ) {
        bad(`${where}.platform needs string os and architecture`, d);
      }
      desc.platform = { os: p.os, architecture: p.architecture };
      if (typeof p.variant === 'string' && p.variant !== '') desc.platform.variant = p.variant;
    }
    return desc;
  });
  const out: ImageIndex = { kind: 'index', mediaType: type, manifests };
  const ann = stringMap(obj.annotations, 'index', d);
  if (ann) out.annotations = ann;
  return out;
}

/** The parts of an image config (docs/pull.md §6) the pipeline needs; `raw` is the whole parsed JSON. */
export interface ImageConfig {
  diffIds: string[];
  os: string | null;
  architecture: string | null;
  variant: string | null;
  raw: Record<string, unknown>;
}

/**
 * Parses an image config: JSON object, `rootfs.type == "layers"`, `rootfs.diff_ids` valid
 * digests, as many as the manifest has layers. Otherwise ConfigInvalidError. The caller has
 * already checked the size limit and the digest of the bytes.
 */
export function parseImageConfig(bytes: Buffer | Uint8Array, digest: string, layerCount: number): ImageConfig {
  const fail = (m: string): never => {
    throw new ConfigInvalidError(digest, `image config ${digest}: ${m}`);
  };
  const obj = parseJsonObject(bytes, 'config', fail);
  const rootfs = obj.rootfs;
  if (!isObject(rootfs)) fail('rootfs is missing');
  const r = rootfs as Record<string, unknown>;
  if (r.type !== 'layers') fail(`rootfs.type is ${JSON.stringify(r.type)}, expected "layers"`);
  if (!Array.isArray(r.diff_ids)) fail('rootfs.diff_ids is not an array');
  const diffIds = r.diff_ids as unknown[];
  diffIds.forEach((x, i) => {
    if (!isDigest(x)) fail(`rootfs.diff_ids[${i}] ${JSON.stringify(x)} is not a valid digest`);
  });
  if (diffIds.length !== layerCount) fail(`${diffIds.length} diff_ids for ${layerCount} layers`);
  const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
  return {
    diffIds: diffIds as string[],
    os: str(obj.os),
    architecture: str(obj.architecture),
    variant: str(obj.variant),
    raw: obj,
  };
}

/** True for the two index media types. */
export function isIndexMediaType(t: string | undefined | null): boolean {
  return !!t && INDEX_TYPES.has(t);
}

/** True for the two single-platform manifest media types. */
export function isManifestMediaType(t: string | undefined | null): boolean {
  return !!t && MANIFEST_TYPES.has(t);
}

/**
 * OCI and Docker media types, and the one table between layer media types and compression kinds
 * (docs/pull.md §5.1, §7), used both ways by pull, registry and archive.
 */
import { ManifestInvalidError } from '../errors.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** The `Accept` list of every manifest request (docs/pull.md §5.1): all four types. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerManifestList,
];

/** How a layer blob is compressed. Adding a kind makes every exhaustive `switch` fail to compile. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** docs/pull.md §7 table. Anything else (encrypted, artifacts) is refused before any download. */
export const LAYER_MEDIA_TYPES: Readonly<Record<string, Compression>> = Object.freeze({
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
});

/** The compression a layer media type announces, or null for a type we do not accept. */
export function compressionOfMediaType(mediaType: string): Compression | null {
  return Object.hasOwn(LAYER_MEDIA_TYPES, mediaType) ? LAYER_MEDIA_TYPES[mediaType]! : null;
}

/** Compression of a layer media type, or ManifestInvalidError for an unsupported one. */
export function layerCompression(mediaType: string, manifestDigest?: string): Compression {
  const c = compressionOfMediaType(mediaType);
  if (c === null)
    throw new ManifestInvalidError(`unsupported layer media type ${JSON.stringify(mediaType)}`, manifestDigest);
  return c;
}

/** The OCI layer media type of a compression kind (what a loaded docker-archive layer is recorded as). */
export function ociLayerMediaType(kind: Compression): string {
  switch (kind) {
    case 'none':
      return 'application/vnd.oci.image.layer.v1.tar';
    case 'gzip':
      return 'application/vnd.oci.image.layer.v1.tar+gzip';
    case 'zstd':
      return 'application/vnd.oci.image.layer.v1.tar+zstd';
    default:
      return unreachable(kind);
  }
}

/** Compile-time exhaustiveness: a `switch` over a union calls this in its `default`. */
export function unreachable(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}

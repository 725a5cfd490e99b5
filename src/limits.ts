/**
 * Resource limits (docs/api.md §6). Going over one rejects with LimitExceededError {limit, value, max};
 * nothing is published.
 */
export interface Limits {
  /** Manifests, indexes, configs and archive JSON members other than manifest.json. */
  maxManifestBytes: number;
  maxLayers: number;
  maxLayerEntries: number;
  /** Uncompressed tar stream per layer. */
  maxLayerBytes: number;
  maxFileBytes: number;
  maxPathBytes: number;
  maxPathDepth: number;
  /** xattr name+value bytes per inode. */
  maxXattrBytes: number;
  maxPaxHeaderBytes: number;
  maxArchiveMembers: number;
  /**
   * Bytes a load may keep in its spool directory (docs/archives.md §2): a stream copied as it
   * arrives, small members, and the layer members a plan names.
   */
  maxArchiveSpoolBytes: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxManifestBytes: 4 * MiB,
  maxLayers: 1000,
  maxLayerEntries: 1_000_000,
  maxLayerBytes: 128 * GiB,
  maxFileBytes: 64 * GiB,
  maxPathBytes: 4096,
  maxPathDepth: 128,
  maxXattrBytes: 64 * 1024,
  maxPaxHeaderBytes: 1 * MiB,
  maxArchiveMembers: 1_000_000,
  maxArchiveSpoolBytes: 256 * GiB,
});

/** Fixed limits outside `Limits` (their LimitExceededError.limit names). */
export const FIXED_LIMITS = Object.freeze({
  zstdWindowBytes: 128 * MiB,
  gnuLongNameBytes: 64 * 1024,
  manifestJsonBytes: 16 * MiB,
  indexDepth: 8,
  indexEntries: 1024,
  archiveImages: 1000,
  /** Extension headers allowed before one tar entry (docs/erofs.md §6.2). */
  extensionHeaders: 8,
  /** Bytes after the end-of-archive blocks of a load archive (docs/archives.md §2). */
  archiveTrailingBytes: 1 * MiB,
  /** `<home>/config.json` and the docker config file (docs/cli.md §8). */
  configFileBytes: 4 * MiB,
  /** One PEM CA file (`ca_certs`, `--ca-certs`). */
  caCertFileBytes: 4 * MiB,
  /** One registry secret file under `<home>/secrets/`. */
  secretFileBytes: 64 * 1024,
  /** The cache marker `msb-cache.json` (docs/storage.md §1). */
  markerFileBytes: 64 * 1024,
  /** Characters of one reference glob (`--filter reference=`, `PruneOptions.filter`). */
  globPatternChars: 1024,
});

export function resolveLimits(...overlays: (Partial<Limits> | undefined)[]): Limits {
  const out: Limits = { ...DEFAULT_LIMITS };
  for (const o of overlays)
    if (o)
      for (const [k, v] of Object.entries(o))
        if (typeof v === 'number') (out as unknown as Record<string, number>)[k] = v;
  return out;
}

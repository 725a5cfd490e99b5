/**
 * Platform selection (docs/pull.md §5.2). Pure: the only "I/O" is the `loadIndex` callback that the
 * caller passes to follow nested indexes.
 *
 * Choices where docs/pull.md is silent:
 * - A bare-number variant (`8`, `7`) is read as `v8`, `v7`, as containerd does.
 * - arm64 variants are ordered numerically (`v8` < `v8.1` < … < `v9`), like arm and amd64; a
 *   variant that is not of the form `v<n>[.<m>]` on an ordered architecture, or any variant of an
 *   unordered architecture, matches only itself.
 * - An index entry with no `mediaType` is skipped with the other non-manifest types.
 * - `available` lists each written platform once, in index order.
 */
import { InvalidArgumentError, LimitExceededError, PlatformNotFoundError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import type { Descriptor, ImageIndex, IndexEntry } from './manifest.js';
import { MEDIA_TYPES } from './media-types.js';

/** docs/api.md §2.6 `Platform`: os, architecture, variant (null when absent). */
export interface Platform {
  os: string;
  architecture: string;
  variant: string | null;
}

/** The platform as compared: lowercased, aliases folded, implied variants filled in. */
export interface NormalizedPlatform {
  os: string;
  architecture: string;
  variant: string | null;
  variantImplied: boolean;
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  i386: { architecture: '386' },
};
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', amd64: 'v1', arm: 'v7' };
/** Architectures whose variants are ordered; a candidate's variant must be ≤ the target's. */
const ORDERED_ARCHES = new Set(['arm', 'arm64', 'amd64']);

/** `os/arch[/variant]` as written (variant omitted when null). */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * The host platform `linux/<arch>[/<variant>]` from `process.arch` (docs/pull.md §5.2 Target):
 * x64→amd64, arm64→arm64/v8, arm→arm/v6|v7 (from Node's arm_version, default v7), ia32→386,
 * ppc64 (little-endian)→ppc64le; other values are used as they are.
 */
export function hostPlatform(
  arch: string = process.arch,
  armVersion: unknown = (process.config.variables as Record<string, unknown>).arm_version,
  endianness: 'LE' | 'BE' = littleEndian() ? 'LE' : 'BE',
): Platform {
  switch (arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64', variant: null };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64', variant: 'v8' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: String(armVersion) === '6' ? 'v6' : 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386', variant: null };
    case 'ppc64':
      return { os: 'linux', architecture: endianness === 'LE' ? 'ppc64le' : 'ppc64', variant: null };
    default:
      return { os: 'linux', architecture: arch, variant: null };
  }
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

const COMPONENT_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/**
 * Parses the `platform` option: `os/arch[/variant]` or a `Platform` object. The result keeps the
 * spelling as given (trimmed). Anything else is InvalidArgumentError('platform').
 */
export function parsePlatform(input: string | Partial<Platform> | null | undefined): Platform {
  if (typeof input === 'string') {
    const parts = input.trim().split('/');
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => !COMPONENT_RE.test(p))) {
      throw new InvalidArgumentError(
        'platform',
        `invalid platform ${JSON.stringify(input)}: expected os/arch[/variant], e.g. linux/arm64/v8`,
      );
    }
    return { os: parts[0]!, architecture: parts[1]!, variant: parts[2] ?? null };
  }
  if (input && typeof input === 'object') {
    const { os, architecture, variant } = input;
    if (
      typeof os === 'string' &&
      COMPONENT_RE.test(os) &&
      typeof architecture === 'string' &&
      COMPONENT_RE.test(architecture) &&
      (variant === undefined || variant === null || (typeof variant === 'string' && COMPONENT_RE.test(variant)))
    ) {
      return { os, architecture, variant: variant ?? null };
    }
  }
  throw new InvalidArgumentError(
    'platform',
    `invalid platform ${safeJson(input)}: expected "os/arch[/variant]" or {os, architecture, variant}`,
  );
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Normalization on both sides (docs/pull.md §5.2): aliases, lowercase, implied variants. */
export function normalizePlatform(p: Platform): NormalizedPlatform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant ? p.variant.toLowerCase() : null;
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    if (variant === null && alias.variant) variant = alias.variant;
  }
  if (variant !== null && /^[0-9]+(\.[0-9]+)?$/.test(variant)) variant = `v${variant}`;
  let variantImplied = false;
  if (variant === null && DEFAULT_VARIANT[architecture]) {
    variant = DEFAULT_VARIANT[architecture]!;
    variantImplied = true;
  }
  // An alias that carries its variant (armhf) counts as explicit; only a filled-in default is implied.
  return { os, architecture, variant, variantImplied };
}

/** Numeric rank of an ordered variant (`v7` → 7, `v8.2` → 8.002), or null when unorderable. */
function variantRank(architecture: string, variant: string | null): number | null {
  if (!ORDERED_ARCHES.has(architecture) || variant === null) return null;
  const m = /^v([0-9]+)(?:\.([0-9]+))?$/.exec(variant);
  if (!m) return null;
  return Number(m[1]) + (m[2] ? Math.min(Number(m[2]), 999) / 1000 : 0);
}

/**
 * Compatibility of a candidate with a target: null when incompatible, else a score where higher
 * is better (exact variant > highest compatible variant; explicit > implied).
 */
export function matchPlatform(candidate: Platform, target: Platform): number | null {
  const c = normalizePlatform(candidate);
  const t = normalizePlatform(target);
  if (c.os !== t.os || c.architecture !== t.architecture) return null;
  const explicitBonus = c.variantImplied ? 0 : 0.5;
  if (c.variant === t.variant) return 1_000_000 + explicitBonus;
  const cr = variantRank(c.architecture, c.variant);
  const tr = variantRank(t.architecture, t.variant);
  if (cr === null || tr === null || cr > tr) return null;
  return cr * 1000 + explicitBonus;
}

/** True when `candidate` may serve `target` (docs/pull.md §5.2 Match; also the cache check of §8). */
export function isPlatformCompatible(candidate: Platform, target: Platform): boolean {
  return matchPlatform(candidate, target) !== null;
}

/** An index entry's platform as written (variant null when absent), or null when it has none. */
export function entryPlatform(e: IndexEntry): Platform | null {
  if (!e.platform) return null;
  return { os: e.platform.os, architecture: e.platform.architecture, variant: e.platform.variant ?? null };
}

/** Attestation manifests (buildkit provenance/SBOM) are never candidates nor listed. */
export function isAttestation(e: IndexEntry): boolean {
  if (e.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return e.platform?.os === 'unknown' && e.platform.architecture === 'unknown';
}

const MANIFEST_TYPES = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList]);

export interface PlatformSelection {
  /** Descriptor of the chosen platform manifest. */
  descriptor: Descriptor;
  /** The chosen entry's platform as written (the platform to record). */
  platform: Platform;
  /** Digests of the nested indexes walked through to reach it (outermost first), not the top one. */
  via: string[];
}

/**
 * Chooses one manifest from an index (docs/pull.md §5.2). Nested indexes are loaded through
 * `loadIndex` (already parsed and validated) when their own platform matches the target or is
 * absent; depth ≤ 8 (the top index is depth 1) and ≤ 1024 entries examined in total.
 * Throws PlatformNotFoundError listing the written platforms of all non-attestation candidates.
 */
export async function selectPlatform(
  index: ImageIndex,
  target: Platform,
  loadIndex: (entry: IndexEntry) => Promise<ImageIndex>,
): Promise<PlatformSelection> {
  interface Cand {
    entry: IndexEntry;
    platform: Platform;
    via: string[];
  }
  const cands: Cand[] = [];
  const available: string[] = [];
  let examined = 0;
  const walk = async (idx: ImageIndex, depth: number, via: string[]): Promise<void> => {
    if (depth > FIXED_LIMITS.indexDepth)
      throw new LimitExceededError('indexDepth', depth, FIXED_LIMITS.indexDepth, 'nested image index');
    for (const e of idx.manifests) {
      examined++;
      if (examined > FIXED_LIMITS.indexEntries)
        throw new LimitExceededError('indexEntries', examined, FIXED_LIMITS.indexEntries, 'image index');
      if (isAttestation(e)) continue;
      const p = entryPlatform(e);
      if (INDEX_TYPES.has(e.mediaType ?? '')) {
        if (p === null || isPlatformCompatible(p, target))
          await walk(await loadIndex(e), depth + 1, [...via, e.digest]);
        continue;
      }
      if (!MANIFEST_TYPES.has(e.mediaType ?? '') || p === null) continue;
      const s = formatPlatform(p);
      if (!available.includes(s)) available.push(s);
      cands.push({ entry: e, platform: p, via });
    }
  };
  await walk(index, 1, []);
  const best = chooseBest(
    cands.map((c) => c.platform),
    target,
  );
  if (best < 0) throw new PlatformNotFoundError(formatPlatform(target), available);
  const c = cands[best]!;
  // Candidates were filtered on a known manifest media type, so mediaType is present.
  return { descriptor: { ...c.entry, mediaType: c.entry.mediaType! }, platform: c.platform, via: c.via };
}

/** Index of the best compatible platform in `candidates` (first wins ties), or -1. */
export function chooseBest(candidates: Platform[], target: Platform): number {
  let best = -1;
  let bestScore = -Infinity;
  candidates.forEach((p, i) => {
    const s = matchPlatform(p, target);
    if (s !== null && s > bestScore) {
      best = i;
      bestScore = s;
    }
  });
  return best;
}

/** The platform an image config states (`os`, `architecture`, `variant`), or null when incomplete. */
export function configPlatform(config: { os?: unknown; architecture?: unknown; variant?: unknown }): Platform | null {
  if (typeof config.os !== 'string' || typeof config.architecture !== 'string' || !config.os || !config.architecture)
    return null;
  return {
    os: config.os,
    architecture: config.architecture,
    variant: typeof config.variant === 'string' && config.variant ? config.variant : null,
  };
}

export interface RecordedPlatform {
  platform: Platform;
  warning: { code: 'PLATFORM_MISMATCH'; message: string } | null;
}

/**
 * The platform to record (docs/pull.md §5.2 Recorded platform).
 * - Through an index: the entry's platform; a config that disagrees only gives a warning.
 * - A single manifest: the config's platform; if it does not match the target, an explicit
 *   `platform` option gives PlatformNotFoundError and the host default gives a warning.
 */
export function recordedPlatform(args: {
  indexEntry: Platform | null;
  config: { os?: unknown; architecture?: unknown; variant?: unknown };
  target: Platform;
  explicit: boolean;
}): RecordedPlatform {
  const cfg = configPlatform(args.config);
  if (args.indexEntry) {
    const agree =
      cfg !== null && isPlatformCompatible(cfg, args.indexEntry) && isPlatformCompatible(args.indexEntry, cfg);
    return {
      platform: args.indexEntry,
      warning: agree
        ? null
        : {
            code: 'PLATFORM_MISMATCH',
            message: `index entry says ${formatPlatform(args.indexEntry)} but the image config says ${cfg ? formatPlatform(cfg) : '(none)'}; trusting the index`,
          },
    };
  }
  if (cfg === null) {
    if (args.explicit)
      throw new PlatformNotFoundError(
        formatPlatform(args.target),
        [],
        `the image config states no platform; requested ${formatPlatform(args.target)}`,
      );
    return {
      platform: { os: 'unknown', architecture: 'unknown', variant: null },
      warning: { code: 'PLATFORM_MISMATCH', message: 'the image config states no os/architecture' },
    };
  }
  if (isPlatformCompatible(cfg, args.target)) return { platform: cfg, warning: null };
  if (args.explicit) throw new PlatformNotFoundError(formatPlatform(args.target), [formatPlatform(cfg)]);
  return {
    platform: cfg,
    warning: {
      code: 'PLATFORM_MISMATCH',
      message: `image platform ${formatPlatform(cfg)} does not match the host platform ${formatPlatform(args.target)}`,
    },
  };
}

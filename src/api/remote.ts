/**
 * Remote inspection (`Image.resolve`, `Image.remoteManifest`, `Image.listTags` and their `*Local`
 * twins): what a registry holds, asked through the pull's own registry client (config.json
 * settings, credentials, mirrors, MSB_REGISTRY_MIRRORS, retries, digest checks). None of them
 * opens the cache or writes anything: the backend only lends its home (secrets) and settings.
 *
 * The digest of a reference (`ResolvedRemoteImage.digest`, `msb image digest`) is the digest of
 * the document the reference names: the index for a multi-arch tag, else the manifest. That is the
 * pin to write in deployment files (`name@digest` pulls the same bytes on every platform), the
 * first thing a pull resolves the tag to (`PullResult.indexDigest ?? manifestDigest`), and what
 * `skopeo inspect --format '{{.Digest}}'` and `crane digest` print. `manifestDigest` is the
 * platform manifest a pull on `platform` (default: this host's) would then use.
 */
import type { Platform } from './types.js';
import type { LocalBackend } from './backend.js';
import type { RegistryAuth } from './types.js';
import { InvalidArgumentError } from '../errors.js';
import { parseReference, type ParsedReference } from '../reference/reference.js';
import type { RegistryClient } from '../registry/client.js';
import type { WarningInfo } from '../registry/types.js';

/** Options of the remote calls (`Image.resolve`, `remoteManifest`, `listTags`). */
export interface RemoteOptions {
  /** Credentials for the reference's registry (as PullOptions.auth; never sent to mirrors). */
  auth?: RegistryAuth;
  /** Allow plain HTTP / unverified TLS for this registry. */
  insecure?: boolean;
  /** Extra PEM files trusted for this call. */
  caCerts?: string[];
  signal?: AbortSignal;
  /** Warnings (MIRROR_FALLBACK, PLATFORM_MISMATCH). */
  onWarning?: (w: WarningInfo) => void;
}

/** RemoteOptions plus the platform to resolve an index to. */
export interface RemotePlatformOptions extends RemoteOptions {
  /** `os/arch[/variant]` or a Platform; absent: this host's platform. */
  platform?: string | Platform;
}

/** What `Image.resolve` found: the digest a pull would pin, and the platform manifest it would use. */
export interface ResolvedRemoteImage {
  /** Canonical reference asked for. */
  reference: string;
  /** Digest of the document the reference names: the index for a multi-arch tag, else the manifest. */
  digest: string;
  /** Media type of that document. */
  mediaType: string;
  /** Set when the reference names an index. */
  indexDigest: string | null;
  /** The platform manifest a pull would use. */
  manifestDigest: string;
  /** The platform recorded for it (the index entry's, else the config's). */
  platform: Platform;
  /** Endpoint that answered the first request: a mirror URL (without userinfo) or the registry domain. */
  source: string;
}

/** What `Image.remoteManifest` fetched: the document's exact bytes, digest and media type. */
export interface RemoteManifest {
  reference: string;
  digest: string;
  mediaType: string;
  /** The exact bytes the registry served (their digest is `digest`). */
  raw: Buffer;
  source: string;
}

/** What `Image.listTags` fetched: every tag of a repository. */
export interface RemoteTagList {
  /** `domain/repository`. */
  repository: string;
  tags: string[];
  source: string;
}

async function withClient<T>(
  backend: LocalBackend,
  o: RemoteOptions,
  fn: (c: RegistryClient) => Promise<T>,
): Promise<T> {
  const { RegistryClient } = await import('../registry/client.js');
  const client = new RegistryClient({
    home: backend.home,
    settings: backend.settings,
    ...(o.auth !== undefined ? { auth: o.auth } : {}),
    ...(o.insecure !== undefined ? { insecure: o.insecure } : {}),
    ...(o.caCerts !== undefined ? { caCerts: o.caCerts } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onWarning ? { onWarning: o.onWarning } : {}),
  });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

function limitsOf(backend: LocalBackend): { maxLayers: number } {
  return { maxLayers: backend.settings.pull.maxLayers };
}

/** Resolves a reference as a pull would (index → platform manifest → config), without downloading layers. */
export async function resolveRemote(
  backend: LocalBackend,
  reference: string,
  o: RemotePlatformOptions = {},
): Promise<ResolvedRemoteImage> {
  const ref = parseReference(reference);
  const { resolveImage } = await import('../registry/resolve.js');
  return withClient(backend, o, async (client) => {
    const r = await resolveImage(client, ref, {
      ...(o.platform !== undefined ? { platform: o.platform } : {}),
      limits: limitsOf(backend),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return {
      reference: ref.canonical,
      digest: r.indexDigest ?? r.manifestDigest,
      mediaType: r.indexMediaType ?? r.manifest.mediaType,
      indexDigest: r.indexDigest,
      manifestDigest: r.manifestDigest,
      platform: r.platform,
      source: r.source,
    };
  });
}

/**
 * The document a reference names, exactly as served: an index or a manifest. With `platform`, an
 * index is followed to that platform's manifest (as a pull would select it).
 */
export async function remoteManifest(
  backend: LocalBackend,
  reference: string,
  o: RemotePlatformOptions = {},
): Promise<RemoteManifest> {
  const ref = parseReference(reference);
  if (o.platform !== undefined && o.platform !== null) {
    const { resolveImage } = await import('../registry/resolve.js');
    return withClient(backend, o, async (client) => {
      const r = await resolveImage(client, ref, {
        platform: o.platform!,
        limits: limitsOf(backend),
        ...(o.signal ? { signal: o.signal } : {}),
      });
      return {
        reference: ref.canonical,
        digest: r.manifestDigest,
        mediaType: r.manifest.mediaType,
        raw: r.manifestBytes,
        source: r.source,
      };
    });
  }
  const { fetchTopManifest } = await import('../registry/remote.js');
  return withClient(backend, o, async (client) => {
    const m = await fetchTopManifest(client, ref, {
      maxLayers: limitsOf(backend).maxLayers,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return { reference: ref.canonical, digest: m.digest, mediaType: m.mediaType, raw: m.bytes, source: m.source };
  });
}

/** Parses a repository name: a reference without tag or digest (`ghcr.io/org/app`). */
export function parseRepository(repository: string): ParsedReference {
  const last = repository.slice(repository.lastIndexOf('/') + 1);
  if (repository.includes('@') || last.includes(':')) {
    throw new InvalidArgumentError(
      'repository',
      `${JSON.stringify(repository)} is a reference with a tag or digest; give the repository only`,
    );
  }
  return parseReference(repository);
}

/** Every tag of a repository (`tags/list`, all pages). */
export async function listRemoteTags(
  backend: LocalBackend,
  repository: string,
  o: RemoteOptions & { pageSize?: number; maxTags?: number } = {},
): Promise<RemoteTagList> {
  const ref = parseRepository(repository);
  if (o.pageSize !== undefined && (!Number.isInteger(o.pageSize) || o.pageSize < 1))
    throw new InvalidArgumentError('pageSize', 'pageSize must be an integer ≥ 1');
  const { listTags } = await import('../registry/remote.js');
  return withClient(backend, o, async (client) => {
    const r = await listTags(client, ref, {
      ...(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
      ...(o.maxTags !== undefined ? { maxTags: o.maxTags } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return { repository: `${ref.domain}/${ref.repository}`, tags: r.tags, source: r.source };
  });
}

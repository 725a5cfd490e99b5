/**
 * Looking at a remote image without pulling it: the top manifest (index or manifest) with the
 * exact bytes served, and a repository's tags (`GET /v2/<repo>/tags/list`, following
 * `Link: <…>; rel="next"` pages). Everything goes through the registry client, so auth, mirrors,
 * retries and digest checks are the pull's own; nothing here touches the disk.
 */
import { LimitExceededError, RegistryError } from '../errors.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import type { ParsedReference } from '../reference/reference.js';
import type { RegistryClient } from './client.js';
import type { RepoRef } from './types.js';

export interface TopManifest {
  /** Digest of the exact bytes (verified against the reference's digest and Docker-Content-Digest). */
  digest: string;
  mediaType: string;
  /** The bytes exactly as the registry served them. */
  bytes: Buffer;
  parsed: ParsedManifest;
  /** Endpoint that answered (a mirror URL without userinfo, or the registry domain). */
  source: string;
}

/** The manifest or index that the reference names (its digest, else its tag), parsed and verified. */
export async function fetchTopManifest(
  client: RegistryClient,
  ref: ParsedReference,
  opts: { signal?: AbortSignal; maxManifestBytes?: number; maxLayers?: number } = {},
): Promise<TopManifest> {
  const m = await client.fetchManifest(ref, ref.digest ?? ref.tag ?? 'latest', {
    maxBytes: opts.maxManifestBytes ?? DEFAULT_LIMITS.maxManifestBytes,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const parsed = parseManifest(m.bytes, {
    contentType: m.contentType,
    digest: m.digest,
    maxLayers: opts.maxLayers ?? DEFAULT_LIMITS.maxLayers,
  });
  return { digest: m.digest, mediaType: parsed.mediaType, bytes: m.bytes, parsed, source: m.source };
}

export interface ListTagsOptions {
  /** `n` asked per page; absent: the registry's default page. */
  pageSize?: number;
  /** Refuse lists longer than this (LimitExceededError `maxTags`). Default 100 000. */
  maxTags?: number;
  signal?: AbortSignal;
}

export const DEFAULT_MAX_TAGS = 100_000;
const MAX_PAGES = 10_000;

/**
 * The next page of a tags list from a `Link` header, as a resource of the same repository
 * (`tags/list?…`), or null. Only the path and query are taken: the next page is asked of the
 * endpoint that served this one, never of a host the header names. Another path is refused.
 */
export function nextTagsPage(link: string | null, repository: string): string | null {
  if (!link) return null;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m || !/;\s*rel="?next"?(\s|;|$)/i.test(m[2]!)) continue;
    let u: URL;
    try {
      u = new URL(m[1]!, 'http://registry.invalid');
    } catch {
      return null;
    }
    if (decodeURIComponent(u.pathname) !== `/v2/${repository}/tags/list`) {
      throw new RegistryError(
        repository,
        200,
        `tags/list of ${repository}: the next page link points elsewhere (${u.pathname})`,
      );
    }
    return `tags/list${u.search}`;
  }
  return null;
}

function parseTagsPage(bytes: Buffer, what: string, domain: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError(domain, 200, `${what}: the answer is not JSON`);
  }
  const tags = (v as { tags?: unknown } | null)?.tags;
  if (tags === null || tags === undefined) return [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string'))
    throw new RegistryError(domain, 200, `${what}: "tags" is not a list of strings`);
  return tags as string[];
}

/** Every tag of a repository, in the registry's order, across pages. */
export async function listTags(
  client: RegistryClient,
  ref: RepoRef,
  opts: ListTagsOptions = {},
): Promise<{ tags: string[]; source: string }> {
  const maxTags = opts.maxTags ?? DEFAULT_MAX_TAGS;
  const what = `tags/list of ${ref.domain}/${ref.repository}`;
  let resource: string | null = opts.pageSize ? `tags/list?n=${opts.pageSize}` : 'tags/list';
  const seen = new Set<string>();
  const tags: string[] = [];
  let start = 0;
  let source = '';
  for (let page = 0; resource !== null; page++) {
    if (page >= MAX_PAGES) throw new LimitExceededError('tagPages', page + 1, MAX_PAGES, what);
    seen.add(resource);
    const r = await client.getRepoResource(ref, resource, { start, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (page === 0) source = r.source;
    start = r.endpointIndex;
    tags.push(...parseTagsPage(r.bytes, what, ref.domain));
    if (tags.length > maxTags) throw new LimitExceededError('maxTags', tags.length, maxTags, what);
    resource = nextTagsPage(r.link, ref.repository);
    if (resource !== null && seen.has(resource))
      throw new RegistryError(ref.domain, 200, `${what}: the next page link repeats an earlier page`);
  }
  return { tags, source };
}

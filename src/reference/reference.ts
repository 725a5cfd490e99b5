/**
 * Image references (docs/pull.md §1): the Docker distribution grammar, normalization to the canonical
 * form, the familiar form, and digest selectors. Pure: no I/O.
 *
 * Choices where docs/pull.md is silent (docker-compatible unless noted):
 * - The 255-character limit applies to the normalized name `domain/repository` (docker checks the
 *   name after `docker.io/library/` has been added, in ParseNormalizedNamed → Parse).
 * - A port must be 1–5 digits and ≤ 65535 (docker accepts any digit string; a larger port could
 *   never be contacted, so rejecting it early gives a clearer error).
 * - A bare 64-hex name is rejected with or without a tag (`<64hex>`, `<64hex>:v1`); with a path
 *   prefix (`library/<64hex>`) it is an ordinary repository.
 * - A first component that qualifies as a domain only because of uppercase letters (`Foo/bar`,
 *   `LOCALHOST/app`) is rejected (step 4); it is never silently lowercased.
 */
import { InvalidReferenceError } from '../errors.js';
import { isDigest } from '../util/digest.js';

export interface ParsedReference {
  /** `domain/repository[:tag][@digest]`, defaults filled in (`docker.io`, `library/`, `latest`). */
  canonical: string;
  /** Shortest spelling that normalizes back to `canonical` and is not a digest selector. */
  familiar: string;
  /** Lowercased registry domain, `index.docker.io` folded into `docker.io`, port kept. */
  domain: string;
  /** Repository path on the registry, e.g. `library/python`. */
  repository: string;
  /** `latest` when neither tag nor digest was given; null for a digest-only reference. */
  tag: string | null;
  /** Manifest (or index) digest when the reference has one; it decides what is fetched. */
  digest: string | null;
}

/**
 * What an image argument names (docs/api.md §2): a manifest digest, or a reference. A reference
 * spelled as hex (`d3db7b32be7f`, `sha256:d3db`, 4 or more hex digits) also carries `idPrefix`:
 * when no such reference is cached, it is looked up as a docker-style short image ID.
 */
export type ImageSelector =
  | { kind: 'digest'; digest: string }
  | ({ kind: 'reference'; idPrefix: string | null } & ParsedReference);

export const DOCKER_HUB_DOMAIN = 'docker.io';
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';
export const NAME_TOTAL_LENGTH_MAX = 255;

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** One path component: alnum+ (sep alnum+)*, sep := "." | "_" | "__" | "-"+ (lowercase only). */
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** Same shape, case-insensitive: used only to tell "uppercase" from "malformed" in messages. */
const PATH_COMPONENT_ANYCASE_RE = /^[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*$/;
const DCOMP = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])';
const HOST_RE = new RegExp(`^(?:${DCOMP}(?:\\.${DCOMP})*|\\[[A-Fa-f0-9:]+\\])(?::([0-9]{1,5}))?$`);
const HEX64_RE = /^[a-f0-9]{64}$/;

/** Step 3: does the first component of a name (which contains `/`) denote a registry domain? */
function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}

function fail(input: string, reason: string): never {
  throw new InvalidReferenceError(input, reason);
}

/**
 * Parses and normalizes a reference (docs/pull.md §1.2). Throws InvalidReferenceError with a reason.
 * `sha256:<64hex>` given here is the reference `docker.io/library/sha256:<64hex>`; callers that
 * accept digest selectors use `parseImageSelector`.
 */
export function parseReference(input: string): ParsedReference {
  if (typeof input !== 'string') fail(String(input), 'reference must be a string');
  const s = input.trim();
  if (s === '') fail(input, 'reference is empty');

  let rest = s;
  let digest: string | null = null;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d))
      fail(
        input,
        `invalid digest ${JSON.stringify(d)} (expected sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>, lowercase)`,
      );
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(input, `invalid tag ${JSON.stringify(tag)}`);
  }
  const name = rest;
  if (name === '') fail(input, 'repository name is empty');
  if (HEX64_RE.test(name)) fail(input, 'a 64-character hex string is not a repository name');

  let domain = DOCKER_HUB_DOMAIN;
  let repository = name;
  const slash = name.indexOf('/');
  if (slash >= 0 && looksLikeDomain(name.slice(0, slash))) {
    const rawDomain = name.slice(0, slash);
    repository = name.slice(slash + 1);
    const lower = rawDomain.toLowerCase();
    if (!rawDomain.includes('.') && !rawDomain.includes(':') && rawDomain !== 'localhost') {
      fail(input, "registry host must contain '.' or ':' or be 'localhost'");
    }
    const m = HOST_RE.exec(rawDomain);
    if (!m) fail(input, `invalid registry host ${JSON.stringify(rawDomain)}`);
    if (m[1] !== undefined && Number(m[1]) > 65535) fail(input, `invalid registry port ${m[1]}`);
    domain = lower === 'index.docker.io' ? DOCKER_HUB_DOMAIN : lower;
  }
  const comps = repository.split('/');
  for (const c of comps) {
    if (c === '') fail(input, 'repository name has an empty path component');
    if (!PATH_COMPONENT_RE.test(c)) {
      if (PATH_COMPONENT_ANYCASE_RE.test(c)) fail(input, 'repository name must be lowercase');
      fail(input, `invalid repository path component ${JSON.stringify(c)}`);
    }
  }
  if (domain === DOCKER_HUB_DOMAIN && comps.length === 1) repository = `library/${repository}`;
  const fullName = `${domain}/${repository}`;
  if (fullName.length > NAME_TOTAL_LENGTH_MAX)
    fail(input, `repository name is longer than ${NAME_TOTAL_LENGTH_MAX} characters`);

  if (tag === null && digest === null) tag = 'latest';
  const suffix = (tag !== null ? `:${tag}` : '') + (digest !== null ? `@${digest}` : '');
  return {
    canonical: fullName + suffix,
    familiar: familiarName(domain, repository, tag, digest) + suffix,
    domain,
    repository,
    tag,
    digest,
  };
}

/** Step 8: the familiar spelling of the name part (tag/digest appended by the caller). */
function familiarName(domain: string, repository: string, tag: string | null, digest: string | null): string {
  if (domain !== DOCKER_HUB_DOMAIN) return `${domain}/${repository}`;
  const slash = repository.indexOf('/');
  // Dropping `docker.io/` is allowed only when the first component would not look like a domain.
  if (slash >= 0 && looksLikeDomain(repository.slice(0, slash))) return `${domain}/${repository}`;
  if (repository.startsWith('library/') && !repository.slice(8).includes('/')) {
    const short = repository.slice(8);
    const spelled = short + (tag !== null ? `:${tag}` : '') + (digest !== null ? `@${digest}` : '');
    // Keep `library/` when dropping it would leave a digest selector (`library/sha256:<hex>`), or
    // a bare 64-hex name that step 5 rejects (`library/<64hex>` must round-trip).
    if (!isDigest(spelled) && !HEX64_RE.test(short)) return short;
  }
  return repository;
}

/**
 * The familiar form of a string that is ALREADY canonical (as stored in `image_ref.reference`),
 * without a full re-parse: `list()` maps 10,000 rows in a few ms this way. Equals
 * `parseReference(c).familiar` for every canonical `c` (tested against the parser).
 */
export function familiarOf(canonical: string): string {
  const prefix = `${DOCKER_HUB_DOMAIN}/`;
  if (!canonical.startsWith(prefix)) return canonical;
  const rest = canonical.slice(prefix.length);
  const at = rest.indexOf('@');
  const named = at < 0 ? rest : rest.slice(0, at);
  const colon = named.indexOf(':'); // the domain is gone, so a ':' can only start the tag
  const repository = colon < 0 ? named : named.slice(0, colon);
  const tag = colon < 0 ? null : named.slice(colon + 1);
  const digest = at < 0 ? null : rest.slice(at + 1);
  return familiarName(DOCKER_HUB_DOMAIN, repository, tag, digest) + rest.slice(repository.length);
}

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const ID_PREFIX_RE = /^(?:(sha256|sha384|sha512):)?([0-9a-f]{4,128})$/;

/**
 * For get/inspect/remove/tag/save (docs/pull.md §1.2 step 9, docs/api.md §2): an input that is
 * exactly `alg:hex` (after trimming), or 64 bare hex digits (a sha256 image ID), is a manifest
 * digest selector; anything else is parsed as a reference, with `idPrefix` set when it could also
 * be a short image ID (docker looks a name up first, then an ID prefix).
 */
export function parseImageSelector(input: string): ImageSelector {
  const s = typeof input === 'string' ? input.trim() : input;
  if (isDigest(s)) return { kind: 'digest', digest: s };
  if (typeof s === 'string' && HEX64_RE.test(s)) return { kind: 'digest', digest: `sha256:${s}` };
  const m = typeof s === 'string' ? ID_PREFIX_RE.exec(s) : null;
  const alg = m ? (m[1] ?? 'sha256') : '';
  const idPrefix = m && m[2]!.length < HEX_LENGTH[alg]! ? `${alg}:${m[2]}` : null;
  return { kind: 'reference', idPrefix, ...parseReference(input) };
}

/** `name[:tag][@digest]` → `name`, for a canonical or familiar reference (a domain's `:port` is kept). */
export function referenceName(ref: string): string {
  const at = ref.indexOf('@');
  const named = at < 0 ? ref : ref.slice(0, at);
  const colon = named.lastIndexOf(':');
  return colon > named.lastIndexOf('/') ? named.slice(0, colon) : named;
}

/** docs/pull.md §1.3: the host[:port] to contact for a domain (`docker.io` → `registry-1.docker.io`). */
export function registryEndpointHost(domain: string): string {
  return domain === DOCKER_HUB_DOMAIN ? DOCKER_HUB_ENDPOINT : domain;
}

/**
 * The endpoints of a registry: its mirrors (pull-through caches) in order, then the origin.
 *
 * Where mirrors come from:
 * - `registries.hosts.<host>.mirrors` in config.json: each entry a `scheme://host[:port]` string
 *   or an object `{url, insecure?, ca_certs?, auth?, capabilities?}` (src/api/settings.ts). A plain
 *   string takes its TLS settings and credentials from the mirror host's own `hosts` entry (or the
 *   docker config), as before; an object's own fields come first.
 * - `MSB_REGISTRY_MIRRORS` for one-off runs: `host=url[,url…][;host=url…]`, e.g.
 *   `docker.io=https://m1.site:5000,https://m2.site;ghcr.io=http://127.0.0.1:5000`. A host named
 *   there has exactly these mirrors (plain URLs) instead of the configured ones; `docker.io=`
 *   turns its mirrors off. Other hosts keep their configuration.
 *
 * What a mirror is asked for (containerd hosts.toml `capabilities`, default both):
 * - `pull`: manifests by digest and blobs, i.e. everything of a digest-pinned pull and every
 *   blob of any pull;
 * - `resolve`: tag resolution (manifest by tag, HEAD for policy `always`, tags/list).
 * A tag goes to the resolve-capable mirrors first, then to the origin; whoever answered is the
 * pull's `source`. Every byte is verified against its digest wherever it came from, so a mirror
 * can serve stale tags but never inject content.
 *
 * Credentials in a mirror URL (`https://user:pass@mirror`) are used as that mirror's Basic
 * credentials and never printed: `source` and every message carry the URL without userinfo.
 */
import { MIRROR_URL_RE } from '../settings/settings.js';
import { redactUrl, SettingsError } from '../errors.js';
import { registryEndpointHost } from '../reference/reference.js';
import { configAuthCredential, resolveCredential, type CredentialContext } from './credentials.js';
import type { Capability, Credential, Endpoint, MirrorConfig, RegistryAuth, RegistrySettings } from './types.js';

export const MIRRORS_ENV = 'MSB_REGISTRY_MIRRORS';
const ALL: Capability[] = ['pull', 'resolve'];

function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function hostnameOf(host: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  return m ? m[1]! : host.replace(/:\d+$/, '');
}

function normalizeHostKey(h: string): string {
  const l = h.toLowerCase();
  return l === 'index.docker.io' || l === 'registry-1.docker.io' ? 'docker.io' : h;
}

/** Parses MSB_REGISTRY_MIRRORS (see the file comment). Messages never show a URL's userinfo. */
export function parseMirrorsEnv(value: string | undefined): Map<string, string[]> | null {
  if (value === undefined || value.trim() === '') return null;
  const out = new Map<string, string[]>();
  for (const part of value.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const host = eq < 0 ? '' : part.slice(0, eq).trim();
    if (!host || /[/@\s]/.test(host)) {
      throw new SettingsError(
        MIRRORS_ENV,
        `${MIRRORS_ENV}: ${JSON.stringify(redactUrl(part.trim()))} is not host=url[,url…]`,
      );
    }
    const urls = part
      .slice(eq + 1)
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '');
    for (const u of urls) {
      if (!MIRROR_URL_RE.test(u))
        throw new SettingsError(
          MIRRORS_ENV,
          `${MIRRORS_ENV}: mirror ${JSON.stringify(redactUrl(u))} of ${host} is not a scheme://host[:port] URL`,
        );
    }
    out.set(normalizeHostKey(host), urls);
  }
  return out;
}

/** The mirrors in force for `domain`: the environment's if it names the host, else config.json's. */
export function configuredMirrors(domain: string, settings: RegistrySettings, env: NodeJS.ProcessEnv): MirrorConfig[] {
  const fromEnv = parseMirrorsEnv(env[MIRRORS_ENV])?.get(domain);
  return fromEnv ?? settings.registries?.hosts?.[domain]?.mirrors ?? [];
}

/** The URL of a mirror entry as it may be shown: no userinfo, no trailing slash. */
export function mirrorDisplayUrl(m: MirrorConfig): string {
  return redactUrl(typeof m === 'string' ? m : m.url).replace(/\/+$/, '');
}

function mirrorEndpoint(domain: string, m: MirrorConfig, index: number, settings: RegistrySettings): Endpoint {
  const o = typeof m === 'string' ? { url: m } : m;
  const key = `registries.hosts.${domain}.mirrors[${index}]`;
  let u: URL | null = null;
  try {
    if (MIRROR_URL_RE.test(o.url)) u = new URL(o.url);
  } catch {
    /* refused below */
  }
  if (!u)
    throw new SettingsError(
      key,
      `${key}: ${JSON.stringify(redactUrl(String(o.url)))} is not a scheme://host[:port] URL`,
    );
  const scheme = u.protocol === 'http:' ? 'http' : 'https';
  const own = settings.registries?.hosts?.[u.host];
  const ep: Endpoint = {
    key: u.host,
    host: u.host,
    hostname: hostnameOf(u.host),
    isMirror: true,
    source: mirrorDisplayUrl(o.url),
    schemes: [scheme],
    insecure: scheme === 'http' || (o.insecure ?? !!own?.insecure),
    caFiles: [...(settings.registries?.caCerts ?? []), ...(own?.caCerts ?? []), ...(o.caCerts ?? [])],
    capabilities: o.capabilities?.length ? [...o.capabilities] : [...ALL],
    id: `${domain}#${index}`,
  };
  if (o.auth) ep.auth = { config: o.auth, key: `${key}.auth` };
  else if (u.username) ep.auth = { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
  return ep;
}

export interface EndpointOptions {
  env: NodeJS.ProcessEnv;
  /** Per-call `insecure` for the origin. */
  insecure?: boolean;
  /** Per-call PEM files for the origin. */
  caCerts?: string[];
}

/** Mirrors able to do `need` (in order), then the origin (docs/pull.md §1.3 for its schemes and CAs). */
export function registryEndpoints(
  domain: string,
  settings: RegistrySettings,
  need: Capability,
  opts: EndpointOptions,
): Endpoint[] {
  const out = configuredMirrors(domain, settings, opts.env)
    .map((m, i) => mirrorEndpoint(domain, m, i, settings))
    .filter((ep) => ep.capabilities.includes(need));
  const hs = settings.registries?.hosts?.[domain];
  const host = registryEndpointHost(domain);
  const hostname = hostnameOf(host);
  const insecure = !!hs?.insecure || !!opts.insecure;
  out.push({
    key: domain,
    host,
    hostname,
    isMirror: false,
    source: domain,
    schemes: insecure || isLoopbackHost(hostname) ? ['https', 'http'] : ['https'],
    insecure,
    caFiles: [...(settings.registries?.caCerts ?? []), ...(hs?.caCerts ?? []), ...(opts.caCerts ?? [])],
    capabilities: [...ALL],
    id: domain,
  });
  return out;
}

/** Cache key of an endpoint's credential: mirrors with credentials of their own are told apart. */
export function credentialKey(ep: Endpoint): string {
  return ep.isMirror ? `m|${ep.auth ? ep.id : ep.key}` : `o|${ep.key}`;
}

/**
 * The credential for an endpoint: the origin's by docs/pull.md §2.1 (explicit first); a mirror's from
 * its own `auth` or URL userinfo, else from its host's entry / docker config, never the origin's.
 */
export async function endpointCredential(
  ep: Endpoint,
  ctx: CredentialContext,
  explicit?: RegistryAuth,
): Promise<Credential> {
  if (!ep.isMirror) return (await resolveCredential(ep.key, ctx, explicit)).credential;
  if (ep.auth && 'config' in ep.auth) return configAuthCredential(ep.auth.config, ep.auth.key, ctx);
  if (ep.auth) return { kind: 'basic', username: ep.auth.username, password: ep.auth.password };
  return (await resolveCredential(ep.key, ctx)).credential;
}

/** Passwords in configured mirror URLs (for a client's message scrubber). */
export function mirrorUrlSecrets(ep: Endpoint): string[] {
  return ep.auth && 'password' in ep.auth && ep.auth.password ? [ep.auth.password] : [];
}

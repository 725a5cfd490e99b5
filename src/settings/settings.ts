/**
 * `<home>/config.json` (docs/cli.md §8, docs/api.md §7), parsed into camelCase `Settings`. A missing file
 * means the defaults; malformed JSON or a value of the wrong type is a SettingsError naming the key
 * path (e.g. `pull.timeouts.idle_ms`); unknown keys are ignored; there is never a silent fallback.
 *
 * Choices where the contract is silent:
 * - a relative `paths.cache` is resolved against the home directory;
 * - a secret file's mode is checked where it is read (registry credentials), not here, so a
 *   settings read never touches `secrets/`.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { IoError, SettingsError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import { tryParseDuration } from '../util/duration.js';
import { readSmallFileSync } from '../util/fs.js';
import { parseSize } from '../util/size.js';

/**
 * Credentials of a registry host in config.json: `username` with an inline `secret` or the name
 * of an environment variable holding it (`passwordEnv`).
 */
export interface HostAuthSettings {
  username: string;
  secret?: string;
  passwordEnv?: string;
}
/**
 * One mirror of `registries.hosts.<host>.mirrors`: a plain `scheme://host[:port]` string (its TLS
 * settings and credentials are then those of the mirror host's own `hosts` entry), or an object
 * with its own. Names follow containerd's hosts.toml where this file has no word of its own:
 * `capabilities` as in hosts.toml (`pull`: blobs and manifests by digest; `resolve`: tags), while
 * `insecure`, `ca_certs` and `auth` have the same meaning as on a host entry.
 */
export interface MirrorSettings {
  url: string;
  /** Plain HTTP / unverified TLS for this mirror. Absent: the mirror host's entry decides. */
  insecure?: boolean;
  /** PEM files trusted for this mirror, besides `registries.ca_certs` and its host entry's. */
  caCerts?: string[];
  /** Credentials for this mirror only (else the mirror host's entry, docker config, anonymous). */
  auth?: HostAuthSettings | null;
  /** Default `["pull", "resolve"]`. */
  capabilities?: MirrorCapability[];
}
/** What a mirror may serve: `pull` (blobs and manifests by digest), `resolve` (tags). */
export type MirrorCapability = 'pull' | 'resolve';
/** A mirror: a plain `scheme://host[:port]` URL, or a MirrorSettings object. */
export type MirrorEntry = string | MirrorSettings;
/** Settings of one registry host (`registries.hosts.<host>`): TLS, credentials, mirrors, CAs. */
export interface HostSettings {
  insecure: boolean;
  auth: HostAuthSettings | null;
  mirrors: MirrorEntry[];
  caCerts: string[];
}
/** The resolved config.json (docs/api.md §7), overlaid with `LocalBackendOptions.settings`. */
export interface Settings {
  paths: { cache: string | null };
  registries: { caCerts: string[]; credHelperTimeoutMs: number; hosts: Record<string, HostSettings> };
  pull: {
    concurrency: number;
    retries: number;
    maxLayers: number;
    timeouts: { connectMs: number; headersMs: number; idleMs: number };
  };
  prune: { tempGrace: string | number };
  /**
   * The size budget (docs/storage.md §11), off by default: `maxBytes` of allocated cache bytes,
   * and/or kubelet-style watermarks, percent of the cache's file system in use.
   */
  cache: { maxBytes: number | null; highWatermark: number | null; lowWatermark: number | null };
}

export const DEFAULT_TEMP_GRACE = '1h';

export function defaultSettings(): Settings {
  return {
    paths: { cache: null },
    registries: { caCerts: [], credHelperTimeoutMs: 30_000, hosts: {} },
    pull: {
      concurrency: 4,
      retries: 5,
      maxLayers: 1000,
      timeouts: { connectMs: 30_000, headersMs: 30_000, idleMs: 60_000 },
    },
    prune: { tempGrace: DEFAULT_TEMP_GRACE },
    cache: { maxBytes: null, highWatermark: null, lowWatermark: null },
  };
}

type Json = unknown;

class Parser {
  constructor(readonly file: string) {}
  fail(key: string, expected: string): never {
    throw new SettingsError(this.file, `${this.file}: ${key}: expected ${expected}`);
  }
  obj(v: Json, key: string): Record<string, Json> | undefined {
    if (v === undefined) return undefined;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'an object');
    return v as Record<string, Json>;
  }
  str(v: Json, key: string): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }
  bool(v: Json, key: string): boolean | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }
  posInt(v: Json, key: string, min = 1): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }
  strArray(v: Json, key: string): string[] | undefined {
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) this.fail(key, 'an array of strings');
    return v.map((x, i) => {
      if (typeof x !== 'string') this.fail(`${key}[${i}]`, 'a string');
      return x;
    });
  }
}

function parseAuth(p: Parser, v: Json, key: string): HostAuthSettings | null {
  const auth = p.obj(v, key);
  if (!auth) return null;
  const username = p.str(auth.username, `${key}.username`) ?? p.fail(`${key}.username`, 'a string');
  const secret = p.str(auth.secret, `${key}.secret`);
  const passwordEnv = p.str(auth.password_env, `${key}.password_env`);
  if ((secret === undefined) === (passwordEnv === undefined)) p.fail(key, 'exactly one of "secret" or "password_env"');
  return {
    username,
    ...(secret !== undefined ? { secret } : {}),
    ...(passwordEnv !== undefined ? { passwordEnv } : {}),
  };
}

/** `scheme://[user[:password]@]host[:port][/]`: the one rule for a mirror URL (config and MSB_REGISTRY_MIRRORS). */
export const MIRROR_URL_RE = /^https?:\/\/[^/?#]+\/?$/;

/** A mirror list: plain URL strings stay strings (backwards compatible), objects are validated. */
function parseMirrors(p: Parser, v: Json, key: string): MirrorEntry[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) p.fail(key, 'an array of mirror URLs or {"url": …} objects');
  return v.map((m, i): MirrorEntry => {
    const k = `${key}[${i}]`;
    if (typeof m === 'string') {
      if (!MIRROR_URL_RE.test(m)) p.fail(k, 'a scheme://host[:port] URL');
      return m;
    }
    const o = p.obj(m, k) ?? p.fail(k, 'a URL string or an object');
    const url = p.str(o.url, `${k}.url`) ?? p.fail(`${k}.url`, 'a scheme://host[:port] URL');
    if (!MIRROR_URL_RE.test(url)) p.fail(`${k}.url`, 'a scheme://host[:port] URL');
    const out: MirrorSettings = { url };
    const insecure = p.bool(o.insecure, `${k}.insecure`);
    if (insecure !== undefined) out.insecure = insecure;
    const ca = p.strArray(o.ca_certs, `${k}.ca_certs`);
    if (ca !== undefined) out.caCerts = ca;
    const auth = parseAuth(p, o.auth, `${k}.auth`);
    if (auth) out.auth = auth;
    const caps = p.strArray(o.capabilities, `${k}.capabilities`);
    if (caps !== undefined) {
      caps.forEach((c, j) => {
        if (c !== 'pull' && c !== 'resolve') p.fail(`${k}.capabilities[${j}]`, '"pull" or "resolve"');
      });
      if (caps.length === 0) p.fail(`${k}.capabilities`, 'at least one of "pull", "resolve"');
      out.capabilities = [...new Set(caps)] as MirrorCapability[];
    }
    return out;
  });
}

/** Parses the JSON text of a config file. `file` names it in errors. */
export function parseSettings(text: string, file: string, home: string): Settings {
  let root: Json;
  try {
    root = JSON.parse(text);
  } catch (err) {
    throw new SettingsError(file, `${file}: malformed JSON: ${(err as Error).message}`);
  }
  const p: Parser = new Parser(file);
  const top = p.obj(root, '(top level)') ?? {};
  const s = defaultSettings();

  const paths = p.obj(top.paths, 'paths');
  if (paths) {
    const cache = p.str(paths.cache, 'paths.cache');
    if (cache !== undefined) {
      if (cache === '') p.fail('paths.cache', 'a non-empty path');
      s.paths.cache = isAbsolute(cache) ? cache : resolve(home, cache);
    }
  }

  const reg = p.obj(top.registries, 'registries');
  if (reg) {
    s.registries.caCerts = p.strArray(reg.ca_certs, 'registries.ca_certs') ?? [];
    s.registries.credHelperTimeoutMs =
      p.posInt(reg.cred_helper_timeout_ms, 'registries.cred_helper_timeout_ms') ?? s.registries.credHelperTimeoutMs;
    const hosts = p.obj(reg.hosts, 'registries.hosts') ?? {};
    for (const [host, raw] of Object.entries(hosts)) {
      const k = `registries.hosts.${host}`;
      const h = p.obj(raw, k) ?? {};
      const hs: HostSettings = {
        insecure: p.bool(h.insecure, `${k}.insecure`) ?? false,
        auth: parseAuth(p, h.auth, `${k}.auth`),
        mirrors: parseMirrors(p, h.mirrors, `${k}.mirrors`),
        caCerts: p.strArray(h.ca_certs, `${k}.ca_certs`) ?? [],
      };
      s.registries.hosts[host] = hs;
    }
  }

  const pull = p.obj(top.pull, 'pull');
  if (pull) {
    s.pull.concurrency = p.posInt(pull.concurrency, 'pull.concurrency') ?? s.pull.concurrency;
    s.pull.retries = p.posInt(pull.retries, 'pull.retries') ?? s.pull.retries;
    s.pull.maxLayers = p.posInt(pull.max_layers, 'pull.max_layers') ?? s.pull.maxLayers;
    const t = p.obj(pull.timeouts, 'pull.timeouts');
    if (t) {
      s.pull.timeouts.connectMs = p.posInt(t.connect_ms, 'pull.timeouts.connect_ms') ?? s.pull.timeouts.connectMs;
      s.pull.timeouts.headersMs = p.posInt(t.headers_ms, 'pull.timeouts.headers_ms') ?? s.pull.timeouts.headersMs;
      s.pull.timeouts.idleMs = p.posInt(t.idle_ms, 'pull.timeouts.idle_ms') ?? s.pull.timeouts.idleMs;
    }
  }

  const prune = p.obj(top.prune, 'prune');
  if (prune && prune.temp_grace !== undefined) {
    if (tryParseDuration(prune.temp_grace) === null) p.fail('prune.temp_grace', 'a duration like "1h" or milliseconds');
    s.prune.tempGrace = prune.temp_grace as string | number;
  }
  parseCache(p, top.cache, s);
  return s;
}

/**
 * The text of a JSON settings file (config.json, the docker config) through the one small-file
 * reader: never blocks on a FIFO, never reads a device, at most `configFileBytes` (LIMIT_EXCEEDED
 * beyond). null when it does not exist; any other failure is SettingsError naming the file.
 */
export function readConfigText(file: string): string | null {
  try {
    return readSmallFileSync(file, {
      maxBytes: FIXED_LIMITS.configFileBytes,
      limitName: 'configFileBytes',
    }).data.toString('utf8');
  } catch (err) {
    if (!(err instanceof IoError)) throw err;
    if (err.errno === 'ENOENT' || err.errno === 'ENOTDIR') return null;
    throw new SettingsError(file, `${file}: cannot read: ${err.errno === 'EINVAL' ? err.message : err.errno}`);
  }
}

/** `cache.max_bytes` ("20GiB" or bytes) and `cache.high_watermark` / `cache.low_watermark` (percent). */
function parseCache(p: Parser, v: Json, s: Settings): void {
  const cache = p.obj(v, 'cache');
  if (!cache) return;
  if (cache.max_bytes !== undefined) {
    const n = parseSize(cache.max_bytes);
    if (n === null || n < 1) p.fail('cache.max_bytes', 'a size like "20GiB", "500MB" or a number of bytes ≥ 1');
    s.cache.maxBytes = n;
  }
  const pct = (x: Json, key: string): number | null => {
    if (x === undefined) return null;
    if (typeof x !== 'number' || !(x > 0 && x <= 100)) p.fail(key, 'a percentage above 0 and at most 100');
    return x;
  };
  const high = pct(cache.high_watermark, 'cache.high_watermark');
  const low = pct(cache.low_watermark, 'cache.low_watermark');
  if (low !== null && high === null) p.fail('cache.low_watermark', 'to be set together with cache.high_watermark');
  if (low !== null && high !== null && low > high)
    p.fail('cache.low_watermark', `at most cache.high_watermark (${high})`);
  s.cache.highWatermark = high;
  s.cache.lowWatermark = high === null ? null : (low ?? high);
}

/** Reads `<home>/config.json`; a missing file means the defaults. */
export function readSettings(home: string): Settings {
  const file = join(home, 'config.json');
  const text = readConfigText(file);
  return text === null ? defaultSettings() : parseSettings(text, file, home);
}

/** Deep overlay of a partial Settings (builder / options) on parsed settings. */
export function overlaySettings(base: Settings, over: Partial<Settings> | undefined): Settings {
  if (!over) return base;
  const out = structuredClone(base);
  const merge = (dst: Record<string, unknown>, src: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(src)) {
      if (v === undefined) continue;
      const d = dst[k];
      if (v && typeof v === 'object' && !Array.isArray(v) && d && typeof d === 'object' && !Array.isArray(d))
        merge(d as Record<string, unknown>, v as Record<string, unknown>);
      else dst[k] = v;
    }
  };
  merge(out as unknown as Record<string, unknown>, over as unknown as Record<string, unknown>);
  return out;
}

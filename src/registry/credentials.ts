/**
 * Credential sources (docs/pull.md §2.1), first match wins, per registry host:
 *   1. the explicit `auth` option (origin only: mirrors use their own host's credentials);
 *   2. `<home>/config.json` → `registries.hosts.<host>.auth` (`secret` file or `password_env`);
 *   3. the docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
 *      `credHelpers[<key>]`, else `credsStore`, run as `docker-credential-<name> get`; else
 *      `auths[<key>]`;
 *   4. anonymous.
 * A mirror with credentials of its own (an `auth` object or URL userinfo) uses them instead of
 * sources 2–4 (src/registry/mirrors.ts).
 *
 * Choices where docs/pull.md is silent:
 * - A malformed docker config is a SettingsError naming it (docker itself refuses to start).
 * - A helper that fails other than "credentials not found", times out or prints more than
 *   64 KiB is RegistryAuthError (its stderr is discarded, its stdout never shown).
 * - The key passed to `credsStore` is the first key variant (`https://index.docker.io/v1/` for
 *   Docker Hub, else `<host>`), as docker does.
 * - `auths[<key>]` with `username` + `password` fields (no `auth`) is accepted too.
 */
import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { IoError, RegistryAuthError, SettingsError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import { readConfigText } from '../settings/settings.js';
import { readSmallFileSync } from '../util/fs.js';
import type { ConfigAuth, Credential, CredentialSource, RegistryAuth, RegistrySettings } from './types.js';

export const HELPER_NAME_RE = /^[A-Za-z0-9_.-]+$/;
export const HELPER_STDOUT_MAX = 64 * 1024;
const DOCKER_HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

/** Keys tried in the docker config for a host (docs/pull.md §2.1). */
export function dockerConfigKeys(host: string): string[] {
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') return DOCKER_HUB_KEYS;
  return [host, `https://${host}`, `http://${host}`];
}

export interface ResolvedCredential {
  credential: Credential;
  source: CredentialSource;
}

export interface CredentialContext {
  home: string;
  settings: RegistrySettings;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
}

/** Converts the docs/api.md `RegistryAuth` option into a Credential. */
export function explicitCredential(auth: RegistryAuth): Credential {
  if ('anonymous' in auth && auth.anonymous) return { kind: 'anonymous' };
  if ('registryToken' in auth) return { kind: 'token', token: auth.registryToken };
  if ('username' in auth) return { kind: 'basic', username: auth.username, password: auth.password };
  throw new SettingsError('auth', 'auth must be {username, password}, {anonymous: true} or {registryToken}');
}

/** Resolves the credential for `host` (a settings/docker key: `host[:port]`, Docker Hub = `docker.io`). */
export async function resolveCredential(
  host: string,
  ctx: CredentialContext,
  explicit?: RegistryAuth,
): Promise<ResolvedCredential> {
  if (explicit) return { credential: explicitCredential(explicit), source: 'explicit' };
  const fromHome = homeConfigCredential(host, ctx);
  if (fromHome) return { credential: fromHome, source: 'config' };
  const docker = await dockerConfigCredential(host, ctx);
  if (docker) return docker;
  return { credential: { kind: 'anonymous' }, source: 'anonymous' };
}

/** Source 2: `<home>/config.json` → registries.hosts.<host>.auth. */
export function homeConfigCredential(host: string, ctx: CredentialContext): Credential | null {
  const auth = ctx.settings.registries?.hosts?.[host]?.auth;
  if (!auth) return null;
  return configAuthCredential(auth, `registries.hosts.${host}.auth`, ctx);
}

/** An `auth` object of config.json (a host's or a mirror's, named `key` in errors) as a Basic credential. */
export function configAuthCredential(auth: ConfigAuth, key: string, ctx: CredentialContext): Credential {
  const hasSecret = auth.secret !== undefined;
  const hasEnv = auth.passwordEnv !== undefined;
  if (hasSecret === hasEnv) throw new SettingsError(key, `${key}: needs exactly one of "secret" or "password_env"`);
  if (hasEnv) {
    const v = ctx.env[auth.passwordEnv!];
    if (v === undefined || v === '')
      throw new SettingsError(key, `${key}.password_env: environment variable ${auth.passwordEnv} is not set`);
    return { kind: 'basic', username: auth.username, password: v };
  }
  return { kind: 'basic', username: auth.username, password: readSecretFile(ctx.home, auth.secret!, key) };
}

/**
 * Reads `<home>/secrets/<rel>`: it must stay under secrets/, must not be a symlink (O_NOFOLLOW),
 * must be a regular file (never a FIFO or a device: the one small-file reader) of at most
 * `secretFileBytes`, with no group/other permission bits. Content is trimmed.
 */
export function readSecretFile(home: string, rel: string, key = 'secret'): string {
  const dir = resolve(home, 'secrets');
  const path = resolve(dir, rel);
  const r = relative(dir, path);
  if (isAbsolute(rel) || r === '' || r.startsWith('..') || isAbsolute(r)) {
    throw new SettingsError(key, `${key}.secret must be a path under ${dir}`);
  }
  let file: { data: Buffer; mode: number };
  try {
    file = readSmallFileSync(path, {
      maxBytes: FIXED_LIMITS.secretFileBytes,
      limitName: 'secretFileBytes',
      noFollow: true,
    });
  } catch (e) {
    if (!(e instanceof IoError)) throw e;
    const why = e.errno === 'ELOOP' ? 'it is a symlink' : e.errno === 'EINVAL' ? 'it is not a regular file' : e.errno;
    throw new SettingsError(key, `${key}.secret: cannot open ${path}: ${why}`);
  }
  if ((file.mode & 0o077) !== 0) {
    throw new SettingsError(
      key,
      `${key}.secret: ${path} has mode ${(file.mode & 0o777).toString(8).padStart(4, '0')}; it must be 0600 or stricter`,
    );
  }
  const v = file.data.toString('utf8').trim();
  if (v === '') throw new SettingsError(key, `${key}.secret: ${path} is empty`);
  return v;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Path of the docker config file (DOCKER_CONFIG, else ~/.docker). */
export function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(env.HOME || homedir(), '.docker', 'config.json');
}

export function readDockerConfig(env: NodeJS.ProcessEnv): { path: string; config: DockerConfig } | null {
  const path = dockerConfigPath(env);
  const text = readConfigText(path);
  if (text === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new SettingsError(path, `${path}: malformed JSON`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SettingsError(path, `${path}: expected a JSON object`);
  return { path, config: v as DockerConfig };
}

/** Source 3: the docker config. */
export async function dockerConfigCredential(host: string, ctx: CredentialContext): Promise<ResolvedCredential | null> {
  const dc = readDockerConfig(ctx.env);
  if (!dc) return null;
  const { config, path } = dc;
  const keys = dockerConfigKeys(host);
  let helper: string | undefined;
  let helperKey = keys[0]!;
  if (config.credHelpers && typeof config.credHelpers === 'object') {
    for (const k of keys) {
      const h = config.credHelpers[k];
      if (typeof h === 'string') {
        helper = h;
        helperKey = k;
        break;
      }
    }
  }
  if (helper === undefined && typeof config.credsStore === 'string' && config.credsStore !== '')
    helper = config.credsStore;
  if (helper !== undefined) {
    const c = await runCredentialHelper(helper, helperKey, {
      timeoutMs: ctx.settings.registries?.credHelperTimeoutMs ?? 30_000,
      env: ctx.env,
      registry: host,
      configPath: path,
      signal: ctx.signal,
    });
    if (c) return { credential: c, source: 'docker-helper' };
  }
  const auths = config.auths && typeof config.auths === 'object' ? config.auths : {};
  for (const k of keys) {
    const a = auths[k];
    if (!a || typeof a !== 'object') continue;
    if (typeof a.identitytoken === 'string' && a.identitytoken) {
      const user = typeof a.auth === 'string' ? (decodeAuth(a.auth, path, k)?.username ?? '') : (a.username ?? '');
      return {
        credential: { kind: 'identity', username: user, identityToken: a.identitytoken },
        source: 'docker-auths',
      };
    }
    if (typeof a.auth === 'string' && a.auth) {
      const d = decodeAuth(a.auth, path, k);
      if (d) return { credential: toCredential(d.username, d.password), source: 'docker-auths' };
    }
    if (typeof a.username === 'string' && typeof a.password === 'string') {
      return { credential: toCredential(a.username, a.password), source: 'docker-auths' };
    }
  }
  return null;
}

function decodeAuth(b64: string, path: string, key: string): { username: string; password: string } | null {
  const s = Buffer.from(b64, 'base64').toString('utf8');
  const i = s.indexOf(':');
  if (i < 0)
    throw new SettingsError(path, `${path}: auths[${JSON.stringify(key)}].auth is not base64 of user:password`);
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

/** Username `<token>` marks an OAuth2 refresh token (docs/pull.md §2.1). */
function toCredential(username: string, secret: string): Credential {
  if (username === '<token>') return { kind: 'identity', username: '', identityToken: secret };
  return { kind: 'basic', username, password: secret };
}

/**
 * Runs `docker-credential-<name> get` with `serverKey` on stdin. Returns null for "credentials
 * not found". The name is validated before anything runs; stderr is discarded; stdout is capped
 * at 64 KiB; the child is killed at `timeoutMs`. Node opens its own descriptors close-on-exec,
 * and only the three pipes are given to the child.
 */
export async function runCredentialHelper(
  name: string,
  serverKey: string,
  opts: {
    timeoutMs: number;
    env: NodeJS.ProcessEnv;
    registry: string;
    configPath?: string;
    signal?: AbortSignal | undefined;
  },
): Promise<Credential | null> {
  const where = opts.configPath ?? 'docker config';
  if (!HELPER_NAME_RE.test(name)) {
    throw new SettingsError(
      where,
      `credential helper name ${JSON.stringify(name)} is invalid (allowed: [A-Za-z0-9_.-]+)`,
    );
  }
  const bin = `docker-credential-${name}`;
  const result = await runHelperProcess(bin, serverKey, opts.timeoutMs, opts.env, opts.signal);
  return helperAnswer(result, bin, { registry: opts.registry, where, timeoutMs: opts.timeoutMs });
}

/** How a helper process ended: its exit code and stdout, or why it was not heard out. */
export interface HelperRun {
  code: number | null;
  stdout: Buffer;
  /** `timeout`, `aborted`, `stdout over 64 KiB`, or a spawn errno (`ENOENT`…). */
  error?: string;
}

/** Spawns the helper with `input` on stdin; never rejects (failures are in `error`). */
function runHelperProcess(
  bin: string,
  input: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal | undefined,
): Promise<HelperRun> {
  return new Promise<HelperRun>((done) => {
    const failed = (error: string): HelperRun => ({ code: null, stdout: Buffer.alloc(0), error });
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(bin, ['get'], { stdio: ['pipe', 'pipe', 'ignore'], env, shell: false, windowsHide: true });
    } catch (e) {
      done(failed((e as NodeJS.ErrnoException).code ?? 'spawn failed'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: HelperRun) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      done(r);
    };
    const kill = (why: string) => {
      child.kill('SIGKILL');
      finish(failed(why));
    };
    const timer = setTimeout(() => kill('timeout'), timeoutMs);
    const onAbort = () => kill('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => finish(failed(e.code ?? 'spawn failed')));
    child.stdout!.on('data', (b: Buffer) => {
      size += b.length;
      if (size > HELPER_STDOUT_MAX) return kill('stdout over 64 KiB');
      chunks.push(b);
    });
    child.stdout!.on('error', (e: NodeJS.ErrnoException) => kill(e.code ?? 'stdout read failed'));
    child.on('close', (code) => finish({ code, stdout: Buffer.concat(chunks) }));
    child.stdin!.on('error', () => {
      /* the helper may exit before reading stdin */
    });
    child.stdin!.end(`${input}\n`);
  });
}

/**
 * What a helper's run means (pure): a credential, null for "credentials not found" (or an
 * abort), SettingsError when the helper is not installed, RegistryAuthError for anything else.
 * Its output is never quoted in a message: it may hold the secret.
 */
export function helperAnswer(
  r: HelperRun,
  bin: string,
  at: { registry: string; where: string; timeoutMs: number },
): Credential | null {
  if (r.error === 'ENOENT') throw new SettingsError(at.where, `credential helper ${bin} was not found on PATH`);
  if (r.error === 'aborted') return null;
  if (r.error === 'timeout') {
    const msg = `credential helper ${bin} did not finish within ${at.timeoutMs} ms and was killed`;
    throw new RegistryAuthError(at.registry, 0, msg);
  }
  if (r.error) throw new RegistryAuthError(at.registry, 0, `credential helper ${bin} failed: ${r.error}`);
  const out = r.stdout.toString('utf8');
  if (r.code !== 0) {
    if (/credentials not found/i.test(out)) return null;
    throw new RegistryAuthError(at.registry, 0, `credential helper ${bin} exited with status ${r.code}`);
  }
  let v: { Username?: unknown; Secret?: unknown } | null;
  try {
    v = JSON.parse(out) as typeof v;
  } catch {
    throw new RegistryAuthError(at.registry, 0, `credential helper ${bin} printed something that is not JSON`);
  }
  if (typeof v?.Secret !== 'string' || typeof v.Username !== 'string') {
    throw new RegistryAuthError(at.registry, 0, `credential helper ${bin} returned no Username/Secret`);
  }
  return toCredential(v.Username, v.Secret);
}

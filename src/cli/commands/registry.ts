/**
 * `msb registry login | logout | ls` (docs/cli.md §7). main passes the verb as args[0].
 *
 * - login checks the credentials first (ping + Basic 2xx, or a Bearer token fetched with them),
 *   then, under `<home>/config.lock`, writes the password to `<home>/secrets/registries/<host-key>`
 *   (0600 in 0700 directories, temp + fsync + rename) and rewrites `config.json` atomically (0600,
 *   other keys and their order kept). The password is never printed, logged or put in an error.
 * - logout removes the `auth` entry and its secret file under the same lock; docker config
 *   credentials are never touched.
 * - ls lists `registries.hosts` and hosts with docker-config credentials; never a secret.
 *
 * Choices where docs/cli.md is silent:
 * - HOST may be written with an `http(s)://` prefix and a trailing `/` (as `docker login`
 *   accepts); it must otherwise be a registry domain (`host[:port]` with a `.` or `:`, or
 *   `localhost`); `index.docker.io` and `docker.io` become `docker.io`.
 * - `<host-key>` is the host with every character outside `[A-Za-z0-9._-]` replaced by `_`
 *   (`127.0.0.1:5001` → `127.0.0.1_5001`).
 * - Without `-u`, the username is prompted for on a TTY (exit 2 without one).
 * - logout drops a host entry that is left empty.
 */
import { mkdirSync, unlinkSync, chmodSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { InvalidArgumentError, toIoError } from '../../errors.js';
import { parseSettings, readConfigText, readSettings } from '../../settings/settings.js';
import { acquireFileLock } from '../../util/flock.js';
import { writeFileAtomicSync } from '../../util/fs.js';
import { parseReference } from '../../reference/reference.js';
import { RegistryClient } from '../../registry/client.js';
import { readDockerConfig } from '../../registry/credentials.js';
import { configuredMirrors, mirrorDisplayUrl, MIRRORS_ENV, parseMirrorsEnv } from '../../registry/mirrors.js';
import { FORMAT_FLAG, formatValue, type CommandSpec, type ParsedArgs } from '../command.js';
import { UsageError, type CliContext } from '../context.js';
import { table, writeJson } from '../format.js';

function homeOf(ctx: CliContext): string {
  if (ctx.home) return resolve(ctx.home);
  const h = ctx.env.MSB_HOME?.trim();
  return h ? resolve(h) : join(homedir(), '.msb-image');
}

/** docs/cli.md §7 step 1: validate and normalize HOST. */
export function normalizeRegistryHost(input: string): string {
  let h = input
    .trim()
    .replace(/^https?:\/\//i, '')
    .replace(/\/+$/, '');
  if (h.toLowerCase() === 'index.docker.io/v1') h = 'docker.io';
  const lower = h.toLowerCase();
  if (lower === 'docker.io' || lower === 'index.docker.io' || lower === 'registry-1.docker.io') return 'docker.io';
  if (!h || h.includes('/') || h.includes('@'))
    throw new InvalidArgumentError('host', `invalid registry host ${JSON.stringify(input)}`);
  let domain: string;
  try {
    domain = parseReference(`${h}/x`).domain;
  } catch {
    throw new InvalidArgumentError('host', `invalid registry host ${JSON.stringify(input)}`);
  }
  if (domain === 'docker.io' && lower !== 'docker.io') {
    throw new InvalidArgumentError(
      'host',
      `invalid registry host ${JSON.stringify(input)}: it must contain '.' or ':' or be 'localhost'`,
    );
  }
  return domain;
}

export function hostKey(host: string): string {
  return host.replace(/[^A-Za-z0-9._-]/g, '_');
}

// ───────────────────────────── input ─────────────────────────────

async function readAll(stream: NodeJS.ReadableStream, max = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream as AsyncIterable<Buffer | string>) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    n += b.length;
    if (n > max) throw new InvalidArgumentError('password', 'the password on stdin is larger than 1 MiB');
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads one line from the TTY; with `hidden`, echo is off (raw mode, nothing echoed). */
async function promptLine(ctx: CliContext, label: string, hidden: boolean): Promise<string> {
  const input = ctx.stdin as NodeJS.ReadStream;
  ctx.stderr.write(label);
  const raw = hidden && typeof input.setRawMode === 'function';
  if (raw) input.setRawMode(true);
  input.resume();
  try {
    return await new Promise<string>((done, fail) => {
      let buf = '';
      const onData = (d: Buffer | string) => {
        for (const ch of d.toString()) {
          if (ch === '\r' || ch === '\n') {
            cleanup();
            if (hidden) ctx.stderr.write('\n');
            done(buf);
            return;
          }
          if (ch === '\u0003') {
            cleanup();
            fail(new UsageError('interrupted'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') {
            buf = buf.slice(0, -1);
            continue;
          }
          buf += ch;
        }
      };
      const onEnd = () => {
        cleanup();
        done(buf);
      };
      const cleanup = () => {
        input.off('data', onData);
        input.off('end', onEnd);
      };
      input.on('data', onData);
      input.on('end', onEnd);
    });
  } finally {
    if (raw) input.setRawMode(false);
    input.pause();
  }
}

// ───────────────────────────── files ─────────────────────────────

/** mkdir -p with mode 0700 for the directories we create, and chmod 0700 on the final one. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

type JsonObject = Record<string, unknown>;

function readConfigRaw(home: string): JsonObject {
  const file = join(home, 'config.json');
  const text = readConfigText(file);
  if (text === null) return {};
  parseSettings(text, file, home); // the same validation as every other reader
  const v = JSON.parse(text) as unknown;
  return v as JsonObject;
}

function writeConfigRaw(home: string, obj: JsonObject): void {
  const text = JSON.stringify(obj, null, 2) + '\n';
  const file = join(home, 'config.json');
  parseSettings(text, file, home); // never write a file we would refuse to read
  writeFileAtomicSync(file, text);
}

function childObject(parent: JsonObject, key: string): JsonObject {
  const v = parent[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as JsonObject;
  const o: JsonObject = {};
  parent[key] = o;
  return o;
}

async function withConfigLock<T>(home: string, ctx: CliContext, fn: () => T): Promise<T> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const lock = await acquireFileLock(join(home, 'config.lock'), { signal: ctx.signal });
  try {
    return fn();
  } finally {
    lock.release();
  }
}

// ───────────────────────────── verbs ─────────────────────────────

async function login({ values, positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('msb registry login needs exactly one HOST', usage);
  const host = normalizeRegistryHost(positionals[0]!);
  const home = homeOf(ctx);
  const tty = !!ctx.stdin.isTTY;

  let username = values.username as string | undefined;
  if (username === undefined) {
    if (!tty || values['password-stdin'])
      throw new UsageError('-u USER is required when stdin is not a terminal', usage);
    username = (await promptLine(ctx, 'Username: ', false)).trim();
  }
  if (!username) throw new UsageError('the username is empty', usage);
  let password: string;
  if (values['password-stdin']) {
    password = (await readAll(ctx.stdin)).replace(/\r?\n$/, '');
  } else {
    if (!tty) throw new UsageError('no terminal to prompt for the password: use --password-stdin', usage);
    password = await promptLine(ctx, 'Password: ', true);
  }
  if (!password) throw new UsageError('the password is empty', usage);

  // Step 3: check first; nothing is written on failure (RegistryAuthError → exit 5).
  const settings = readSettings(home);
  const client = new RegistryClient({ home, settings, auth: { username, password }, env: ctx.env, signal: ctx.signal });
  try {
    await client.checkLogin(host, ctx.signal);
  } finally {
    await client.close();
  }

  const rel = `registries/${hostKey(host)}`;
  await withConfigLock(home, ctx, () => {
    const secretsDir = join(home, 'secrets');
    ensurePrivateDir(secretsDir);
    ensurePrivateDir(join(secretsDir, 'registries'));
    writeFileAtomicSync(join(secretsDir, rel), password + '\n');
    const cfg = readConfigRaw(home);
    const hosts = childObject(childObject(cfg, 'registries'), 'hosts');
    const h = childObject(hosts, host);
    h.auth = { username, secret: rel };
    writeConfigRaw(home, cfg);
  });
  ctx.stdout.write(`Login succeeded for ${host}\n`);
  return 0;
}

async function logout({ positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('msb registry logout needs exactly one HOST', usage);
  const host = normalizeRegistryHost(positionals[0]!);
  const home = homeOf(ctx);
  const removed = await withConfigLock(home, ctx, () => {
    const cfg = readConfigRaw(home);
    const reg = cfg.registries as JsonObject | undefined;
    const hosts = reg?.hosts as JsonObject | undefined;
    const h = hosts?.[host] as JsonObject | undefined;
    const auth = h?.auth as { secret?: unknown } | undefined;
    if (!hosts || !h || !auth) return false;
    delete h.auth;
    if (Object.keys(h).length === 0) delete hosts[host];
    writeConfigRaw(home, cfg);
    if (typeof auth.secret === 'string') {
      const dir = join(home, 'secrets');
      const p = resolve(dir, auth.secret);
      const r = relative(dir, p);
      if (r && !r.startsWith('..')) {
        try {
          unlinkSync(p);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(e, p);
        }
      }
    }
    return true;
  });
  ctx.stdout.write(removed ? `Removed login credentials for ${host}\n` : `Not logged in to ${host}\n`);
  return 0;
}

export interface RegistryListEntry {
  host: string;
  username: string | null;
  /** `secret`, `env:<VAR>`, `docker-config` or `-`. */
  auth: string;
  insecure: boolean;
  /** The mirror URLs in force (MSB_REGISTRY_MIRRORS included), without userinfo. */
  mirrors: string[];
  caCerts: string[];
}

/** Docker config keys → registry hosts (`https://index.docker.io/v1/` → `docker.io`). */
function dockerKeyHost(key: string): string | null {
  try {
    return normalizeRegistryHost(key.replace(/^(https?:\/\/[^/]+)\/.*$/i, '$1'));
  } catch {
    return null;
  }
}

async function ls({ values, positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length) throw new UsageError('msb registry ls takes no arguments', usage);
  const format = formatValue(values.format, usage);
  const home = homeOf(ctx);
  const settings = readSettings(home);
  const entries = new Map<string, RegistryListEntry>();
  for (const [host, h] of Object.entries(settings.registries.hosts)) {
    entries.set(host, {
      host,
      username: h.auth?.username ?? null,
      auth: h.auth ? (h.auth.secret !== undefined ? 'secret' : `env:${h.auth.passwordEnv}`) : '-',
      insecure: h.insecure,
      mirrors: [],
      caCerts: h.caCerts,
    });
  }
  // The mirrors in force (MSB_REGISTRY_MIRRORS included), shown without userinfo.
  for (const host of new Set([...entries.keys(), ...(parseMirrorsEnv(ctx.env[MIRRORS_ENV])?.keys() ?? [])])) {
    const e = entries.get(host) ?? { host, username: null, auth: '-', insecure: false, mirrors: [], caCerts: [] };
    e.mirrors = configuredMirrors(host, settings, ctx.env).map(mirrorDisplayUrl);
    entries.set(host, e);
  }
  const dc = readDockerConfig(ctx.env);
  if (dc) {
    const add = (key: string, username: string | null) => {
      const host = dockerKeyHost(key);
      if (!host) return;
      const e = entries.get(host);
      if (e) {
        if (e.auth === '-') {
          e.auth = 'docker-config';
          e.username = username;
        }
        return;
      }
      entries.set(host, { host, username, auth: 'docker-config', insecure: false, mirrors: [], caCerts: [] });
    };
    for (const [k, a] of Object.entries(dc.config.auths ?? {})) {
      let user: string | null = null;
      if (a && typeof a.auth === 'string') {
        const s = Buffer.from(a.auth, 'base64').toString('utf8');
        const i = s.indexOf(':');
        if (i > 0 && s.slice(0, i) !== '<token>') user = s.slice(0, i);
      } else if (a && typeof a.username === 'string') user = a.username;
      if (a && (a.auth || a.identitytoken || a.password)) add(k, user);
    }
    for (const k of Object.keys(dc.config.credHelpers ?? {})) add(k, null);
  }
  const list = [...entries.values()].sort((a, b) => a.host.localeCompare(b.host));
  if (format === 'json') {
    writeJson(ctx, list);
    return 0;
  }
  ctx.stdout.write(
    table(
      ['HOST', 'USERNAME', 'AUTH', 'INSECURE', 'MIRRORS', 'CA_CERTS'],
      list.map((e) => [
        e.host,
        e.username ?? '-',
        e.auth,
        e.insecure ? 'yes' : 'no',
        e.mirrors.length ? e.mirrors.join(',') : '-',
        e.caCerts.length ? e.caCerts.join(',') : '-',
      ]),
    ),
  );
  return 0;
}

export const commands: CommandSpec[] = [
  {
    name: 'registry login',
    summary: 'Store credentials for a registry',
    synopsis: 'registry login [-u USER] [--password-stdin] HOST',
    description:
      'Checks the credentials against HOST, then stores them: the password goes to\n<home>/secrets/registries/<host> (mode 0600) and config.json names it. Without\n--password-stdin the password is prompted for on the terminal, with echo off.',
    flags: [
      {
        name: 'username',
        short: 'u',
        type: 'string',
        value: 'USER',
        help: 'user name (prompted for on a TTY when absent)',
      },
      { name: 'password-stdin', type: 'boolean', help: 'read the password from stdin (trailing newline stripped)' },
    ],
    operands: 'other',
    run: login,
  },
  {
    name: 'registry logout',
    summary: 'Remove stored credentials for a registry',
    synopsis: 'registry logout HOST',
    description: 'Removes the stored credentials of HOST (docker config credentials are never touched).',
    flags: [],
    operands: 'other',
    run: logout,
  },
  {
    name: 'registry ls',
    summary: 'List configured registries',
    synopsis: 'registry ls [--format table|json]',
    description: 'Columns: HOST USERNAME AUTH INSECURE MIRRORS CA_CERTS. No secret is ever printed.',
    flags: [FORMAT_FLAG],
    operands: 'none',
    run: ls,
  },
];

/** `msb registry login/logout/ls` (docs/cli.md §7, acceptance G7, I3, I6) against the real RB and RT. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { main } from '../../src/cli/main.js';
import { readSettings } from '../../src/settings/settings.js';
import { RegistryClient } from '../../src/registry/client.js';
import { resolveImage } from '../../src/registry/resolve.js';
import { parseReference } from '../../src/reference/reference.js';
import { normalizeRegistryHost, hostKey } from '../../src/cli/commands/registry.js';

const RB = ensureRegistry('auth');
const RT = ensureRegistry('token');
const PASS = 'testpass';
const tmp = tempDir('msb-reg-cli-');
after(() => tmp.cleanup());
const allOutput: string[] = [];

async function msb(args: string[], opts: { stdin?: string; home: string; env?: NodeJS.ProcessEnv }) {
  const out = new PassThrough();
  const err = new PassThrough();
  let so = '';
  let se = '';
  out.on('data', (d) => {
    so += d;
  });
  err.on('data', (d) => {
    se += d;
  });
  const stdin = Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]) as Readable & {
    isTTY?: boolean;
  };
  const code = await main(['--home', opts.home, ...args], {
    stdout: out,
    stderr: err,
    stdin,
    signal: new AbortController().signal,
    env: opts.env ?? { PATH: process.env.PATH, DOCKER_CONFIG: join(tmp.dir, 'no-docker') },
  });
  allOutput.push(so, se);
  return { code, stdout: so, stderr: se };
}

test('host normalization', () => {
  assert.equal(normalizeRegistryHost('index.docker.io'), 'docker.io');
  assert.equal(normalizeRegistryHost('docker.io'), 'docker.io');
  assert.equal(normalizeRegistryHost('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeRegistryHost('GHCR.io'), 'ghcr.io');
  assert.equal(normalizeRegistryHost('https://127.0.0.1:5001/'), '127.0.0.1:5001');
  assert.equal(normalizeRegistryHost('localhost'), 'localhost');
  for (const bad of ['myregistry', 'a/b', '', 'x..y', 'host:abc', 'u@h.io'])
    assert.throws(() => normalizeRegistryHost(bad), { code: 'INVALID_ARGUMENT' }, bad);
  assert.equal(hostKey('127.0.0.1:5001'), '127.0.0.1_5001');
  assert.equal(hostKey('[::1]:5000'), '___1__5000');
});

test('G7: login (Basic) stores a 0600 secret in a 0700 dir and keeps config.json keys; wrong password exits 5 and writes nothing', async () => {
  const home = join(tmp.dir, 'home-basic');
  mkdirSync(home, { recursive: true });
  const before = {
    pull: { retries: 3 },
    registries: { ca_certs: [], hosts: { 'other.example:1': { insecure: true } } },
    zzz: { kept: true },
  };
  writeFileSync(join(home, 'config.json'), JSON.stringify(before));

  const bad = await msb(['registry', 'login', RB.host, '-u', 'testuser', '--password-stdin'], {
    home,
    stdin: 'wrong-pass\n',
  });
  assert.equal(bad.code, 5, bad.stderr);
  assert.match(bad.stderr, /REGISTRY_AUTH/);
  assert.deepEqual(JSON.parse(readFileSync(join(home, 'config.json'), 'utf8')), before, 'nothing written');
  assert.equal(existsSync(join(home, 'secrets', 'registries', hostKey(RB.host))), false);

  const noTty = await msb(['registry', 'login', RB.host, '-u', 'testuser'], { home });
  assert.equal(noTty.code, 2, 'no TTY and no --password-stdin');

  const ok = await msb(['registry', 'login', RB.host, '-u', 'testuser', '--password-stdin'], {
    home,
    stdin: `${PASS}\n`,
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `Login succeeded for ${RB.host}\n`);
  const secret = join(home, 'secrets', 'registries', hostKey(RB.host));
  assert.equal(statSync(secret).mode & 0o777, 0o600);
  assert.equal(statSync(join(home, 'secrets', 'registries')).mode & 0o777, 0o700);
  assert.equal(statSync(join(home, 'secrets')).mode & 0o777, 0o700);
  assert.equal(readFileSync(secret, 'utf8').trim(), PASS);
  const cfgText = readFileSync(join(home, 'config.json'), 'utf8');
  assert.ok(!cfgText.includes(PASS), 'config.json holds no password');
  assert.equal(statSync(join(home, 'config.json')).mode & 0o777, 0o600);
  const cfg = JSON.parse(cfgText);
  assert.deepEqual(Object.keys(cfg), ['pull', 'registries', 'zzz'], 'key order kept');
  assert.deepEqual(Object.keys(cfg.registries.hosts), ['other.example:1', RB.host]);
  assert.deepEqual(cfg.registries.hosts[RB.host].auth, {
    username: 'testuser',
    secret: `registries/${hostKey(RB.host)}`,
  });
  assert.deepEqual(cfg.zzz, { kept: true });

  // The stored credentials work for a pull's resolution (settings → secret file).
  const settings = readSettings(home);
  const c = new RegistryClient({
    home,
    settings,
    env: { PATH: process.env.PATH, DOCKER_CONFIG: join(tmp.dir, 'no-docker') },
  });
  const r = await resolveImage(c, parseReference(`${RB.host}/peers/busybox`));
  assert.ok(r.manifestDigest.startsWith('sha256:'));
  await c.close();

  // ls never shows the password.
  const t = await msb(['registry', 'ls'], { home });
  assert.equal(t.code, 0);
  assert.match(t.stdout, /^HOST\s+USERNAME\s+AUTH\s+INSECURE\s+MIRRORS\s+CA_CERTS/);
  assert.match(t.stdout, new RegExp(`${RB.host.replace(/\./g, '\\.')}\\s+testuser\\s+secret`));
  const j = await msb(['registry', 'ls', '--format', 'json'], { home });
  const list = JSON.parse(j.stdout) as { host: string; auth: string }[];
  assert.deepEqual(
    list.map((e) => [e.host, e.auth]).sort(),
    [
      [RB.host, 'secret'],
      ['other.example:1', '-'],
    ].sort(),
  );

  // logout removes the file and the entry; a second logout is a no-op.
  const lo = await msb(['registry', 'logout', RB.host], { home });
  assert.equal(lo.code, 0);
  assert.equal(existsSync(secret), false);
  const after1 = JSON.parse(readFileSync(join(home, 'config.json'), 'utf8'));
  assert.equal(after1.registries.hosts[RB.host], undefined);
  assert.deepEqual(after1.registries.hosts['other.example:1'], { insecure: true });
  const lo2 = await msb(['registry', 'logout', RB.host], { home });
  assert.equal(lo2.code, 0);
  assert.equal(lo2.stdout, `Not logged in to ${RB.host}\n`);
});

test('login against a Bearer registry (RT) fetches a token with the credentials', async () => {
  const home = join(tmp.dir, 'home-token');
  const bad = await msb(['registry', 'login', RT.host, '-u', 'testuser', '--password-stdin'], {
    home,
    stdin: 'nope\n',
  });
  assert.equal(bad.code, 5, bad.stderr);
  assert.equal(existsSync(join(home, 'config.json')), false);
  const ok = await msb(['registry', 'login', RT.host, '-u', 'testuser', '--password-stdin'], {
    home,
    stdin: `${PASS}\r\n`,
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(readFileSync(join(home, 'secrets', 'registries', hostKey(RT.host)), 'utf8'), `${PASS}\n`);
});

test('ls lists docker-config hosts as docker-config; a malformed config.json is SETTINGS_INVALID', async () => {
  const home = join(tmp.dir, 'home-ls');
  mkdirSync(home, { recursive: true });
  const dc = join(tmp.dir, 'dc');
  mkdirSync(dc, { recursive: true });
  writeFileSync(
    join(dc, 'config.json'),
    JSON.stringify({
      auths: { 'https://index.docker.io/v1/': { auth: Buffer.from(`hubuser:${PASS}`).toString('base64') } },
      credHelpers: { 'ghcr.io': 'gh' },
    }),
  );
  const r = await msb(['registry', 'ls', '--format', 'json'], {
    home,
    env: { PATH: process.env.PATH, DOCKER_CONFIG: dc },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [
    { host: 'docker.io', username: 'hubuser', auth: 'docker-config', insecure: false, mirrors: [], caCerts: [] },
    { host: 'ghcr.io', username: null, auth: 'docker-config', insecure: false, mirrors: [], caCerts: [] },
  ]);
  writeFileSync(join(home, 'config.json'), '{ not json');
  const m = await msb(['registry', 'ls'], { home });
  assert.equal(m.code, 1);
  assert.match(m.stderr, /SETTINGS_INVALID/);
  const l = await msb(['registry', 'login', RB.host, '-u', 'testuser', '--password-stdin'], { home, stdin: PASS });
  assert.match(l.stderr, /SETTINGS_INVALID/);
  const h = await msb(['registry', 'login', '--help'], { home });
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--password-stdin/);
});

test('no command output ever contains the password or its base64 form', () => {
  const all = allOutput.join('\n');
  for (const s of [PASS, Buffer.from(PASS).toString('base64'), Buffer.from(`testuser:${PASS}`).toString('base64')])
    assert.ok(!all.includes(s), s);
});

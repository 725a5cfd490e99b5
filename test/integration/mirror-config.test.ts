/**
 * Mirror configuration as fleets write it (issue 14 item 1) and mirror credentials never printed
 * (issue 9 item 2), against the real registries: R0 (127.0.0.1:5000, open) is the origin; mirrors
 * are a private registry on R0's storage, RB (127.0.0.1:5001, Basic), an HTTPS fault server in
 * front of R0 with a private CA, or a dead port. Checked through the real `msb` process (stderr
 * warnings, `msb registry ls` table and JSON, `msb pull` output) and through the API
 * (`PullResult.source`, warning events, errors).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Image, LocalBackend, MsbError, type PullEvent, type PullResult } from '../../src/index.js';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { msb, privateRegistry, type PrivateRegistry } from '../helpers/pull-env.js';

const R0 = ensureRegistry('noauth');
const RB = ensureRegistry('auth');
const work = tempDir('msb-mirror-cfg-');
const backends: LocalBackend[] = [];
const servers: FaultServer[] = [];
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const b of backends) await b.close();
  for (const s of servers) await s.close();
  for (const c of cleanups) await c();
  work.cleanup();
});

const PW = 'S3cretMirrorPw';
const REF = `${R0.host}/peers/busybox:latest`;
let n = 0;
let M: PrivateRegistry;

async function deadPort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => ok(p));
    });
  });
}

function home(hosts: Record<string, unknown>): string {
  const dir = join(work.dir, `home-${++n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ registries: { hosts }, pull: { retries: 2 } }));
  return dir;
}

async function pull(dir: string, ref = REF): Promise<{ r: PullResult; events: PullEvent[] }> {
  const b = await LocalBackend.builder().home(dir).build();
  backends.push(b);
  const events: PullEvent[] = [];
  const r = await Image.pullLocal(b, ref, { onProgress: (e) => events.push(e) });
  return { r, events };
}

const warnings = (ev: PullEvent[]) =>
  ev.filter((e): e is Extract<PullEvent, { type: 'warning' }> => e.type === 'warning');

test('issue 9: a mirror password in config.json is never printed: msb pull stderr, registry ls table and JSON', async () => {
  const dead = await deadPort();
  const mirror = `http://alice:${PW}@127.0.0.1:${dead}`;
  const dir = home({
    [R0.host]: { mirrors: [mirror, { url: `http://carol:${PW}@127.0.0.1:${dead + 0}/`, insecure: true }] },
  });

  const p = await msb(['--home', dir, 'pull', REF]);
  assert.equal(p.status, 0, p.stderr);
  assert.match(
    p.stderr,
    new RegExp(`warning: .*http://127\\.0\\.0\\.1:${dead} failed`),
    'the MIRROR_FALLBACK warning names the mirror',
  );
  assert.equal(p.stdout, `Pulled ${REF} (${p.stdout.match(/sha256:[0-9a-f]{64}/)![0]}) from ${R0.host}\n`);
  for (const out of [p.stdout, p.stderr]) {
    assert.ok(!out.includes(PW), `password printed:\n${out}`);
    assert.ok(!out.includes('@127.0.0.1'), `userinfo printed:\n${out}`);
  }

  const table = await msb(['--home', dir, 'registry', 'ls']);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`http://127\\.0\\.0\\.1:${dead},http://127\\.0\\.0\\.1:${dead}\\b`));
  const json = await msb(['--home', dir, 'registry', 'ls', '--format', 'json']);
  assert.equal(json.status, 0, json.stderr);
  const entry = (JSON.parse(json.stdout) as { host: string; mirrors: string[] }[]).find((e) => e.host === R0.host)!;
  assert.deepEqual(entry.mirrors, [`http://127.0.0.1:${dead}`, `http://127.0.0.1:${dead}`]);
  for (const out of [table.stdout, table.stderr, json.stdout, json.stderr])
    assert.ok(!out.includes(PW) && !out.includes('alice') && !out.includes('carol'), out);
});

test('issue 9: through the API, PullResult.source, warning events and errors carry no mirror credentials', async () => {
  M = await privateRegistry({
    after: (fn) => {
      cleanups.push(fn);
    },
  });
  const dead = await deadPort();
  const dir = home({ [R0.host]: { mirrors: [`http://alice:${PW}@127.0.0.1:${dead}`, `http://bob:${PW}@${M.host}`] } });
  const { r, events } = await pull(dir);
  assert.equal(r.source, `http://${M.host}`, 'the second mirror served it; its URL is shown without userinfo');
  assert.ok(
    warnings(events).some((w) => w.code === 'MIRROR_FALLBACK' && w.message.includes(`http://127.0.0.1:${dead}`)),
  );
  assert.ok(!JSON.stringify(events).includes(PW) && !JSON.stringify(r).includes(PW));

  const err = await pull(dir, `${R0.host}/peers/no-such-repo-proxy-test:latest`).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof MsbError, String(err));
  assert.ok(!err.message.includes(PW) && !JSON.stringify(err).includes(PW), err.message);
});

test('per-mirror credentials: URL userinfo and an auth object (password_env) are sent to that mirror; a wrong one falls back', async () => {
  const good = await pull(home({ [R0.host]: { mirrors: [`http://testuser:testpass@${RB.host}`] } }));
  assert.equal(good.r.source, `http://${RB.host}`, 'RB (Basic) answered with the userinfo credentials');

  const dir = home({
    [R0.host]: {
      mirrors: [{ url: `http://${RB.host}`, auth: { username: 'testuser', password_env: 'MSB_TEST_MIRROR_PW' } }],
    },
  });
  const ok = await msb(['--home', dir, 'pull', REF], { env: { MSB_TEST_MIRROR_PW: 'testpass' } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`from http://${RB.host.replace(/\./g, '\\.')}\\n$`));

  const wrong = await pull(home({ [R0.host]: { mirrors: [`http://testuser:${PW}@${RB.host}`] } }));
  assert.equal(wrong.r.source, R0.host, 'a refused mirror falls back to the origin');
  assert.ok(warnings(wrong.events).some((w) => w.code === 'MIRROR_FALLBACK'));
  assert.ok(!JSON.stringify(wrong.events).includes(PW));
});

test('per-mirror TLS: ca_certs trusts a private CA, insecure skips verification, neither fails over to the origin', async () => {
  const key = join(work.dir, 'k.pem');
  const cert = join(work.dir, 'c.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const tls = await FaultServer.start({
    upstream: `http://${R0.host}`,
    tls: { key: readFileSync(key), cert: readFileSync(cert) },
  });
  servers.push(tls);
  const withCa = await pull(home({ [R0.host]: { mirrors: [{ url: tls.url, ca_certs: [cert] }] } }));
  assert.equal(withCa.r.source, tls.url);
  const insecure = await pull(home({ [R0.host]: { mirrors: [{ url: tls.url, insecure: true }] } }));
  assert.equal(insecure.r.source, tls.url);
  const neither = await pull(home({ [R0.host]: { mirrors: [tls.url] } }));
  assert.equal(neither.r.source, R0.host);
  assert.ok(warnings(neither.events).some((w) => w.code === 'MIRROR_FALLBACK' && w.message.includes(tls.url)));
});

test('MSB_REGISTRY_MIRRORS overrides the configured mirrors for one run; `host=` turns them off; a bad value is a SettingsError', async () => {
  M ??= await privateRegistry({
    after: (fn) => {
      cleanups.push(fn);
    },
  });
  const dead = await deadPort();
  const dir = home({ [R0.host]: { mirrors: [`http://127.0.0.1:${dead}`] } });
  const via = await msb(['--home', dir, 'pull', REF], {
    env: { MSB_REGISTRY_MIRRORS: `${R0.host}=http://alice:${PW}@${M.host}` },
  });
  assert.equal(via.status, 0, via.stderr);
  assert.match(via.stdout, new RegExp(`from http://${M.host.replace(/\./g, '\\.')}\\n$`));
  assert.doesNotMatch(via.stderr, /warning/, 'the configured (dead) mirror was not tried');
  const ls = await msb(['--home', dir, 'registry', 'ls', '--format', 'json'], {
    env: { MSB_REGISTRY_MIRRORS: `${R0.host}=http://alice:${PW}@${M.host}` },
  });
  assert.deepEqual(
    (JSON.parse(ls.stdout) as { host: string; mirrors: string[] }[]).find((e) => e.host === R0.host)!.mirrors,
    [`http://${M.host}`],
  );
  assert.ok(!ls.stdout.includes(PW));

  const off = await msb(['--home', join(work.dir, `home-${n}`), 'pull', '--policy', 'always', REF], {
    env: { MSB_REGISTRY_MIRRORS: `${R0.host}=` },
  });
  assert.equal(off.status, 0, off.stderr);
  assert.doesNotMatch(off.stderr, /warning/);

  const bad = await msb(['--home', dir, 'pull', '--policy', 'always', REF], {
    env: { MSB_REGISTRY_MIRRORS: `${R0.host}=ftp://alice:${PW}@x` },
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /SETTINGS_INVALID: MSB_REGISTRY_MIRRORS/);
  assert.ok(!bad.stderr.includes(PW), bad.stderr);
});

/**
 * Backends and settings (docs/api.md §7–§8): the ambient resolution rules (A19, A20), CloudBackend never
 * exposing its apiKey, config.json parsing with SettingsError naming the key path, cache markers
 * (B17), and the cacheDir override.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  CloudBackend,
  defaultBackend,
  Image,
  LocalBackend,
  MsbError,
  Sandbox,
  setDefaultBackend,
  SettingsError,
  Snapshot,
  UnsupportedError,
} from '../../src/index.js';
import { _resetDefaultBackend } from '../../src/api/backend.js';
import { parseSettings, readSettings } from '../../src/settings/settings.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';

const AMBIENT: [string, () => Promise<unknown>][] = [
  ['Image.get', () => Image.get('x')],
  ['Image.list', () => Image.list()],
  ['Image.inspect', () => Image.inspect('x')],
  ['Image.remove', () => Image.remove('x')],
  ['Image.prune', () => Image.prune()],
  ['Image.pull', () => Image.pull('x')],
  ['Image.pullWithProgress', () => Image.pullWithProgress('x').result],
  ['Image.load', () => Image.load('/x')],
  ['Image.save', () => Image.save('x', '/x')],
  ['Image.diskUsage', () => Image.diskUsage()],
  ['Image.tag', () => Image.tag('a', 'b')],
  ['Sandbox.create', () => Sandbox.create('web', { image: 'x' })],
  ['Sandbox.get', () => Sandbox.get('web')],
  ['Sandbox.list', () => Sandbox.list()],
  ['Sandbox.remove', () => Sandbox.remove('web')],
  [
    'Snapshot.index',
    () => Snapshot.index({ digest: 'sha256:' + 'a'.repeat(64), imageManifestDigest: 'sha256:' + 'b'.repeat(64) }),
  ],
  ['Snapshot.list', () => Snapshot.list()],
  ['Snapshot.remove', () => Snapshot.remove('n')],
];

function withEnv(vars: Record<string, string | undefined>, t: { after(fn: () => void): void }) {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  _resetDefaultBackend();
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    _resetDefaultBackend();
  });
}

test('A19: on a cloud default every ambient Image/Sandbox/Snapshot call rejects UNSUPPORTED; *Local twins still work', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  withEnv({ MSB_BACKEND: undefined }, t);
  setDefaultBackend({ kind: 'cloud', apiKey: 'k-secret-123' });
  assert.equal(defaultBackend().kind, 'cloud');
  for (const [name, call] of AMBIENT) {
    await assert.rejects(call(), (e: unknown) => {
      assert.ok(e instanceof UnsupportedError, `${name}: ${String(e)}`);
      assert.equal(e.code, 'UNSUPPORTED');
      assert.equal(e.operation, name);
      assert.equal(e.message, `${name} is not supported by the cloud backend; use a local backend`);
      assert.ok(!JSON.stringify(e).includes('k-secret-123') && !String(e).includes('k-secret-123'));
      return true;
    });
  }
  const b = LocalBackend.lazy({ home: dir });
  const r = await Image.pruneLocal(b);
  assert.equal(r.imageRefsRemoved, 0);
  await b.close();
});

test('A20: MSB_BACKEND=cloud without MSB_API_KEY, or a bogus value → SETTINGS_INVALID naming the variable; a lone MSB_API_KEY stays local', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  withEnv({ MSB_BACKEND: 'cloud', MSB_API_KEY: undefined, MSB_HOME: dir }, t);
  assert.throws(
    () => defaultBackend(),
    (e: unknown) => e instanceof SettingsError && e.source === 'MSB_API_KEY' && /MSB_API_KEY/.test(e.message),
  );
  for (const [name, call] of AMBIENT) {
    await assert.rejects(
      call(),
      (e: unknown) => e instanceof SettingsError && e.code === 'SETTINGS_INVALID' && /MSB_API_KEY/.test(e.message),
      name,
    );
  }
  process.env.MSB_BACKEND = ' BoGuS ';
  _resetDefaultBackend();
  assert.throws(
    () => defaultBackend(),
    (e: unknown) => e instanceof SettingsError && /MSB_BACKEND/.test(e.message),
  );
  await assert.rejects(
    Image.list(),
    (e: unknown) => e instanceof SettingsError && /MSB_BACKEND/.test((e as Error).message),
  );
  process.env.MSB_BACKEND = ' Cloud ';
  process.env.MSB_API_KEY = 'key';
  process.env.MSB_API_URL = 'https://cloud.example';
  _resetDefaultBackend();
  const c = defaultBackend();
  assert.ok(c instanceof CloudBackend);
  assert.equal(c.url, 'https://cloud.example');
  delete process.env.MSB_BACKEND;
  _resetDefaultBackend();
  const l = defaultBackend();
  assert.ok(l instanceof LocalBackend, 'a lone MSB_API_KEY never selects the cloud');
  assert.equal(l.home, dir);
  assert.deepEqual(await Image.list(), []);
  process.env.MSB_BACKEND = 'LOCAL';
  _resetDefaultBackend();
  assert.ok(defaultBackend() instanceof LocalBackend);
  assert.equal(defaultBackend(), defaultBackend(), 'the resolution is cached');
  setDefaultBackend('local');
  assert.ok(defaultBackend() instanceof LocalBackend);
});

test('setDefaultBackend(LocalBackend) routes ambient calls to it', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  withEnv({ MSB_BACKEND: 'bogus' }, t);
  const b = LocalBackend.lazy({ home: dir });
  setDefaultBackend(b);
  await publishFakeImage(b, { refs: ['amb'], layers: ['a'] });
  assert.deepEqual(
    (await Image.list()).map((h) => h.reference),
    ['amb:latest'],
  );
  assert.equal((await Image.get('amb')).reference, 'amb:latest');
  await b.close();
});

test('CloudBackend never exposes its apiKey (JSON, inspect, errors)', () => {
  const c = new CloudBackend({ apiKey: 'sk-very-secret' });
  assert.equal(c.kind, 'cloud');
  assert.ok(!JSON.stringify(c).includes('sk-very-secret'));
  assert.ok(!inspect(c, { showHidden: true, depth: 5 }).includes('sk-very-secret'));
  assert.ok(
    !Object.keys(c).some((k) => String((c as unknown as Record<string, unknown>)[k]).includes('sk-very-secret')),
  );
  assert.throws(() => new CloudBackend({ apiKey: '' }), SettingsError);
});

test('config.json: defaults, camelCase, unknown keys ignored, wrong types → SettingsError naming the key path', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  assert.equal(readSettings(dir).pull.retries, 5);
  const s = parseSettings(
    JSON.stringify({
      paths: { cache: 'c2' },
      unknown: 1,
      registries: {
        ca_certs: ['/ca.pem'],
        cred_helper_timeout_ms: 5000,
        hosts: {
          '127.0.0.1:5001': {
            insecure: true,
            auth: { username: 'u', secret: 'registries/x' },
            mirrors: ['http://127.0.0.1:5000'],
          },
        },
      },
      pull: { concurrency: 2, retries: 3, max_layers: 10, timeouts: { idle_ms: 1000 } },
      prune: { temp_grace: '2h' },
    }),
    join(dir, 'config.json'),
    dir,
  );
  assert.equal(s.paths.cache, join(dir, 'c2'));
  assert.deepEqual(s.registries.hosts['127.0.0.1:5001'], {
    insecure: true,
    auth: { username: 'u', secret: 'registries/x' },
    mirrors: ['http://127.0.0.1:5000'],
    caCerts: [],
  });
  assert.equal(s.registries.credHelperTimeoutMs, 5000);
  assert.deepEqual(s.pull, {
    concurrency: 2,
    retries: 3,
    maxLayers: 10,
    timeouts: { connectMs: 30000, headersMs: 30000, idleMs: 1000 },
  });
  assert.equal(s.prune.tempGrace, '2h');
  const bad: [unknown, RegExp][] = [
    [{ pull: { timeouts: { idle_ms: 'soon' } } }, /pull\.timeouts\.idle_ms/],
    [{ pull: { concurrency: 0 } }, /pull\.concurrency/],
    [{ registries: { hosts: { h: { auth: { username: 'u' } } } } }, /registries\.hosts\.h\.auth/],
    [{ registries: { hosts: { h: { auth: { username: 'u', secret: 'a', password_env: 'B' } } } } }, /exactly one/],
    [{ registries: { hosts: { h: { mirrors: ['ftp://x'] } } } }, /registries\.hosts\.h\.mirrors\[0\]/],
    [{ prune: { temp_grace: 'forever' } }, /prune\.temp_grace/],
    [{ paths: { cache: 3 } }, /paths\.cache/],
    [[1], /top level/],
  ];
  for (const [json, re] of bad) {
    assert.throws(
      () => parseSettings(JSON.stringify(json), 'config.json', dir),
      (e: unknown) => e instanceof SettingsError && re.test(e.message),
      JSON.stringify(json),
    );
  }
  assert.throws(() => parseSettings('{oops', 'config.json', dir), SettingsError);
  // A malformed file rejects every call (no silent fallback).
  writeFileSync(join(dir, 'config.json'), '{"pull": {"retries": "many"}}');
  await assert.rejects(
    Image.listLocal(LocalBackend.lazy({ home: dir })),
    (e: unknown) => e instanceof SettingsError && /pull\.retries/.test((e as Error).message),
  );
});

test('B17: two homes whose paths.cache name one directory: the second is refused, and the cache is untouched', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const cache = join(dir, 'shared-cache');
  for (const h of ['h1', 'h2']) {
    mkdirSync(join(dir, h), { recursive: true });
    writeFileSync(join(dir, h, 'config.json'), JSON.stringify({ paths: { cache } }));
  }
  const b1 = LocalBackend.lazy({ home: join(dir, 'h1') });
  await publishFakeImage(b1, { refs: ['one'], layers: ['x'] });
  assert.equal(b1.cacheDir, cache);
  const listing = () => readdirSync(cache, { recursive: true }).map(String).sort();
  const before = listing();
  const marker = readFileSync(join(cache, 'msb-cache.json'), 'utf8');
  const b2 = LocalBackend.lazy({ home: join(dir, 'h2') });
  for (const call of [
    () => Image.listLocal(b2),
    () => Image.pruneLocal(b2),
    () => LocalBackend.builder().home(join(dir, 'h2')).build(),
  ]) {
    await assert.rejects(
      call(),
      (e: unknown) => e instanceof SettingsError && e.code === 'SETTINGS_INVALID' && e.message.includes(cache),
    );
  }
  assert.deepEqual(listing(), before);
  assert.equal(readFileSync(join(cache, 'msb-cache.json'), 'utf8'), marker);
  assert.equal(existsSync(join(dir, 'h2', 'db', 'msb.db')), false);
  await b1.close();
});

test('B17: a cache directory with layers/ but no marker is refused and its files are never deleted', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const cache = join(dir, 'c');
  mkdirSync(join(cache, 'layers'), { recursive: true });
  const f = join(cache, 'layers', 'sha256_' + 'a'.repeat(64) + '.erofs');
  writeFileSync(f, Buffer.alloc(4096));
  const b = LocalBackend.builder().home(join(dir, 'h')).cacheDir(cache);
  await assert.rejects(b.build(), (e: unknown) => e instanceof SettingsError && e.message.includes(cache));
  await assert.rejects(Image.pruneLocal(LocalBackend.lazy({ home: join(dir, 'h'), cacheDir: cache })), SettingsError);
  assert.ok(existsSync(f));
  assert.equal(existsSync(join(cache, 'msb-cache.json')), false);
});

test('builder cacheDir: artifacts live there, inspect reports its real path; errors are MsbErrors', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder()
    .home(join(dir, 'h'))
    .cacheDir(join(dir, 'elsewhere'))
    .tempGraceMs(1000)
    .build();
  t.after(() => b.close());
  await publishFakeImage(b, { refs: ['moved'], layers: ['m'] });
  const d = await Image.inspectLocal(b, 'moved');
  assert.ok(d.artifacts.vmdkPath.startsWith(join(dir, 'elsewhere', 'vmdk')));
  assert.ok(existsSync(d.artifacts.fsmetaPath));
  assert.ok(!existsSync(join(dir, 'h', 'cache')));
  await assert.rejects(Image.getLocal(b, 'nope'), MsbError);
});

test('artifact paths use the real path of the cache directory, resolved once at open', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'real-cache'));
  symlinkSync(join(dir, 'real-cache'), join(dir, 'link-cache'));
  const b = LocalBackend.lazy({ home: join(dir, 'h'), cacheDir: join(dir, 'link-cache') });
  t.after(() => b.close());
  await publishFakeImage(b, { refs: ['real'], layers: ['r'] });
  const d = await Image.inspectLocal(b, 'real');
  assert.ok(d.artifacts.fsmetaPath.startsWith(join(dir, 'real-cache') + '/'), d.artifacts.fsmetaPath);
  assert.ok(d.artifacts.layers.every((l) => l.path.startsWith(join(dir, 'real-cache') + '/')));
});

/**
 * The registry client against REAL distribution registries (acceptance C7, C8, C17, C18, C19,
 * C27 at the client level; I3, I6, I10): R0 (no auth), RB (htpasswd Basic), RT (Bearer tokens).
 * Every layer blob is streamed and its digest and size verified here.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createHash } from 'node:crypto';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { RegistryClient, RegistryCache, type RegistryClientOptions } from '../../src/registry/client.js';
import { resolveImage, type ResolvedImage } from '../../src/registry/resolve.js';
import { parseReference } from '../../src/reference/reference.js';
import { MEDIA_TYPES } from '../../src/oci/media-types.js';
import { MsbError, PlatformNotFoundError, RegistryAuthError, SettingsError } from '../../src/errors.js';
import type { RegistrySettings } from '../../src/registry/types.js';

const R0 = ensureRegistry('noauth');
const RB = ensureRegistry('auth');
const RT = ensureRegistry('token');
const PASS = 'testpass';
const SECRETS = [PASS, Buffer.from(PASS).toString('base64'), Buffer.from(`testuser:${PASS}`).toString('base64')];

const tmp = tempDir('msb-reg-real-');
after(() => tmp.cleanup());
/** Every error seen, checked for secrets at the end (I3). */
const seenErrors: unknown[] = [];
const clients: RegistryClient[] = [];
after(async () => {
  for (const c of clients) await c.close();
});

let homeN = 0;
function makeHome(config?: unknown, secret?: { rel: string; value: string; mode: number }): string {
  const home = join(tmp.dir, `home${homeN++}`);
  mkdirSync(home, { recursive: true });
  if (config) writeFileSync(join(home, 'config.json'), JSON.stringify(config));
  if (secret) {
    const p = join(home, 'secrets', secret.rel);
    mkdirSync(join(p, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(p, secret.value + '\n');
    chmodSync(p, secret.mode);
  }
  return home;
}

/** An env with no docker config unless given. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: join(tmp.dir, 'nohome'), DOCKER_CONFIG: join(tmp.dir, 'no-docker'), ...extra };
}

function client(o: Partial<RegistryClientOptions> & { settings?: RegistrySettings } = {}): RegistryClient {
  const c = new RegistryClient({ home: makeHome(), settings: {}, env: env(), ...o });
  clients.push(c);
  return c;
}

/** Resolves and downloads every layer, verifying each blob digest and size. */
async function pullAll(c: RegistryClient, ref: string, platform?: string): Promise<ResolvedImage> {
  const r = parseReference(ref);
  const res = await resolveImage(c, r, platform ? { platform } : {});
  for (const [i, l] of res.manifest.layers.entries()) {
    const h = createHash('sha256');
    let n = 0;
    for await (const ev of c.readBlob(r, l, { layerIndex: i })) {
      if (ev.type === 'open') assert.equal(ev.rangeStart, 0);
      else {
        h.update(ev.chunk);
        n += ev.chunk.length;
      }
    }
    assert.equal(n, l.size, `${ref} layer ${i} size`);
    assert.equal(`sha256:${h.digest('hex')}`, l.digest, `${ref} layer ${i} digest`);
  }
  return res;
}

async function rejects(p: Promise<unknown>, check: (e: unknown) => boolean, label: string): Promise<void> {
  await assert.rejects(
    p,
    (e: unknown) => {
      seenErrors.push(e);
      return check(e);
    },
    label,
  );
}

test('R0: every fixture resolves and its blobs verify (OCI, index, v2s2, list, zstd, uncompressed)', async () => {
  const c = client();
  const bb = await pullAll(c, `${R0.host}/peers/busybox`);
  assert.equal(bb.indexDigest, null);
  assert.equal(
    bb.manifest.mediaType,
    MEDIA_TYPES.ociManifest,
    'umoci manifest without mediaType is typed by Content-Type',
  );
  assert.equal(bb.manifest.layers.length, 1);
  assert.equal(bb.source, R0.host);

  const ma = await pullAll(c, `${R0.host}/peers/multiarch`, 'linux/amd64');
  assert.ok(ma.indexDigest);
  assert.deepEqual(ma.platform, { os: 'linux', architecture: 'amd64', variant: null });
  for (const p of ['linux/arm64', 'linux/arm64/v8']) {
    const arm = await pullAll(c, `${R0.host}/peers/multiarch`, p);
    assert.deepEqual(arm.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' }, p);
    assert.notEqual(arm.manifestDigest, ma.manifestDigest);
    assert.equal(arm.indexDigest, ma.indexDigest);
  }
  await rejects(
    resolveImage(c, parseReference(`${R0.host}/peers/multiarch`), { platform: 'linux/s390x' }),
    (e) => e instanceof PlatformNotFoundError && JSON.stringify(e.available) === '["linux/amd64","linux/arm64/v8"]',
    's390x',
  );

  const list = await pullAll(c, `${R0.host}/peers/multiarch:v2s2`, 'linux/arm64');
  assert.equal(list.manifest.mediaType, MEDIA_TYPES.dockerManifest);
  assert.equal(list.platform.architecture, 'arm64');
  const v2 = await pullAll(c, `${R0.host}/peers/busybox:v2s2`);
  assert.equal(v2.manifest.mediaType, MEDIA_TYPES.dockerManifest);
  assert.equal(v2.manifest.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assert.equal(v2.manifest.layers[0]!.compression, 'gzip');
  assert.deepEqual(v2.config.diffIds, bb.config.diffIds, 'same layer content');

  const ml = await pullAll(c, `${R0.host}/peers/multilayer`);
  assert.equal(ml.manifest.layers.length, 5);
  const mlv2 = await pullAll(c, `${R0.host}/peers/multilayer:v2s2`);
  assert.deepEqual(mlv2.config.diffIds, ml.config.diffIds);
  const zstd = await pullAll(c, `${R0.host}/peers/multilayer:zstd`);
  assert.ok(
    zstd.manifest.layers.every(
      (l) => l.compression === 'zstd' && l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd',
    ),
  );
  assert.deepEqual(zstd.config.diffIds, ml.config.diffIds, 'zstd blobs carry the same diff_ids');
  const mli = await pullAll(c, `${R0.host}/peers/multilayer:index`, 'linux/amd64');
  assert.ok(mli.indexDigest);
  assert.equal(mli.manifestDigest, ml.manifestDigest);
  const unc = await pullAll(c, `${R0.host}/peers/edge-uncompressed`);
  assert.ok(unc.manifest.layers.some((l) => l.compression === 'none'));
  const dup = await pullAll(c, `${R0.host}/peers/edge-dup`);
  assert.equal(new Set(dup.manifest.layers.map((l) => l.digest)).size < dup.manifest.layers.length, true);

  // By index digest (C27): the platform manifest is resolved through it.
  const byDigest = await pullAll(c, `${R0.host}/peers/multiarch@${ma.indexDigest}`, 'linux/amd64');
  assert.equal(byDigest.manifestDigest, ma.manifestDigest);
  assert.equal(byDigest.indexDigest, ma.indexDigest);
  // HEAD gives the digest without a body.
  const head = await c.headManifest(parseReference(`${R0.host}/peers/busybox`), 'latest');
  assert.equal(head.digest, bb.manifestDigest);
});

test('RB (Basic): anonymous fails; explicit, config.json secret, password_env, docker auths and a credHelper succeed; a wrong explicit auth overrides', async () => {
  const ref = `${RB.host}/peers/busybox`;
  await rejects(
    pullAll(client(), ref),
    (e) => e instanceof RegistryAuthError && e.code === 'REGISTRY_AUTH',
    'anonymous',
  );
  await pullAll(client({ auth: { username: 'testuser', password: PASS } }), ref);

  const cfg = { registries: { hosts: { [RB.host]: { auth: { username: 'testuser', secret: 'registries/rb' } } } } };
  const settings: RegistrySettings = {
    registries: { hosts: { [RB.host]: { auth: { username: 'testuser', secret: 'registries/rb' } } } },
  };
  const home = makeHome(cfg, { rel: 'registries/rb', value: PASS, mode: 0o600 });
  await pullAll(client({ home, settings }), ref);

  // A wrong explicit auth overrides the valid stored secret, and fails.
  await rejects(
    pullAll(client({ home, settings, auth: { username: 'testuser', password: 'wrong-password' } }), ref),
    (e) => e instanceof RegistryAuthError,
    'wrong explicit',
  );

  // A secret readable by group/others is refused and not used (I6).
  const home644 = makeHome(cfg, { rel: 'registries/rb', value: PASS, mode: 0o644 });
  await rejects(
    pullAll(client({ home: home644, settings }), ref),
    (e) => e instanceof SettingsError && /0600/.test(e.message),
    'mode 0644',
  );

  // password_env.
  const envSettings: RegistrySettings = {
    registries: { hosts: { [RB.host]: { auth: { username: 'testuser', passwordEnv: 'RB_PASS' } } } },
  };
  await pullAll(client({ settings: envSettings, env: env({ RB_PASS: PASS }) }), ref);
  await rejects(
    pullAll(client({ settings: envSettings }), ref),
    (e) => e instanceof SettingsError && /RB_PASS/.test(e.message),
    'unset env',
  );

  // docker config auths (key variants: http://host).
  const dcAuths = join(tmp.dir, 'dc-auths');
  mkdirSync(dcAuths, { recursive: true });
  writeFileSync(
    join(dcAuths, 'config.json'),
    JSON.stringify({ auths: { [`http://${RB.host}`]: { auth: Buffer.from(`testuser:${PASS}`).toString('base64') } } }),
  );
  await pullAll(client({ env: env({ DOCKER_CONFIG: dcAuths }) }), ref);

  // credHelpers: a helper script on PATH.
  const bin = join(tmp.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'docker-credential-msbtest'),
    `#!/bin/sh
read key
echo "called $key" >> "${join(tmp.dir, 'helper.log')}"
echo "helper stderr must not be echoed ${PASS}" >&2
if [ "$key" = "${RB.host}" ]; then printf '{"ServerURL":"%s","Username":"testuser","Secret":"${PASS}"}' "$key"; exit 0; fi
echo "credentials not found in native keychain"; exit 1
`,
    { mode: 0o755 },
  );
  writeFileSync(join(bin, 'docker-credential-hang'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  const dcHelper = join(tmp.dir, 'dc-helper');
  mkdirSync(dcHelper, { recursive: true });
  writeFileSync(
    join(dcHelper, 'config.json'),
    JSON.stringify({ credHelpers: { [RB.host]: 'msbtest', 'other.example': 'msbtest' } }),
  );
  const helperEnv = env({ DOCKER_CONFIG: dcHelper, PATH: `${bin}:${process.env.PATH}` });
  await pullAll(client({ env: helperEnv }), ref);

  // credsStore answering "credentials not found" falls through to auths.
  const dcStore = join(tmp.dir, 'dc-store');
  mkdirSync(dcStore, { recursive: true });
  writeFileSync(
    join(dcStore, 'config.json'),
    JSON.stringify({
      credsStore: 'msbtest',
      auths: { [`${R0.host}`]: { auth: Buffer.from('u:p').toString('base64') } },
    }),
  );
  const r0 = await resolveImage(
    client({ env: env({ DOCKER_CONFIG: dcStore, PATH: `${bin}:${process.env.PATH}` }) }),
    parseReference(`${R0.host}/peers/busybox`),
  );
  assert.ok(r0.manifestDigest);

  // A helper name with '/' is never executed (I10); a hanging helper is killed at the timeout.
  const dcBad = join(tmp.dir, 'dc-bad');
  mkdirSync(dcBad, { recursive: true });
  writeFileSync(join(dcBad, 'config.json'), JSON.stringify({ credHelpers: { [RB.host]: '../../bin/sh' } }));
  await rejects(
    pullAll(client({ env: env({ DOCKER_CONFIG: dcBad }) }), ref),
    (e) => e instanceof SettingsError,
    'bad helper name',
  );
  const dcHang = join(tmp.dir, 'dc-hang');
  mkdirSync(dcHang, { recursive: true });
  writeFileSync(join(dcHang, 'config.json'), JSON.stringify({ credsStore: 'hang' }));
  await rejects(
    pullAll(
      client({
        env: env({ DOCKER_CONFIG: dcHang, PATH: `${bin}:${process.env.PATH}` }),
        settings: { registries: { credHelperTimeoutMs: 300 } },
      }),
      ref,
    ),
    (e) => e instanceof RegistryAuthError && /300 ms/.test(e.message),
    'hanging helper',
  );
});

test('RT (Bearer): anonymous public/* only; the token request carries the repository scope and Basic credentials', async () => {
  // FT proxies the token server and logs; F proxies RT and points its challenge at FT.
  const ft = await FaultServer.start({ upstream: 'http://127.0.0.1:5082' });
  const f = await FaultServer.start({ upstream: `http://${RT.host}` });
  after(() => Promise.all([ft.close(), f.close()]));
  f.handlers.push(async (req, res) => {
    if (req.url !== '/v2/') return false;
    const up = await f.fetchUpstream('GET', '/v2/', req.headers);
    const www = String(up.headers['www-authenticate'] ?? '').replace('http://127.0.0.1:5082/token', `${ft.url}/token`);
    res.writeHead(up.status, {
      'www-authenticate': www,
      'content-type': 'application/json',
      'content-length': String(up.body.length),
    });
    res.end(up.body);
    return true;
  });
  await pullAll(client(), `${f.host}/public/busybox`);
  const anonTok = ft.requests(/^\/token$/);
  assert.ok(anonTok.length >= 1);
  assert.ok(
    anonTok.every((r) => r.headers.authorization === undefined),
    'anonymous token requests carry no credentials',
  );
  await rejects(
    pullAll(client(), `${f.host}/peers/busybox`),
    (e) => e instanceof RegistryAuthError,
    'anonymous peers/busybox',
  );

  ft.log.length = 0;
  const c = client({ auth: { username: 'testuser', password: PASS } });
  await pullAll(c, `${f.host}/peers/busybox`);
  const toks = ft.requests(/^\/token$/);
  assert.ok(toks.length >= 1);
  for (const t of toks) {
    const q = new URL(t.url, 'http://x').searchParams;
    assert.deepEqual(q.getAll('scope'), ['repository:peers/busybox:pull']);
    assert.equal(q.get('service'), 'peers-registry');
    assert.equal(t.headers.authorization, `Basic ${Buffer.from(`testuser:${PASS}`).toString('base64')}`);
  }
  // Tokens are cached per (host, service, scope): a second resolve asks for no new token.
  const before = ft.requests(/^\/token$/).length;
  await resolveImage(c, parseReference(`${f.host}/peers/busybox`));
  assert.equal(ft.requests(/^\/token$/).length, before);
  // The registry itself never saw Basic credentials, only the bearer token.
  assert.ok(
    f.log.filter((r) => r.path !== '/v2/').every((r) => String(r.headers.authorization ?? '').startsWith('Bearer ')),
  );

  // Direct to RT (its realm is http on loopback, the registry is http: allowed).
  await pullAll(
    client({ auth: { username: 'testuser', password: PASS } }),
    `${RT.host}/peers/multiarch`,
    'linux/arm64',
  );
  await pullAll(client(), `${RT.host}/public/busybox`);
  await rejects(
    pullAll(client({ auth: { username: 'testuser', password: 'nope' } }), `${RT.host}/peers/busybox`),
    (e) => e instanceof RegistryAuthError,
    'wrong password RT',
  );
});

test('the ping is cached per host in a shared cache', async () => {
  const f = await FaultServer.start();
  after(() => f.close());
  const cache = new RegistryCache();
  const a = client({ cache });
  const b = client({ cache });
  await resolveImage(a, parseReference(`${f.host}/peers/busybox`));
  await resolveImage(b, parseReference(`${f.host}/peers/busybox:v2s2`));
  assert.equal(f.requests(/^\/v2\/$/).length, 1);
  // Every manifest request listed all four types in Accept (C17).
  const gets = f.requests(/\/manifests\//);
  assert.ok(gets.length >= 2);
  for (const g of gets) {
    for (const t of [
      MEDIA_TYPES.ociManifest,
      MEDIA_TYPES.ociIndex,
      MEDIA_TYPES.dockerManifest,
      MEDIA_TYPES.dockerManifestList,
    ]) {
      assert.ok(String(g.headers.accept).includes(t), `${g.url} Accept lacks ${t}`);
    }
  }
});

test('no secret in any error (I3)', () => {
  assert.ok(seenErrors.length >= 8, `collected ${seenErrors.length} errors`);
  for (const e of seenErrors) {
    assert.ok(e instanceof MsbError, String(e));
    let text = `${String(e)}\n${JSON.stringify(e)}\n${inspect(e, { depth: 10 })}\n${(e as Error).stack}`;
    let cur: unknown = (e as Error).cause;
    while (cur) {
      text += `\n${String(cur)}\n${inspect(cur, { depth: 5 })}`;
      cur = (cur as Error).cause;
    }
    for (const s of SECRETS) assert.ok(!text.includes(s), `secret ${s} leaked in ${String(e)}`);
  }
});

/**
 * Faults a real registry cannot produce, injected by F (test/helpers/fault-server.ts), a real
 * HTTP(S) server proxying R0: acceptance C9–C12, C14 (config/manifest), C15–C17, C26, I2–I5, I7.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { FaultServer, sendJson } from '../helpers/fault-server.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { resolveImage } from '../../src/registry/resolve.js';
import { parseReference } from '../../src/reference/reference.js';
import {
  AbortedError,
  DigestMismatchError,
  LimitExceededError,
  ManifestInvalidError,
  MsbError,
  RegistryAuthError,
  RegistryError,
} from '../../src/errors.js';
import type { RetryInfo, WarningInfo } from '../../src/registry/types.js';
import type { Descriptor } from '../../src/oci/manifest.js';

const R0 = ensureRegistry('noauth');
const RB = ensureRegistry('auth');
const PASS = 'testpass';
const BASIC = `Basic ${Buffer.from(`testuser:${PASS}`).toString('base64')}`;
const tmp = tempDir('msb-reg-fault-');
const servers: FaultServer[] = [];
const clients: RegistryClient[] = [];
const seenErrors: unknown[] = [];
const tokensIssued: string[] = [];
after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.close();
  tmp.cleanup();
});

async function server(opts: Parameters<typeof FaultServer.start>[0] = {}): Promise<FaultServer> {
  const f = await FaultServer.start(opts);
  servers.push(f);
  return f;
}

interface Rec {
  retries: RetryInfo[];
  warnings: WarningInfo[];
}
function client(o: Partial<RegistryClientOptions> = {}): RegistryClient & { rec: Rec } {
  const rec: Rec = { retries: [], warnings: [] };
  const c = new RegistryClient({
    home: tmp.dir,
    settings: {},
    env: { PATH: process.env.PATH, DOCKER_CONFIG: join(tmp.dir, 'none') },
    backoffMs: () => 5,
    onRetry: (r) => rec.retries.push(r),
    onWarning: (w) => rec.warnings.push(w),
    ...o,
  }) as RegistryClient & { rec: Rec };
  c.rec = rec;
  clients.push(c);
  return c;
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

/** Collects a blob through readBlob; returns the events and the final bytes (as a consumer would keep them). */
async function collect(
  c: RegistryClient,
  host: string,
  desc: Descriptor,
  opts: { offset?: number; signal?: AbortSignal } = {},
) {
  const opens: number[] = [];
  let parts: Buffer[] = [];
  for await (const ev of c.readBlob({ domain: host, repository: 'peers/busybox' }, desc, { ...opts, layerIndex: 0 })) {
    if (ev.type === 'open') {
      opens.push(ev.rangeStart);
      const have = Buffer.concat(parts);
      parts = [have.subarray(0, ev.rangeStart)];
    } else parts.push(ev.chunk);
  }
  const bytes = Buffer.concat(parts);
  return { opens, bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

let layer!: Descriptor;
let configDesc!: Descriptor;
let manifestDigest!: string;
const blobPath = () => `/v2/peers/busybox/blobs/${layer.digest}`;
const isBlob = (req: IncomingMessage) => (req.url ?? '').startsWith(blobPath());

before(async () => {
  const c = client();
  const r = await resolveImage(c, parseReference(`${R0.host}/peers/busybox`));
  layer = r.manifest.layers[0]!;
  configDesc = r.manifest.config;
  manifestDigest = r.manifestDigest;
});

/** Makes F a Bearer registry issuing tokens from its own /token; `valid` decides which tokens pass. */
function bearerRegistry(f: FaultServer, state: { n: number; valid: (auth: string | undefined) => boolean }) {
  f.handlers.push((req, res) => {
    const challenge = `Bearer realm="${f.url}/token",service="fault"`;
    if (req.url === '/v2/') {
      sendJson(res, 401, {}, { 'www-authenticate': challenge });
      return true;
    }
    if (req.url?.startsWith('/token')) {
      state.n++;
      const token = `tok-${state.n}-${'z'.repeat(20)}`;
      tokensIssued.push(token);
      sendJson(res, 200, { token, expires_in: 300 });
      return true;
    }
    if (!state.valid(req.headers.authorization)) {
      sendJson(
        res,
        401,
        { errors: [{ code: 'UNAUTHORIZED' }] },
        { 'www-authenticate': `${challenge},scope="repository:peers/busybox:pull",error="invalid_token"` },
      );
      return true;
    }
    return false;
  });
}

test('C9: a 401 invalid_token mid-blob gets one new token and the transfer resumes with Range', async () => {
  const f = await server();
  const state = { n: 0, valid: (a: string | undefined) => a === `Bearer tok-${state.n}-${'z'.repeat(20)}` };
  let blobGets = 0;
  f.handlers.push(async (req, res, ff) => {
    if (!isBlob(req) || !state.valid(req.headers.authorization)) return false;
    blobGets++;
    if (blobGets === 1) {
      // Cut the body at 60 %, and let the token expire meanwhile.
      await ff.proxy(req, res, { resetAfter: Math.floor(layer.size * 0.6) });
      state.valid = (a) => a === `Bearer tok-${state.n}-${'z'.repeat(20)}` && state.n >= 2;
      return true;
    }
    return false;
  });
  bearerRegistry(f, state);
  f.handlers.reverse(); // auth checks first
  const c = client();
  const got = await collect(c, f.host, layer);
  assert.equal(got.digest, layer.digest);
  assert.equal(f.requests(/^\/token$/).length, 2, 'exactly two token requests');
  const blobReqs = f.requests(/\/blobs\//);
  const last = blobReqs[blobReqs.length - 1]!;
  assert.match(String(last.headers.range), /^bytes=\d+-$/);
  assert.equal(got.opens[0], 0);
  assert.ok(got.opens[1]! > 0, 'resumed from the bytes received');
  assert.equal(`bytes=${got.opens[1]}-`, last.headers.range);

  // Two 401s in a row → REGISTRY_AUTH.
  const f2 = await server();
  const s2 = { n: 0, valid: (a: string | undefined) => a !== undefined && !a.includes('never') && false };
  bearerRegistry(f2, s2);
  await rejects(
    collect(client(), f2.host, layer),
    (e) => e instanceof RegistryAuthError && e.status === 401,
    'two 401s',
  );
  assert.equal(f2.requests(/^\/token$/).length, 2);
});

test('C10/I2/I4: Authorization never crosses hosts; same-origin redirects keep it; https→http refused; 6th hop fails', async () => {
  const cdn = await server({ host: '127.0.0.2' });
  const f = await server();
  f.handlers.push((req, res) => {
    if (req.headers.authorization !== BASIC) {
      sendJson(res, 401, {}, { 'www-authenticate': 'Basic realm="fault"' });
      return true;
    }
    if (isBlob(req) && !req.url!.includes('same=1')) {
      const target = req.url!.includes('?cross')
        ? `${cdn.url}${blobPath()}?X-Amz-Signature=secret`
        : `${blobPath()}?same=1`;
      res.writeHead(307, { location: target, 'content-length': '0' });
      res.end();
      return true;
    }
    return false;
  });
  // Cross host: the first GET goes to F (with Basic), then 127.0.0.2 gets no Authorization.
  f.handlers.unshift((req, res) => {
    if (
      isBlob(req) &&
      !req.url!.includes('?') &&
      (req.headers as Record<string, string>)['x-cross'] === undefined &&
      crossMode
    ) {
      if (req.headers.authorization !== BASIC) return false;
      res.writeHead(307, { location: `${cdn.url}${blobPath()}?X-Amz-Signature=secret`, 'content-length': '0' });
      res.end();
      return true;
    }
    return false;
  });
  let crossMode = true;
  const c = client({ auth: { username: 'testuser', password: PASS } });
  const got = await collect(c, f.host, layer);
  assert.equal(got.digest, layer.digest);
  const fBlob = f.requests(/\/blobs\//);
  assert.ok(fBlob.length >= 1 && fBlob.every((r) => r.headers.authorization === BASIC), 'F received Authorization');
  const cdnReqs = cdn.requests(/\/blobs\//);
  assert.equal(cdnReqs.length, 1);
  assert.equal(cdnReqs[0]!.headers.authorization, undefined, 'no Authorization to 127.0.0.2');

  // Same origin: kept.
  crossMode = false;
  f.log.length = 0;
  const got2 = await collect(c, f.host, layer);
  assert.equal(got2.digest, layer.digest);
  const same = f.requests(/\/blobs\//).filter((r) => r.url.includes('same=1'));
  assert.equal(same.length, 1);
  assert.equal(same[0]!.headers.authorization, BASIC, 'same-origin redirect keeps Authorization');

  // 5 hops are fine, the 6th is REGISTRY.
  for (const [hops, ok] of [
    [5, true],
    [6, false],
  ] as const) {
    const h = await server();
    h.handlers.push((req, res) => {
      const m = /^\/hop\/(\d+)/.exec(req.url ?? '');
      if (isBlob(req)) {
        res.writeHead(307, { location: '/hop/1' });
        res.end();
        return true;
      }
      if (m) {
        const k = Number(m[1]);
        if (k < hops) {
          res.writeHead(302, { location: `/hop/${k + 1}` });
          res.end();
          return true;
        }
        req.url = blobPath();
        return false;
      }
      return false;
    });
    const p = collect(client(), h.host, layer);
    if (ok) assert.equal((await p).digest, layer.digest);
    else
      await rejects(
        p,
        (e) => e instanceof RegistryError && e.code === 'REGISTRY' && /too many redirects/.test(e.message),
        '6 hops',
      );
  }
});

test('C10/I4/I5: over TLS (caCerts): https→http redirect refused with a redacted URL; an http realm is refused; insecure allows the downgrade', async () => {
  const key = join(tmp.dir, 'k.pem');
  const cert = join(tmp.dir, 'c.pem');
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
  const plain = await server();
  const tls = await server({ tls: { key: readFileSync(key), cert: readFileSync(cert) } });
  tls.handlers.push((req, res) => {
    if (isBlob(req)) {
      res.writeHead(302, { location: `${plain.url}${blobPath()}?X-Amz-Signature=secret` });
      res.end();
      return true;
    }
    return false;
  });
  const c = client({ caCerts: [cert] });
  const m = await c.fetchManifest({ domain: tls.host, repository: 'peers/busybox' }, 'latest');
  assert.equal(m.digest, manifestDigest, 'https with a private CA works');
  await rejects(
    collect(c, tls.host, layer),
    (e) => {
      assert.ok(e instanceof RegistryError, String(e));
      assert.match(e.message, /https to http refused/);
      assert.ok(e.message.includes('?…') && !e.message.includes('secret'), e.message);
      return true;
    },
    'downgrade',
  );
  assert.equal(plain.requests(/\/blobs\//).length, 0, 'nothing was sent over http');
  // insecure: the downgrade is allowed.
  const ci = client({ insecure: true });
  assert.equal((await collect(ci, tls.host, layer)).digest, layer.digest);

  // An http realm for an https registry is refused, and gets no request.
  const tls2 = await server({ tls: { key: readFileSync(key), cert: readFileSync(cert) } });
  tls2.handlers.push((req, res) => {
    if (req.url === '/v2/' || !req.headers.authorization) {
      sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${plain.url}/token",service="x"` });
      return true;
    }
    return false;
  });
  await rejects(
    client({ caCerts: [cert] }).fetchManifest({ domain: tls2.host, repository: 'peers/busybox' }, 'latest'),
    (e) => e instanceof RegistryAuthError && /must be https/.test(e.message),
    'http realm',
  );
  assert.equal(plain.requests(/token/).length, 0);
});

test('I5: a link-local realm is refused and receives no request', async () => {
  const f = await server();
  const realmHost = 'metadata.invalid.test';
  f.handlers.push((req, res) => {
    if (req.url?.startsWith('/token')) {
      sendJson(res, 200, { token: 'leaked' });
      return true;
    }
    const realm =
      req.headers['x-which'] === 'name'
        ? `http://${realmHost}:${f.port}/token`
        : 'http://169.254.169.254/latest/api/token';
    sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${realm}",service="x"` });
    return true;
  });
  await rejects(
    client().fetchManifest({ domain: f.host, repository: 'peers/busybox' }, 'latest'),
    (e) => e instanceof RegistryAuthError && /link-local/.test(e.message) && e.message.includes('169.254.169.254'),
    'literal',
  );
  // By name: the name resolves to 169.254.x.x (stub resolver); in reality it would reach F.
  const f2 = await server();
  f2.handlers.push((req, res) => {
    if (req.url?.startsWith('/token')) {
      sendJson(res, 200, { token: 'leaked' });
      return true;
    }
    sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="http://${realmHost}:${f2.port}/token",service="x"` });
    return true;
  });
  const resolve = async (h: string) => (h === realmHost ? ['169.254.10.20'] : h === '127.0.0.1' ? ['127.0.0.1'] : []);
  await rejects(
    client({ resolve }).fetchManifest({ domain: f2.host, repository: 'peers/busybox' }, 'latest'),
    (e) => e instanceof RegistryAuthError && /link-local/.test(e.message),
    'by name',
  );
  assert.equal(f2.requests(/token/).length, 0, 'no request reached the realm');
});

test('C11: 503,503,200 → 2 retries; 429 Retry-After 1 waits; Retry-After 120 fails at once; 404 is not retried', async () => {
  const f = await server();
  let n503 = 0;
  let mode = '';
  f.handlers.push((req, res) => {
    if (!(req.url ?? '').includes('/manifests/')) return false;
    if (mode === '503' && n503 < 2) {
      n503++;
      sendJson(res, 503, { errors: [{ code: 'UNAVAILABLE' }] });
      return true;
    }
    if (mode === '429-1') {
      mode = '';
      sendJson(res, 429, {}, { 'retry-after': '1' });
      return true;
    }
    if (mode === '429-120') {
      sendJson(
        res,
        429,
        { errors: [{ code: 'TOOMANYREQUESTS' }] },
        { 'retry-after': '120', 'ratelimit-remaining': '0', 'ratelimit-limit': '100;w=21600' },
      );
      return true;
    }
    return false;
  });
  const ref = { domain: f.host, repository: 'peers/busybox' };
  mode = '503';
  const c = client();
  assert.equal((await c.fetchManifest(ref, 'latest')).digest, manifestDigest);
  assert.equal(c.rec.retries.length, 2);
  assert.equal(f.requests(/\/manifests\//).length, 3);
  assert.ok(c.rec.retries.every((r) => r.layerIndex === null && /503/.test(r.reason)));
  assert.deepEqual(
    c.rec.retries.map((r) => r.attempt),
    [1, 2],
  );

  mode = '429-1';
  const c2 = client();
  assert.equal((await c2.fetchManifest(ref, 'latest')).digest, manifestDigest);
  assert.equal(c2.rec.retries.length, 1);
  assert.equal(c2.rec.retries[0]!.delayMs, 1000, 'Retry-After honoured');

  mode = '429-120';
  f.log.length = 0;
  const c3 = client();
  await rejects(
    c3.fetchManifest(ref, 'latest'),
    (e) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.status, 429);
      assert.equal(e.retryAfterMs, 120_000);
      assert.equal(e.details.rateLimitRemaining, '0');
      assert.equal(e.details.rateLimitLimit, '100;w=21600');
      return true;
    },
    '429 120',
  );
  assert.equal(f.requests(/\/manifests\//).length, 1, 'no retry');
  assert.equal(c3.rec.retries.length, 0);

  mode = '';
  f.log.length = 0;
  const c4 = client();
  await rejects(
    c4.fetchManifest(ref, 'no-such-tag'),
    (e) => e instanceof RegistryError && e.status === 404 && e.registryCode === 'MANIFEST_UNKNOWN',
    '404',
  );
  assert.equal(f.requests(/\/manifests\//).length, 1);
  assert.equal(c4.rec.retries.length, 0);
});

test('C12: a reset at 60 % resumes with Range; a server ignoring Range restarts from 0; 416 at the size completes', async () => {
  const f = await server();
  let mode: 'reset' | 'reset-ignore' = 'reset';
  let gets = 0;
  f.handlers.push(async (req, res, ff) => {
    if (!isBlob(req)) return false;
    gets++;
    if (gets === 1) {
      await ff.proxy(req, res, { resetAfter: Math.floor(layer.size * 0.6) });
      return true;
    }
    if (mode === 'reset-ignore') {
      await ff.proxy(req, res, { ignoreRange: true });
      return true;
    }
    return false;
  });
  const c = client();
  const got = await collect(c, f.host, layer);
  assert.equal(got.digest, layer.digest);
  const reqs = f.requests(/\/blobs\//);
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0]!.headers.range, undefined);
  assert.equal(reqs[1]!.headers.range, `bytes=${got.opens[1]}-`);
  assert.ok(got.opens[1]! > 0 && got.opens[1]! <= Math.floor(layer.size * 0.6));
  assert.equal(c.rec.retries.length, 1);
  assert.equal(c.rec.retries[0]!.layerIndex, 0);

  mode = 'reset-ignore';
  gets = 0;
  f.log.length = 0;
  const got2 = await collect(client(), f.host, layer);
  assert.equal(got2.digest, layer.digest);
  assert.deepEqual(got2.opens.length, 2);
  assert.equal(got2.opens[1], 0, 'a 200 to a Range request restarts from zero');

  // A .part that is already complete: Range at the size → 416 → done, no data.
  const done = await collect(client(), R0.host, layer, { offset: layer.size });
  assert.deepEqual(done.opens, [layer.size]);
  // A resume from a .part prefix (offset) gets exactly the rest.
  const rest = await collect(client(), R0.host, layer, { offset: 1000 });
  assert.deepEqual(rest.opens, [1000]);
  assert.ok(rest.bytes.equals(got.bytes.subarray(1000)), 'exactly the bytes after the offset');
});

test('C14/C15: flipped bytes: config and manifest digests are checked (reference digest and Docker-Content-Digest)', async () => {
  const f = await server();
  const flip = (b: Buffer) => {
    const o = Buffer.from(b);
    o[o.length >> 1]! ^= 0x20;
    return o;
  };
  f.handlers.push(async (req, res, ff) => {
    if ((req.url ?? '').includes(configDesc.digest) || (req.url ?? '').includes('/manifests/')) {
      await ff.proxy(req, res, { mutate: flip });
      return true;
    }
    return false;
  });
  const ref = { domain: f.host, repository: 'peers/busybox' };
  await rejects(
    client().fetchBlobBytes(ref, configDesc),
    (e) => e instanceof DigestMismatchError && e.what === 'config' && e.expected === configDesc.digest,
    'config',
  );
  await rejects(
    client().fetchManifest(ref, 'latest'),
    (e) => e instanceof DigestMismatchError && e.what === 'manifest' && e.expected === manifestDigest,
    'Docker-Content-Digest',
  );
  await rejects(
    client().fetchManifest(ref, manifestDigest),
    (e) => e instanceof DigestMismatchError && e.expected === manifestDigest,
    'reference digest',
  );
  // A layer blob with a flipped byte streams through; its digest differs (the pipeline's check).
  const g = await server();
  g.handlers.push(async (req, res, ff) => {
    if (isBlob(req)) {
      await ff.proxy(req, res, { mutate: flip });
      return true;
    }
    return false;
  });
  const got = await collect(client(), g.host, layer);
  assert.equal(got.bytes.length, layer.size);
  assert.notEqual(got.digest, layer.digest);
});

test('C16/I7: oversized manifest, endless chunked body, 10 GiB Content-Length; schema 1', async () => {
  const f = await server();
  const MiB = 1024 * 1024;
  let serverWrote = 0;
  let endlessClosed: Promise<void> = Promise.resolve();
  f.handlers.push((req: IncomingMessage, res: ServerResponse) => {
    const u = req.url ?? '';
    if (u.endsWith('/manifests/big')) {
      const body = Buffer.alloc(5 * MiB, 0x20);
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': String(body.length),
      });
      res.end(body);
      return true;
    }
    if (u.endsWith('/manifests/endless')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      endlessClosed = new Promise((ok) => res.on('close', () => ok()));
      const pump = () => {
        while (!res.destroyed) {
          serverWrote += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
      };
      pump();
      return true;
    }
    if (u.endsWith('/manifests/huge') || u.includes(configDesc.digest)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(10 * 1024 * MiB) });
      res.write(Buffer.alloc(1024));
      return true; // never ends: the client must refuse on the header alone
    }
    if (u.endsWith('/manifests/schema1')) {
      const b = Buffer.from(
        JSON.stringify({
          schemaVersion: 1,
          name: 'peers/busybox',
          tag: 'schema1',
          architecture: 'amd64',
          fsLayers: [],
          history: [],
          signatures: [],
        }),
      );
      res.writeHead(200, {
        'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws',
        'content-length': String(b.length),
      });
      res.end(b);
      return true;
    }
    return false;
  });
  const ref = { domain: f.host, repository: 'peers/busybox' };
  await rejects(
    client().fetchManifest(ref, 'big'),
    (e) => e instanceof LimitExceededError && e.limit === 'maxManifestBytes' && e.value === 5 * MiB,
    'big',
  );
  await rejects(
    client().fetchManifest(ref, 'endless'),
    (e) => {
      assert.ok(e instanceof LimitExceededError, String(e));
      assert.ok(e.value > 4 * MiB && e.value <= 4 * MiB + 64 * 1024, `read ${e.value}`);
      return true;
    },
    'endless',
  );
  await endlessClosed; // the client hung up: the endless body stopped
  assert.ok(serverWrote > 0);
  await rejects(
    client().fetchManifest(ref, 'huge'),
    (e) => e instanceof LimitExceededError && e.value === 10 * 1024 * MiB,
    '10 GiB manifest',
  );
  await rejects(
    client().fetchBlobBytes(ref, configDesc),
    (e) => e instanceof LimitExceededError && e.value === 10 * 1024 * MiB,
    '10 GiB config',
  );
  await rejects(
    resolveImage(client(), parseReference(`${f.host}/peers/busybox:schema1`)),
    (e) => e instanceof ManifestInvalidError && /schema 1/.test(e.message),
    'schema 1',
  );
});

test('abort: a stalled blob body is cancelled by the signal', async () => {
  const f = await server();
  f.handlers.push((req, res) => {
    if (!isBlob(req)) return false;
    res.writeHead(200, { 'content-length': String(layer.size) });
    res.write(Buffer.alloc(1000));
    return true; // stall
  });
  const ac = new AbortController();
  const it = client().readBlob({ domain: f.host, repository: 'peers/busybox' }, layer, { signal: ac.signal });
  await rejects(
    (async () => {
      for await (const ev of it) if (ev.type === 'data') ac.abort('stop');
    })(),
    (e) => e instanceof AbortedError && (e.cause as unknown) === 'stop',
    'abort',
  );
});

test('C26: mirrors are tried first with their own credentials; fallback on down/corrupt with MIRROR_FALLBACK', async () => {
  // Origin = F in front of RB (Basic), mirror = M in front of R0 (no auth).
  const origin = await server({ upstream: `http://${RB.host}` });
  const mirror = await server();
  const settings = { registries: { hosts: { [origin.host]: { mirrors: [mirror.url] } } } };
  const ref = parseReference(`${origin.host}/peers/busybox`);
  const c = client({ settings, auth: { username: 'testuser', password: PASS } });
  const r = await resolveImage(c, ref);
  assert.equal(r.source, mirror.url);
  assert.equal((await collect(c, origin.host, layer)).digest, layer.digest);
  assert.equal(origin.log.length, 0, 'the origin got no request');
  assert.ok(
    mirror.log.every((q) => q.headers.authorization === undefined),
    "the origin's credentials never reach the mirror",
  );

  // Mirror down → origin, with a warning.
  const deadPort = mirror.port;
  await mirror.close();
  servers.splice(servers.indexOf(mirror), 1);
  const c2 = client({ settings, auth: { username: 'testuser', password: PASS } });
  const r2 = await resolveImage(c2, ref);
  assert.equal(r2.source, origin.host);
  assert.ok(
    c2.rec.warnings.some((w) => w.code === 'MIRROR_FALLBACK'),
    JSON.stringify(c2.rec.warnings),
  );
  assert.ok(origin.log.some((q) => q.headers.authorization === BASIC));
  assert.ok(deadPort > 0);

  // A corrupted config from the mirror → fallback to the origin, then success.
  const bad = await server();
  bad.handlers.push(async (req, res, ff) => {
    if ((req.url ?? '').includes(configDesc.digest)) {
      await ff.proxy(req, res, { mutate: (b) => Buffer.concat([b.subarray(0, b.length - 1), Buffer.from('x')]) });
      return true;
    }
    return false;
  });
  const c3 = client({
    settings: { registries: { hosts: { [origin.host]: { mirrors: [bad.url] } } } },
    auth: { username: 'testuser', password: PASS },
  });
  const r3 = await resolveImage(c3, ref);
  assert.equal(r3.source, bad.url, 'the manifest came from the mirror');
  assert.ok(c3.rec.warnings.some((w) => w.code === 'MIRROR_FALLBACK' && /digest/.test(w.message)));
  assert.ok(origin.requests(new RegExp(configDesc.digest)).length >= 1, 'config fetched from the origin');
});

test('identity token (docker auths identitytoken): refresh-token POST; a 403 naming invalid_token re-authenticates once', async () => {
  const f = await server();
  const posts: URLSearchParams[] = [];
  let n = 0;
  let forbidOnce = true;
  f.handlers.push(async (req, res) => {
    const challenge = `Bearer realm="${f.url}/oauth2/token",service="fault-svc"`;
    if (req.url === '/v2/') {
      sendJson(res, 401, {}, { 'www-authenticate': challenge });
      return true;
    }
    if (req.url === '/oauth2/token') {
      let body = '';
      for await (const c of req) body += c;
      posts.push(new URLSearchParams(body));
      n++;
      const token = `idtok-${n}-${'q'.repeat(16)}`;
      tokensIssued.push(token);
      sendJson(res, 200, { access_token: token, expires_in: 600, refresh_token: 'rotated-refresh-secret' });
      return true;
    }
    if (!String(req.headers.authorization ?? '').startsWith('Bearer idtok-')) {
      sendJson(res, 401, {}, { 'www-authenticate': challenge });
      return true;
    }
    if ((req.url ?? '').includes('/manifests/') && forbidOnce) {
      forbidOnce = false;
      sendJson(res, 403, { errors: [{ code: 'DENIED', message: 'invalid_token: expired' }] });
      return true;
    }
    return false;
  });
  const dc = join(tmp.dir, 'dc-identity');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dc, { recursive: true });
  writeFileSync(
    join(dc, 'config.json'),
    JSON.stringify({
      auths: {
        [f.host]: { auth: Buffer.from('someone:').toString('base64'), identitytoken: 'the-refresh-token-secret' },
      },
    }),
  );
  const c = client({ env: { PATH: process.env.PATH, DOCKER_CONFIG: dc } });
  const m = await c.fetchManifest({ domain: f.host, repository: 'peers/busybox' }, 'latest');
  assert.equal(m.digest, manifestDigest);
  assert.equal(posts.length, 2, 'one token, then one refresh after the 403 invalid_token');
  for (const p of posts) {
    assert.equal(p.get('grant_type'), 'refresh_token');
    assert.equal(p.get('client_id'), 'msb-image');
    assert.equal(p.get('refresh_token'), 'the-refresh-token-secret');
    assert.equal(p.get('service'), 'fault-svc');
    assert.equal(p.get('scope'), 'repository:peers/busybox:pull');
  }
  // A plain 403 is "denied" at once.
  const g = await server();
  g.handlers.push((req, res) => {
    if ((req.url ?? '').includes('/manifests/')) {
      sendJson(res, 403, { errors: [{ code: 'DENIED' }] });
      return true;
    }
    return false;
  });
  await rejects(
    client().fetchManifest({ domain: g.host, repository: 'peers/busybox' }, 'latest'),
    (e) => e instanceof RegistryAuthError && e.status === 403 && /denied/.test(e.message),
    '403',
  );
  assert.equal(g.requests(/\/manifests\//).length, 1);
  tokensIssued.push('the-refresh-token-secret', 'rotated-refresh-secret');
});

test('HTTPS_PROXY/HTTP_PROXY are honoured (CONNECT tunnels) and NO_PROXY bypasses them; a stuck proxy ends at the deadline', async () => {
  const { connect } = await import('node:net');
  const proxy = await server();
  const tunnels: string[] = [];
  proxy.server.on('connect', (req: IncomingMessage, sock: import('node:net').Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    const [h, p] = (req.url ?? '').split(':');
    const up = connect(Number(p), h!, () => {
      sock.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
  });
  const base = { PATH: process.env.PATH, DOCKER_CONFIG: join(tmp.dir, 'none') };
  const c = client({ env: { ...base, HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '' } });
  const m = await c.fetchManifest({ domain: R0.host, repository: 'peers/busybox' }, 'latest');
  assert.equal(m.digest, manifestDigest);
  assert.ok(tunnels.length >= 1 && tunnels.every((t) => t === R0.host), JSON.stringify(tunnels));
  tunnels.length = 0;
  const c2 = client({ env: { ...base, HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
  assert.equal(
    (await c2.fetchManifest({ domain: R0.host, repository: 'peers/busybox' }, 'latest')).digest,
    manifestDigest,
  );
  assert.equal(tunnels.length, 0, 'NO_PROXY bypasses the proxy');

  // A proxy that drops every CONNECT: undici would retry it forever; the header deadline ends it.
  const dead = await server();
  dead.server.on('connect', (_req: IncomingMessage, sock: import('node:net').Socket) => sock.destroy());
  const c3 = client({
    env: { ...base, HTTP_PROXY: dead.url, HTTPS_PROXY: dead.url, NO_PROXY: '' },
    settings: { pull: { retries: 2, timeouts: { connectMs: 200, headersMs: 200 } } },
  });
  await rejects(
    c3.fetchManifest({ domain: R0.host, repository: 'peers/busybox' }, 'latest'),
    (e) => e instanceof MsbError && e.code === 'NETWORK' && /ETIMEDOUT/.test(e.message),
    'stuck proxy',
  );
});

test('I3: no password, base64 form or token in any error, cause or JSON', () => {
  assert.ok(seenErrors.length >= 12, `collected ${seenErrors.length}`);
  const secrets = [
    PASS,
    Buffer.from(PASS).toString('base64'),
    Buffer.from(`testuser:${PASS}`).toString('base64'),
    ...tokensIssued,
    'X-Amz-Signature=secret',
  ];
  for (const e of seenErrors) {
    assert.ok(e instanceof MsbError, `not typed: ${String(e)}`);
    let text = `${String(e)}\n${JSON.stringify(e)}\n${inspect(e, { depth: 10 })}`;
    let cur: unknown = (e as Error).cause;
    while (cur) {
      text += `\n${String(cur)}\n${inspect(cur, { depth: 5 })}`;
      cur = (cur as Error).cause;
    }
    for (const s of secrets) assert.ok(!text.includes(s), `${s} leaked in ${String(e)}`);
  }
});

/**
 * The pure parts of the registry client, one by one: retry decisions and the retry loop, redirect
 * rules, Range answers, manifest digest checks, token responses, scopes and re-auth, mirror
 * fallback, secret scrubbing, credential helper answers. Two malformed answers (`null` from a
 * token realm, `null` from a credential helper) are also driven end to end against a small real
 * server / a real helper process: they must be typed errors, not crashes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import {
  AbortedError,
  DigestMismatchError,
  LimitExceededError,
  NetworkError,
  RegistryAuthError,
  RegistryError,
  SettingsError,
} from '../../src/errors.js';
import { bearerScopes, needsReauth } from '../../src/registry/auth.js';
import { rangeStartsAt } from '../../src/registry/blobs.js';
import { collect } from '../../src/registry/body.js';
import { RegistryCache, RegistryClient } from '../../src/registry/client.js';
import { helperAnswer, runCredentialHelper } from '../../src/registry/credentials.js';
import { isFallbackable, withFallback } from '../../src/registry/fallback.js';
import { verifyManifestBytes } from '../../src/registry/manifests.js';
import { Retrier, retryNetworkError, statusDecision } from '../../src/registry/retry.js';
import { SecretScrubber } from '../../src/registry/scrub.js';
import { parseTokenResponse } from '../../src/registry/token.js';
import { hopPolicy, redirectTarget } from '../../src/registry/transport.js';
import type { Endpoint, RetryInfo } from '../../src/registry/types.js';
import type { Resp } from '../../src/registry/body.js';
import { FaultServer, sendJson } from '../helpers/fault-server.js';

const dir = mkdtempSync(join(tmpdir(), 'msb-reg-parts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function ep(source: string, i = 0): Endpoint {
  return {
    key: source,
    host: source,
    hostname: source,
    isMirror: i > 0,
    source,
    schemes: ['https'],
    insecure: false,
    caFiles: [],
    capabilities: ['pull', 'resolve'],
    id: `${source}#${i}`,
  };
}

/** A response as undici gives it, enough for the retry loop. */
function resp(statusCode: number, headers: Record<string, string> = {}, body = ''): Resp {
  return { statusCode, headers, body: Readable.from([Buffer.from(body)]) } as unknown as Resp;
}

test('retry decisions: retryable statuses, Retry-After over 60 s, attempts exhausted', () => {
  for (const s of [200, 206, 301, 400, 401, 403, 404, 416, 501])
    assert.equal(statusDecision(s, null, 1, 5), 'pass', `${s}`);
  for (const s of [408, 429, 500, 502, 503, 504]) {
    assert.equal(statusDecision(s, null, 1, 5), 'retry', `${s}`);
    assert.equal(statusDecision(s, null, 5, 5), 'exhausted', `${s}`);
  }
  assert.equal(statusDecision(429, 60_000, 1, 5), 'retry', 'exactly 60 s is waited for');
  assert.equal(statusDecision(429, 60_001, 1, 5), 'too-long');
  assert.equal(statusDecision(503, 120_000, 5, 5), 'too-long', 'too long wins over exhausted');
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  const tlsReset = Object.assign(new Error('bad record mac'), { code: 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC' });
  assert.equal(retryNetworkError(reset, 1, 5), true);
  assert.equal(retryNetworkError(reset, 5, 5), false, 'no attempt left');
  assert.equal(retryNetworkError(tls, 1, 5), false, 'a certificate error never retries');
  assert.equal(retryNetworkError(tlsReset, 1, 5), false, 'TLS errors never retry, even retryable-looking ones');
  assert.equal(retryNetworkError(new Error('something else'), 1, 5), false);
});

test('Retrier.run: waits with Retry-After or backoff, reports each wait scrubbed, and fails typed', async () => {
  const scrubber = new SecretScrubber();
  scrubber.add('hunter22');
  const waits: RetryInfo[] = [];
  const r = new Retrier({
    attempts: 3,
    backoffMs: () => 1,
    onRetry: (i) => waits.push(i),
    scrub: (s) => scrubber.scrub(s),
  });
  // 503 (Retry-After 0), a reset, then 200.
  const answers: (() => Resp)[] = [
    () => resp(503, { 'retry-after': '0' }),
    () => {
      throw Object.assign(new Error('socket hang up hunter22'), { code: 'ECONNRESET' });
    },
    () => resp(200),
  ];
  const res = await r.run('reg', 'GET https://u:hunter22@reg/v2/x?sig=1', 4, undefined, async () => answers.shift()!());
  assert.equal(res.statusCode, 200);
  assert.deepEqual(
    waits.map((w) => [w.attempt, w.delayMs, w.layerIndex]),
    [
      [1, 0, 4],
      [2, 1, 4],
    ],
  );
  for (const w of waits) assert.ok(!w.reason.includes('hunter22') && !w.reason.includes('sig=1'), w.reason);
  assert.match(waits[0]!.reason, /HTTP 503/);

  // Exhausted: the error carries the status, the registry code and Docker Hub's rate-limit headers.
  const limited = () =>
    resp(429, { 'ratelimit-remaining': '0' }, JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS' }] }));
  await assert.rejects(
    r.run('reg', 'GET https://reg/v2/', null, undefined, async () => limited()),
    (e: unknown) =>
      e instanceof RegistryError &&
      e.status === 429 &&
      /after 3 attempts/.test(e.message) &&
      e.registryCode === 'TOOMANYREQUESTS' &&
      e.details.rateLimitRemaining === '0',
  );
  // Too long a Retry-After: fails at once, without waiting.
  waits.length = 0;
  await assert.rejects(
    r.run('reg', 'GET https://reg/v2/', null, undefined, async () => resp(503, { 'retry-after': '3600' })),
    (e: unknown) => e instanceof RegistryError && e.retryAfterMs === 3_600_000 && /over 60 s/.test(e.message),
  );
  assert.equal(waits.length, 0);
  // A TLS error is final and secret-free, with its code kept on the cause.
  const tls = Object.assign(new Error('unable to verify hunter22'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  await assert.rejects(
    r.run('reg', 'GET https://reg/v2/', null, undefined, async () => {
      throw tls;
    }),
    (e: unknown) =>
      e instanceof NetworkError &&
      !e.message.includes('hunter22') &&
      (e.cause as { code?: string }).code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  );
  assert.equal(waits.length, 0);
});

test('redirect rules: relative locations, schemes, https→http only when insecure', () => {
  const from = new URL('https://reg.example/v2/a/blobs/sha256:x');
  const at = { insecure: false, registry: 'reg.example', status: 307 };
  assert.equal(redirectTarget(from, '/cdn/x?sig=1', at).toString(), 'https://reg.example/cdn/x?sig=1');
  assert.equal(redirectTarget(from, 'https://cdn.example/x', at).host, 'cdn.example');
  assert.throws(
    () => redirectTarget(from, 'http://cdn.example/x?sig=secret', at),
    (e: unknown) =>
      e instanceof RegistryError &&
      e.status === 307 &&
      /https to http refused/.test(e.message) &&
      !e.message.includes('secret'),
  );
  assert.equal(redirectTarget(from, 'http://cdn.example/x', { ...at, insecure: true }).protocol, 'http:');
  assert.throws(() => redirectTarget(from, 'ftp://cdn.example/x', at), /unsupported scheme ftp:/);
  assert.throws(() => redirectTarget(from, 'http://[bad', at), /invalid redirect location/);
  // http→https is an upgrade: always fine.
  assert.equal(redirectTarget(new URL('http://reg/v2/'), 'https://reg/v2/', at).protocol, 'https:');
});

test('hop policy: Authorization and unverified TLS only for the endpoint’s own origin', () => {
  const origin = 'https://reg.example';
  const own = hopPolicy(new URL('https://reg.example/v2/x'), origin, true, { range: 'bytes=5-' }, 'Bearer t');
  assert.deepEqual(own, {
    headers: { range: 'bytes=5-', 'user-agent': 'msb-image', authorization: 'Bearer t' },
    verify: false,
  });
  const cdn = hopPolicy(new URL('https://cdn.example/x'), origin, true, { range: 'bytes=5-' }, 'Bearer t');
  assert.deepEqual(cdn, { headers: { range: 'bytes=5-', 'user-agent': 'msb-image' }, verify: true });
  // Another port or scheme is another origin.
  assert.equal(
    hopPolicy(new URL('https://reg.example:444/x'), origin, false, {}, 'Basic x').headers.authorization,
    undefined,
  );
  assert.equal(
    hopPolicy(new URL('http://reg.example/x'), origin, false, {}, 'Basic x').headers.authorization,
    undefined,
  );
  assert.equal(hopPolicy(new URL('https://reg.example/x'), origin, false, {}, null).headers.authorization, undefined);
  assert.equal(hopPolicy(new URL('https://reg.example/x'), origin, false, {}, null).verify, true);
});

test('Range answers: a 206 counts only when it starts where we asked', () => {
  assert.equal(rangeStartsAt('bytes 100-199/200', 100), true);
  assert.equal(rangeStartsAt(' bytes 100-199/* ', 100), true);
  assert.equal(rangeStartsAt('bytes 0-199/200', 100), false);
  assert.equal(rangeStartsAt('bytes 0-199/200', 0), false, 'no Range was asked at offset 0');
  assert.equal(rangeStartsAt(null, 100), false);
  assert.equal(rangeStartsAt('bytes=100-', 100), false);
  assert.equal(rangeStartsAt('items 100-199/200', 100), false);
});

test('manifest digests: over the exact bytes, against the asked digest and Docker-Content-Digest', () => {
  const bytes = Buffer.from('{"schemaVersion":2}');
  const d = sha256(bytes);
  const d512 = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
  assert.equal(verifyManifestBytes(bytes, null, null, 'm'), d);
  assert.equal(verifyManifestBytes(bytes, d, d, 'm'), d);
  assert.equal(verifyManifestBytes(bytes, d512, null, 'm'), d512, 'the asked algorithm is kept');
  assert.equal(verifyManifestBytes(bytes, null, d512, 'm'), d, 'a sha512 Docker-Content-Digest is checked in sha512');
  assert.throws(() => verifyManifestBytes(bytes, sha256('other'), null, 'm'), DigestMismatchError);
  assert.throws(
    () => verifyManifestBytes(bytes, null, sha256('other'), 'm'),
    (e: unknown) => e instanceof DigestMismatchError && /Docker-Content-Digest/.test(e.message),
  );
});

test('token responses: token or access_token, lifetimes, refusals, and JSON that is not an object', () => {
  const at = { registry: 'reg', realm: 'https://auth/token' };
  const now = 1_000_000;
  const ok = (v: unknown) => parseTokenResponse(200, Buffer.from(JSON.stringify(v)), at, now);
  assert.deepEqual(ok({ token: 'abc' }), { token: 'abc', expiresAt: now + 60_000 });
  assert.deepEqual(ok({ access_token: 'xyz', expires_in: 300 }), { token: 'xyz', expiresAt: now + 300_000 });
  assert.deepEqual(ok({ token: '', access_token: 'xyz' }), { token: 'xyz', expiresAt: now + 60_000 });
  assert.equal(ok({ token: 'a', expires_in: -5 }).expiresAt, now + 60_000);
  assert.equal(
    ok({ token: 'a', issued_at: '2026-01-01T00:00:00Z', expires_in: 10 }).expiresAt,
    Date.parse('2026-01-01T00:00:10Z'),
  );
  assert.equal(ok({ token: 'a', refresh_token: 'r' }).refreshToken, 'r');
  const refused = (status: number, body: string, re: RegExp) =>
    assert.throws(
      () => parseTokenResponse(status, Buffer.from(body), at, now),
      (e: unknown) => e instanceof RegistryAuthError && re.test(e.message),
      `${status} ${body}`,
    );
  refused(401, '{}', /was refused \(HTTP 401\)/);
  refused(403, '{}', /was refused \(HTTP 403\)/);
  refused(500, '{}', /failed with HTTP 500/);
  refused(200, '<html>', /is not JSON/);
  refused(200, '{}', /has no token/);
  refused(200, 'null', /has no token/);
  refused(200, '42', /has no token/);
  refused(200, '"tok"', /has no token/);
});

test('Bearer scopes and re-authentication triggers', () => {
  const ch = (scope?: string) => ({ scheme: 'bearer', params: { realm: 'r', ...(scope ? { scope } : {}) } });
  assert.deepEqual(bearerScopes('a/b', ch()), ['repository:a/b:pull']);
  assert.deepEqual(bearerScopes('a/b', ch('repository:a/b:pull repository:c:pull')), [
    'repository:a/b:pull',
    'repository:c:pull',
  ]);
  assert.deepEqual(bearerScopes(null, ch('registry:catalog:*')), ['registry:catalog:*']);
  assert.equal(needsReauth(401, '', []), true);
  assert.equal(needsReauth(403, '{"errors":[{"code":"DENIED"}]}', []), false);
  assert.equal(needsReauth(403, 'invalid_token', []), true);
  assert.equal(needsReauth(400, '', [{ scheme: 'bearer', params: { error: 'invalid_token' } }]), true);
  assert.equal(needsReauth(404, 'invalid_token', []), false);
});

test('mirror fallback: which failures move on, the warning, and the origin’s error last', async () => {
  assert.equal(isFallbackable(new NetworkError('m', 'down')), true);
  assert.equal(isFallbackable(new RegistryAuthError('m', 401, 'no')), true);
  assert.equal(isFallbackable(new DigestMismatchError('config', 'a', 'b')), true);
  for (const s of [0, 404, 429, 500, 503]) assert.equal(isFallbackable(new RegistryError('m', s, 'x')), true, `${s}`);
  for (const s of [400, 416]) assert.equal(isFallbackable(new RegistryError('m', s, 'x')), false, `${s}`);
  assert.equal(isFallbackable(new LimitExceededError('maxManifestBytes', 2, 1, 'x')), false);
  assert.equal(isFallbackable(new TypeError('bug')), false);

  const eps = [ep('http://m1', 1), ep('http://m2', 2), ep('origin.example')];
  const warnings: string[] = [];
  const warn = (code: string, m: string) => warnings.push(`${code} ${m}`);
  const tried: number[] = [];
  const r = await withFallback(
    eps,
    'origin.example',
    'manifest x',
    0,
    async (_e, i) => {
      tried.push(i);
      if (i === 0) throw new RegistryError('m1', 404, 'not there');
      return `from ${i}`;
    },
    warn,
  );
  assert.equal(r, 'from 1');
  assert.deepEqual(tried, [0, 1]);
  assert.deepEqual(warnings, ['MIRROR_FALLBACK manifest x: http://m1 failed (not there); trying http://m2']);
  // A failure that is not a mirror's own is thrown at once; the origin's error is the one thrown.
  await assert.rejects(
    withFallback(
      eps,
      'o',
      'w',
      0,
      async () => {
        throw new LimitExceededError('maxManifestBytes', 2, 1, 'x');
      },
      warn,
    ),
    LimitExceededError,
  );
  await assert.rejects(
    withFallback(
      eps,
      'o',
      'w',
      1,
      async (e) => {
        throw new NetworkError(e.key, `${e.key} down`);
      },
      warn,
    ),
    /origin\.example down/,
  );
  // `start` past the end is clamped to the origin.
  assert.equal(await withFallback(eps, 'o', 'w', 9, async (_e, i) => i, warn), 2);
});

test('secret scrubbing builds on redactUrl: secrets, their base64, Authorization values, URL userinfo and queries', () => {
  const s = new SecretScrubber();
  s.add('s3cr3t-pass', 'abc', undefined, '');
  const b64 = Buffer.from('s3cr3t-pass').toString('base64');
  assert.equal(s.scrub('pw s3cr3t-pass and b64 ' + b64), 'pw *** and b64 ***');
  assert.equal(
    s.scrub('abc stays: too short to be a registered secret'),
    'abc stays: too short to be a registered secret',
  );
  assert.equal(s.scrub('authorization: Bearer eyJhbGciOi.x-y'), 'authorization: Bearer ***');
  assert.equal(
    s.scrub('GET https://user:pw@reg.example/v2/x?X-Amz-Signature=zz failed'),
    'GET https://reg.example/v2/x?… failed',
  );
  // A secret in a URL is removed even where URL parsing would re-encode it.
  s.add('p a%ss');
  assert.ok(!s.scrub('GET https://reg.example/v2/p a%ss/x').includes('p a%ss'));
});

test('collect: a stream over the limit is destroyed and refused; a broken one is a NetworkError', async () => {
  const three = () => Readable.from([Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)]);
  assert.equal((await collect(three(), 12, 'lim', 'w', 'reg')).length, 12);
  const s = three();
  await assert.rejects(
    collect(s, 10, 'lim', 'w', 'reg'),
    (e: unknown) => e instanceof LimitExceededError && e.limit === 'lim',
  );
  assert.equal(s.destroyed, true);
  const broken = new Readable({
    read() {
      this.destroy(Object.assign(new Error('reset hunter22'), { code: 'ECONNRESET' }));
    },
  });
  await assert.rejects(
    collect(broken, 10, 'lim', 'w', 'reg', undefined, (m) => m.replace('hunter22', '***')),
    (e: unknown) =>
      e instanceof NetworkError &&
      e.registry === 'reg' &&
      /ECONNRESET/.test(e.message) &&
      !e.message.includes('hunter22'),
  );
});

test('credential helper answers: found, not found, failures, and JSON that is not an object', () => {
  const at = { registry: 'reg', where: 'cfg', timeoutMs: 5 };
  const run = (code: number | null, out: string, error?: string) => ({
    code,
    stdout: Buffer.from(out),
    ...(error ? { error } : {}),
  });
  assert.deepEqual(helperAnswer(run(0, '{"Username":"u","Secret":"p"}'), 'b', at), {
    kind: 'basic',
    username: 'u',
    password: 'p',
  });
  assert.deepEqual(helperAnswer(run(0, '{"Username":"<token>","Secret":"r"}'), 'b', at), {
    kind: 'identity',
    username: '',
    identityToken: 'r',
  });
  assert.equal(helperAnswer(run(1, 'credentials not found in native keychain'), 'b', at), null);
  assert.equal(helperAnswer(run(null, '', 'aborted'), 'b', at), null);
  assert.throws(() => helperAnswer(run(null, '', 'ENOENT'), 'b', at), SettingsError);
  assert.throws(() => helperAnswer(run(null, '', 'timeout'), 'b', at), /within 5 ms/);
  assert.throws(
    () => helperAnswer(run(2, 'secret-ish output'), 'b', at),
    (e: unknown) => e instanceof RegistryAuthError && !e.message.includes('secret-ish'),
  );
  for (const out of ['not json', 'null', '[]', '{"Username":"u"}'])
    assert.throws(() => helperAnswer(run(0, out), 'b', at), RegistryAuthError, out);
});

test('a credential helper printing `null` is a RegistryAuthError, not a crash', async () => {
  writeFileSync(join(dir, 'docker-credential-msbnull'), '#!/bin/sh\ncat >/dev/null\necho null\n');
  chmodSync(join(dir, 'docker-credential-msbnull'), 0o755);
  await assert.rejects(
    runCredentialHelper('msbnull', 'reg.example', { timeoutMs: 10_000, env: { PATH: dir }, registry: 'reg.example' }),
    (e: unknown) => e instanceof RegistryAuthError && /no Username\/Secret/.test(e.message),
  );
});

test('a token realm answering `null` is a RegistryAuthError, not a crash', async () => {
  const f = await FaultServer.start();
  try {
    f.handlers.push((req, res) => {
      if (req.url?.startsWith('/token')) {
        res.setHeader('content-type', 'application/json');
        res.end('null');
      } else sendJson(res, 401, {}, { 'www-authenticate': `Bearer realm="${f.url}/token",service="t"` });
      return true;
    });
    const c = new RegistryClient({
      home: dir,
      settings: {},
      env: { DOCKER_CONFIG: join(dir, 'none') },
      backoffMs: () => 1,
    });
    try {
      await assert.rejects(
        c.fetchManifest({ domain: f.host, repository: 'a/b' }, 'latest'),
        (e: unknown) => e instanceof RegistryAuthError && /has no token/.test(e.message),
      );
    } finally {
      await c.close();
    }
    assert.equal(f.requests(/^\/token$/).length, 1);
  } finally {
    await f.close();
  }
});

test('a manifest body cut off mid-way is a NetworkError naming the registry, its description scrubbed', async () => {
  const f = await FaultServer.start();
  try {
    f.handlers.push((req, res) => {
      if (req.url === '/v2/') sendJson(res, 200, {});
      else {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"schemaVersion":');
        setTimeout(() => res.socket?.destroy(), 50);
      }
      return true;
    });
    const c = new RegistryClient({
      home: dir,
      settings: {},
      env: { DOCKER_CONFIG: join(dir, 'none') },
      backoffMs: () => 1,
    });
    try {
      await assert.rejects(
        c.fetchManifest({ domain: f.host, repository: 'a/b' }, 'latest'),
        (e: unknown) =>
          e instanceof NetworkError && e.registry === f.host && /manifest .*a\/b:latest: /.test(e.message),
      );
    } finally {
      await c.close();
    }
  } finally {
    await f.close();
  }
});

test('clients sharing a cache: cancelling one while the ping is in flight does not fail the others', async () => {
  const f = await FaultServer.start();
  try {
    f.handlers.push((req, res) => {
      if (req.url === '/v2/') setTimeout(() => sendJson(res, 200, {}), 300);
      else sendJson(res, 200, { schemaVersion: 2 }, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      return true;
    });
    const cache = new RegistryCache();
    const ac = new AbortController();
    const opts = { home: dir, settings: {}, env: { DOCKER_CONFIG: join(dir, 'none') }, cache };
    const a = new RegistryClient({ ...opts, signal: ac.signal });
    const b = new RegistryClient(opts);
    const c = new RegistryClient({ ...opts, signal: new AbortController().signal });
    const ref = { domain: f.host, repository: 'a/b' };
    try {
      const pa = a.fetchManifest(ref, 'latest');
      const pb = b.fetchManifest(ref, 'latest');
      const pc = c.fetchManifest(ref, 'latest');
      setTimeout(() => ac.abort(new Error('cancelled')), 100);
      await assert.rejects(pa, AbortedError);
      assert.equal((await pb).source, f.host);
      assert.equal((await pc).source, f.host);
      assert.equal(f.requests(/^\/v2\/$/).length, 1, 'one ping for the three');
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  } finally {
    await f.close();
  }
});

test('a cancelled ping with no one left waiting stops, and the next caller pings afresh', async () => {
  const f = await FaultServer.start();
  try {
    let pings = 0;
    let cancelled = 0;
    f.handlers.push((req, res) => {
      if (req.url === '/v2/') {
        res.on('close', () => {
          if (!res.writableEnded) cancelled++;
        });
        setTimeout(() => !res.destroyed && sendJson(res, 200, {}), ++pings === 1 ? 2_000 : 0);
      } else sendJson(res, 200, { schemaVersion: 2 }, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      return true;
    });
    const cache = new RegistryCache();
    const opts = { home: dir, settings: {}, env: { DOCKER_CONFIG: join(dir, 'none') }, cache };
    const ac = new AbortController();
    const a = new RegistryClient({ ...opts, signal: ac.signal });
    const b = new RegistryClient(opts);
    const ref = { domain: f.host, repository: 'a/b' };
    try {
      const pa = a.fetchManifest(ref, 'latest');
      setTimeout(() => ac.abort(new Error('cancelled')), 100);
      await assert.rejects(pa, AbortedError);
      assert.equal((await b.fetchManifest(ref, 'latest')).source, f.host);
      assert.equal(f.requests(/^\/v2\/$/).length, 2);
      assert.equal(cancelled, 1, 'the abandoned ping was cancelled, not left running');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await f.close();
  }
});

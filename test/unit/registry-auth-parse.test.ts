/** Pure pieces of the registry client: WWW-Authenticate, realm classification, Retry-After, docker config keys. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate, pickChallenge } from '../../src/registry/challenge.js';
import { classifyIp, validateRealm } from '../../src/registry/realm.js';
import { parseRetryAfter, fullJitterBackoff } from '../../src/registry/client.js';
import { dockerConfigKeys, runCredentialHelper } from '../../src/registry/credentials.js';
import { RegistryAuthError, SettingsError } from '../../src/errors.js';

test('WWW-Authenticate: several challenges, quoted escapes, several headers; Bearer preferred', () => {
  const c = parseWwwAuthenticate(
    'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
  );
  assert.deepEqual(c, [
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
    },
  ]);
  const two = parseWwwAuthenticate(
    'Basic realm="x, \\"y\\"", Bearer realm="https://t/", service=svc ,error="invalid_token"',
  );
  assert.equal(two.length, 2);
  assert.deepEqual(two[0], { scheme: 'basic', params: { realm: 'x, "y"' } });
  assert.deepEqual(two[1], {
    scheme: 'bearer',
    params: { realm: 'https://t/', service: 'svc', error: 'invalid_token' },
  });
  assert.equal(pickChallenge(two)?.scheme, 'bearer');
  const multi = parseWwwAuthenticate(['Basic realm="r"', 'BEARER Realm="https://t/x"']);
  assert.equal(pickChallenge(multi)?.params.realm, 'https://t/x');
  assert.deepEqual(parseWwwAuthenticate('Negotiate abc==, Basic realm=r'), [
    { scheme: 'negotiate', params: { token68: 'abc==' } },
    { scheme: 'basic', params: { realm: 'r' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(undefined), []);
  assert.deepEqual(parseWwwAuthenticate(''), []);
  assert.equal(pickChallenge(parseWwwAuthenticate('Digest realm="x"')), null);
  // Never throws on junk.
  for (const junk of ['"', '=', ',,,', 'Bearer realm="unterminated', 'Bearer ,,realm=', '\u0000\u0001'])
    parseWwwAuthenticate(junk);
});

test('address classes', () => {
  assert.equal(classifyIp('169.254.169.254'), 'link-local');
  assert.equal(classifyIp('fe80::1'), 'link-local');
  assert.equal(classifyIp('[fe80::abcd]'), 'link-local');
  assert.equal(classifyIp('127.0.0.2'), 'loopback');
  assert.equal(classifyIp('::1'), 'loopback');
  assert.equal(classifyIp('::ffff:127.0.0.1'), 'loopback');
  for (const p of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', 'fd00::1', '100.64.0.1'])
    assert.equal(classifyIp(p), 'private', p);
  for (const p of ['8.8.8.8', '172.32.0.1', '2606:4700::1']) assert.equal(classifyIp(p), 'public', p);
});

test('realm validation (docs/pull.md §2.2)', async () => {
  const dns: Record<string, string[]> = {
    'registry.example': ['203.0.113.5'],
    'auth.example': ['198.51.100.7'],
    'internal.example': ['10.0.0.5'],
    'meta.example': ['8.8.8.8', '169.254.169.254'],
    'lan-registry': ['192.168.0.10'],
  };
  const resolve = async (h: string) => dns[h] ?? [h];
  const ctx = {
    registry: 'registry.example',
    registryScheme: 'https' as 'http' | 'https',
    registryHostname: 'registry.example',
    registryInsecure: false,
    resolve,
  };
  assert.equal((await validateRealm('https://auth.example/token', ctx)).hostname, 'auth.example');
  const refuse = async (realm: string, c = ctx, re: RegExp) =>
    assert.rejects(
      validateRealm(realm, c),
      (e: unknown) => e instanceof RegistryAuthError && re.test(e.message),
      realm,
    );
  await refuse('http://auth.example/token', ctx, /must be https/);
  await refuse('https://169.254.169.254/x', ctx, /link-local/);
  await refuse('https://meta.example/x', ctx, /link-local/);
  await refuse('https://[fe80::1]/x', ctx, /link-local/);
  await refuse('https://internal.example/token', ctx, /private/);
  await refuse('https://127.0.0.1:5082/token', ctx, /loopback or private/);
  await refuse('https://user:pw@auth.example/', ctx, /userinfo/);
  await refuse('not a url', ctx, /not a valid URL/);
  // Plain-http registry: http realm allowed; private realm allowed for a private registry or an insecure one.
  await validateRealm('http://127.0.0.1:5082/token', { ...ctx, registryScheme: 'http', registryHostname: '127.0.0.1' });
  await validateRealm('https://internal.example/token', { ...ctx, registryHostname: 'lan-registry' });
  await validateRealm('https://internal.example/token', { ...ctx, registryInsecure: true });
  // Link-local realm allowed only for a link-local registry.
  await validateRealm('https://169.254.1.1/token', { ...ctx, registryHostname: '169.254.1.2' });
  await refuse(
    'http://169.254.169.254/',
    { ...ctx, registryScheme: 'http', registryHostname: '127.0.0.1', registryInsecure: true },
    /link-local/,
  );
});

test('Retry-After and backoff', () => {
  assert.equal(parseRetryAfter('1'), 1000);
  assert.equal(parseRetryAfter(' 120 '), 120_000);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:30 GMT', now), 0);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter(null), null);
  for (let a = 0; a < 12; a++) {
    const d = fullJitterBackoff(a);
    assert.ok(d >= 0 && d <= Math.min(10_000, 200 * 2 ** a), `${a}: ${d}`);
  }
});

test('docker config keys', () => {
  assert.deepEqual(dockerConfigKeys('docker.io'), [
    'https://index.docker.io/v1/',
    'index.docker.io',
    'docker.io',
    'registry-1.docker.io',
  ]);
  assert.deepEqual(dockerConfigKeys('ghcr.io'), ['ghcr.io', 'https://ghcr.io', 'http://ghcr.io']);
});

test('credential helper names are validated before anything runs', async () => {
  for (const bad of ['../x', 'a/b', 'a b', '', 'x;rm']) {
    await assert.rejects(
      runCredentialHelper(bad, 'h', { timeoutMs: 1000, env: process.env, registry: 'h' }),
      SettingsError,
      bad,
    );
  }
  await assert.rejects(
    runCredentialHelper('msb-test-surely-missing', 'h', {
      timeoutMs: 1000,
      env: { PATH: '/nonexistent' },
      registry: 'h',
    }),
    (e: unknown) => e instanceof SettingsError && /not found on PATH/.test(e.message),
  );
});

/**
 * Mirror settings (issue 14 item 1): config.json's plain-string and object mirrors, the
 * MSB_REGISTRY_MIRRORS override, the endpoint list each capability gets, and the one URL
 * redaction (issue 9 item 2). Pure: no peers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSettings } from '../../src/settings/settings.js';
import { redactUrl, SettingsError } from '../../src/errors.js';
import { configuredMirrors, parseMirrorsEnv, registryEndpoints } from '../../src/registry/mirrors.js';

const parse = (o: unknown) => parseSettings(JSON.stringify(o), '/h/config.json', '/h');

test('mirrors: plain strings stay strings; objects carry insecure, ca_certs, auth and capabilities', () => {
  const s = parse({
    registries: {
      hosts: {
        'docker.io': {
          mirrors: [
            'http://m0:5000',
            {
              url: 'https://m1.site',
              insecure: true,
              ca_certs: ['/ca.pem'],
              auth: { username: 'u', password_env: 'PW' },
              capabilities: ['pull', 'pull'],
            },
          ],
        },
      },
    },
  });
  assert.deepEqual(s.registries.hosts['docker.io']!.mirrors, [
    'http://m0:5000',
    {
      url: 'https://m1.site',
      insecure: true,
      caCerts: ['/ca.pem'],
      auth: { username: 'u', passwordEnv: 'PW' },
      capabilities: ['pull'],
    },
  ]);
});

test('mirrors: a wrong value is a SettingsError naming the key path, never showing the URL', () => {
  const cases: [unknown, RegExp][] = [
    [['ftp://u:pw@x'], /registries\.hosts\.h\.mirrors\[0\]: expected a scheme:\/\/host/],
    [[{ url: 'http://x/path' }], /mirrors\[0\]\.url: expected/],
    [[{}], /mirrors\[0\]\.url/],
    [[{ url: 'http://x', capabilities: ['push'] }], /mirrors\[0\]\.capabilities\[0\]: expected "pull" or "resolve"/],
    [[{ url: 'http://x', capabilities: [] }], /mirrors\[0\]\.capabilities: expected at least one/],
    [
      [{ url: 'http://x', auth: { username: 'u' } }],
      /mirrors\[0\]\.auth: expected exactly one of "secret" or "password_env"/,
    ],
    [[{ url: 'http://x', insecure: 'yes' }], /mirrors\[0\]\.insecure: expected true or false/],
    [[42], /mirrors\[0\]: expected an object/],
    ['http://x', /mirrors: expected an array/],
  ];
  for (const [mirrors, re] of cases) {
    assert.throws(
      () => parse({ registries: { hosts: { h: { mirrors } } } }),
      (e: unknown) => e instanceof SettingsError && re.test(e.message) && !e.message.includes('pw'),
      JSON.stringify(mirrors),
    );
  }
});

test('MSB_REGISTRY_MIRRORS: host=url[,url…][;…]; empty turns a host off; bad values refused without userinfo', () => {
  assert.equal(parseMirrorsEnv(undefined), null);
  assert.equal(parseMirrorsEnv('  '), null);
  assert.deepEqual(
    [...parseMirrorsEnv(' docker.io = https://m1 , http://m2:5000/ ; ghcr.io=')!],
    [
      ['docker.io', ['https://m1', 'http://m2:5000/']],
      ['ghcr.io', []],
    ],
  );
  assert.deepEqual(
    [...parseMirrorsEnv('index.docker.io=http://m3')!],
    [['docker.io', ['http://m3']]],
    "Docker Hub's aliases fold into docker.io",
  );
  for (const bad of [
    'docker.io',
    '=http://m',
    'docker.io=ftp://u:secretpw@m',
    'docker.io=http://m/path',
    'a/b=http://m',
  ]) {
    assert.throws(
      () => parseMirrorsEnv(bad),
      (e: unknown) =>
        e instanceof SettingsError && /MSB_REGISTRY_MIRRORS/.test(e.message) && !e.message.includes('secretpw'),
      bad,
    );
  }
  const settings = {
    registries: { hosts: { 'docker.io': { mirrors: ['http://cfg'] }, 'quay.io': { mirrors: ['http://q'] } } },
  };
  assert.deepEqual(configuredMirrors('docker.io', settings, { MSB_REGISTRY_MIRRORS: 'docker.io=http://env' }), [
    'http://env',
  ]);
  assert.deepEqual(configuredMirrors('quay.io', settings, { MSB_REGISTRY_MIRRORS: 'docker.io=http://env' }), [
    'http://q',
  ]);
  assert.deepEqual(configuredMirrors('docker.io', settings, { MSB_REGISTRY_MIRRORS: 'docker.io=' }), []);
});

test('endpoints: resolve-capable mirrors for tags, pull-capable for digests and blobs, origin last; per-mirror TLS and credentials', () => {
  const settings = {
    registries: {
      caCerts: ['/g.pem'],
      hosts: {
        'docker.io': {
          mirrors: [
            'https://alice:pw1@plain:5000',
            { url: 'https://pullonly', capabilities: ['pull' as const], caCerts: ['/m.pem'] },
            {
              url: 'http://resolveonly',
              capabilities: ['resolve' as const],
              auth: { username: 'bob', passwordEnv: 'X' },
            },
          ],
        },
        'plain:5000': { insecure: true, caCerts: ['/own.pem'] },
      },
    },
  };
  const pull = registryEndpoints('docker.io', settings, 'pull', { env: {} });
  const resolve = registryEndpoints('docker.io', settings, 'resolve', { env: {} });
  assert.deepEqual(
    pull.map((e) => e.source),
    ['https://plain:5000', 'https://pullonly', 'docker.io'],
  );
  assert.deepEqual(
    resolve.map((e) => e.source),
    ['https://plain:5000', 'http://resolveonly', 'docker.io'],
  );
  const [plain, pullOnly] = pull;
  assert.equal(plain!.insecure, true, "a plain string takes its host entry's insecure");
  assert.deepEqual(plain!.caFiles, ['/g.pem', '/own.pem']);
  assert.deepEqual(plain!.auth, { username: 'alice', password: 'pw1' });
  assert.equal(pullOnly!.insecure, false);
  assert.deepEqual(pullOnly!.caFiles, ['/g.pem', '/m.pem']);
  assert.deepEqual(resolve[1]!.auth, {
    config: { username: 'bob', passwordEnv: 'X' },
    key: 'registries.hosts.docker.io.mirrors[2].auth',
  });
  assert.equal(pull[2]!.host, 'registry-1.docker.io');
  assert.ok(!JSON.stringify(pull.map((e) => e.source)).includes('pw1'));
});

test('redactUrl: one helper for URLs and for messages with URLs in them', () => {
  assert.equal(redactUrl('http://u:p@h:5000'), 'http://h:5000');
  assert.equal(redactUrl('http://u:p@h:5000/'), 'http://h:5000/');
  assert.equal(redactUrl('https://cdn/blob?X-Amz-Signature=s#f'), 'https://cdn/blob?…');
  assert.equal(
    redactUrl('GET http://u:p@h/v2/x/blobs/sha256:1?sig=2: ECONNRESET'),
    'GET http://h/v2/x/blobs/sha256:1?…: ECONNRESET',
  );
  assert.equal(redactUrl('from https://a:b@x/y to http://c:d@z'), 'from https://x/y to http://z');
  assert.equal(redactUrl('ftp://u:p@h/x?q'), 'ftp://h/x?…');
  assert.equal(redactUrl('no url here'), 'no url here');
});

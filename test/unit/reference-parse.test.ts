/** docs/pull.md §1: reference grammar, normalization, familiar form, digest selectors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, parseImageSelector, registryEndpointHost } from '../../src/reference/reference.js';
import { InvalidReferenceError } from '../../src/errors.js';

const H64 = '0123456789abcdef'.repeat(4);
const H96 = '0123456789abcdef'.repeat(6);
const H128 = '0123456789abcdef'.repeat(8);
const D = `sha256:${H64}`;

/** [input, canonical, familiar] — the table of docs/pull.md §1.2 plus edge cases. */
const VALID: [string, string, string][] = [
  ['python', 'docker.io/library/python:latest', 'python:latest'],
  ['python:3.12', 'docker.io/library/python:3.12', 'python:3.12'],
  ['library/python:3.12', 'docker.io/library/python:3.12', 'python:3.12'],
  ['docker.io/library/python:3.12', 'docker.io/library/python:3.12', 'python:3.12'],
  ['index.docker.io/library/python', 'docker.io/library/python:latest', 'python:latest'],
  ['myorg/app', 'docker.io/myorg/app:latest', 'myorg/app:latest'],
  ['docker.io/my.org/app', 'docker.io/my.org/app:latest', 'docker.io/my.org/app:latest'],
  ['ghcr.io/org/app:v1', 'ghcr.io/org/app:v1', 'ghcr.io/org/app:v1'],
  ['GHCR.io/org/app:v1', 'ghcr.io/org/app:v1', 'ghcr.io/org/app:v1'],
  ['localhost:5000/app', 'localhost:5000/app:latest', 'localhost:5000/app:latest'],
  ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
  ['localhost', 'docker.io/library/localhost:latest', 'localhost:latest'],
  ['example.com', 'docker.io/library/example.com:latest', 'example.com:latest'],
  ['127.0.0.1:5000/peers/busybox', '127.0.0.1:5000/peers/busybox:latest', '127.0.0.1:5000/peers/busybox:latest'],
  ['[::1]:5000/app:v2', '[::1]:5000/app:v2', '[::1]:5000/app:v2'],
  ['a/b/c/d', 'docker.io/a/b/c/d:latest', 'a/b/c/d:latest'],
  [`python@${D}`, `docker.io/library/python@${D}`, `python@${D}`],
  [`python:3.12@${D}`, `docker.io/library/python:3.12@${D}`, `python:3.12@${D}`],
  [`sha256:${H64}`, `docker.io/library/sha256:${H64}`, `library/sha256:${H64}`],
  [`library/sha256:${H64}`, `docker.io/library/sha256:${H64}`, `library/sha256:${H64}`],
  ['sha256:latest', 'docker.io/library/sha256:latest', 'sha256:latest'],
  [`sha256:${H64.toUpperCase()}`, `docker.io/library/sha256:${H64.toUpperCase()}`, `sha256:${H64.toUpperCase()}`],
  ['  python:3.12\n', 'docker.io/library/python:3.12', 'python:3.12'],
  ['localhost:5000', 'docker.io/library/localhost:5000', 'localhost:5000'],
  ['[fe80::1]/x/y', '[fe80::1]/x/y:latest', '[fe80::1]/x/y:latest'],
  ['[2001:DB8::1]:443/app', '[2001:db8::1]:443/app:latest', '[2001:db8::1]:443/app:latest'],
  ['docker.io/localhost/app', 'docker.io/localhost/app:latest', 'docker.io/localhost/app:latest'],
  ['docker.io/library/localhost', 'docker.io/library/localhost:latest', 'localhost:latest'],
  ['docker.io/library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest'],
  ['INDEX.DOCKER.IO/myorg/app', 'docker.io/myorg/app:latest', 'myorg/app:latest'],
  ['a__b/c_d/e.f/g--h---i', 'docker.io/a__b/c_d/e.f/g--h---i:latest', 'a__b/c_d/e.f/g--h---i:latest'],
  ['app:_Tag.1-x', 'docker.io/library/app:_Tag.1-x', 'app:_Tag.1-x'],
  [`app:${'t'.repeat(128)}`, `docker.io/library/app:${'t'.repeat(128)}`, `app:${'t'.repeat(128)}`],
  [`ghcr.io/o/a@sha384:${H96}`, `ghcr.io/o/a@sha384:${H96}`, `ghcr.io/o/a@sha384:${H96}`],
  [`ghcr.io/o/a:v@sha512:${H128}`, `ghcr.io/o/a:v@sha512:${H128}`, `ghcr.io/o/a:v@sha512:${H128}`],
  [`library/${H64}`, `docker.io/library/${H64}:latest`, `library/${H64}:latest`],
  ['reg-1.example.com:65535/a', 'reg-1.example.com:65535/a:latest', 'reg-1.example.com:65535/a:latest'],
  ['a', 'docker.io/library/a:latest', 'a:latest'],
  ['0/1', 'docker.io/0/1:latest', '0/1:latest'],
];

test('valid references normalize to the canonical and familiar forms of docs/pull.md §1.2', () => {
  for (const [input, canonical, familiar] of VALID) {
    const r = parseReference(input);
    assert.equal(r.canonical, canonical, `canonical of ${JSON.stringify(input)}`);
    assert.equal(r.familiar, familiar, `familiar of ${JSON.stringify(input)}`);
    // Idempotence: both forms normalize back to the same canonical form.
    assert.equal(parseReference(r.canonical).canonical, canonical, `re-parse canonical ${canonical}`);
    assert.equal(parseReference(r.familiar).canonical, canonical, `re-parse familiar ${familiar}`);
    // The familiar form is never a digest selector.
    assert.equal(parseImageSelector(r.familiar).kind, 'reference', familiar);
  }
});

test('parsed fields', () => {
  assert.deepEqual(parseReference(`python:3.12@${D}`), {
    canonical: `docker.io/library/python:3.12@${D}`,
    familiar: `python:3.12@${D}`,
    domain: 'docker.io',
    repository: 'library/python',
    tag: '3.12',
    digest: D,
  });
  assert.deepEqual(parseReference(`localhost:5000/app@${D}`), {
    canonical: `localhost:5000/app@${D}`,
    familiar: `localhost:5000/app@${D}`,
    domain: 'localhost:5000',
    repository: 'app',
    tag: null,
    digest: D,
  });
  const r = parseReference('[::1]:5000/app:v2');
  assert.equal(r.domain, '[::1]:5000');
  assert.equal(r.repository, 'app');
  assert.equal(r.tag, 'v2');
});

/** [input, substring of the reason] */
const INVALID: [string, string][] = [
  ['Python', 'must be lowercase'],
  ['Foo/bar', "registry host must contain '.' or ':' or be 'localhost'"],
  ['LOCALHOST/app', 'registry host must contain'],
  ['app:tag:x', 'invalid repository path component'],
  ['app@sha256:abc', 'invalid digest'],
  [H64, 'a 64-character hex string is not a repository name'],
  [`${H64}:v1`, 'a 64-character hex string'],
  ['', 'empty'],
  ['   ', 'empty'],
  ['a//b', 'empty path component'],
  ['-app', 'invalid repository path component'],
  ['app-', 'invalid repository path component'],
  ['a/', 'empty path component'],
  ['/a', 'empty'],
  ['ghcr.io/Org/app', 'must be lowercase'],
  ['ghcr.io/org/App:v1', 'must be lowercase'],
  [`app@sha256:${H64.toUpperCase()}`, 'invalid digest'],
  [`app@sha256:${H64}0`, 'invalid digest'],
  [`app@md5:${H64.slice(0, 32)}`, 'invalid digest'],
  [`app@sha384:${H64}`, 'invalid digest'],
  ['app@', 'invalid digest'],
  ['app:', 'invalid tag'],
  ['app:-x', 'invalid tag'],
  [`app:${'t'.repeat(129)}`, 'invalid tag'],
  ['a___b', 'invalid repository path component'],
  ['a..b', 'invalid repository path component'],
  ['a b', 'invalid'],
  ['ex_ample.com/app', 'invalid registry host'],
  ['-example.com/app', 'invalid registry host'],
  [':5000/app', 'invalid registry host'],
  ['localhost:99999/app', 'invalid registry port'],
  ['localhost:50a/app', 'invalid registry host'],
  ['[::1/app', 'invalid registry host'],
  ['[zz::1]:5000/app', 'invalid registry host'],
  [`ghcr.io/${'a'.repeat(255 - 7)}`, 'longer than 255'],
  [`${'a'.repeat(255 - 'docker.io/library/'.length + 1)}`, 'longer than 255'],
  ['app@@' + D, 'invalid repository path component'],
  ['app:v1/x', 'invalid'],
];

test('invalid references throw InvalidReferenceError with a reason', () => {
  for (const [input, reason] of INVALID) {
    assert.throws(
      () => parseReference(input),
      (e: unknown) => {
        assert.ok(e instanceof InvalidReferenceError, `${JSON.stringify(input)}: ${String(e)}`);
        assert.equal(e.code, 'INVALID_REFERENCE');
        assert.ok(
          e.reason.includes(reason),
          `${JSON.stringify(input)}: reason ${JSON.stringify(e.reason)} lacks ${JSON.stringify(reason)}`,
        );
        return true;
      },
      JSON.stringify(input),
    );
  }
});

test('name length limit is 255 on the normalized name', () => {
  const ok = `ghcr.io/${'a'.repeat(255 - 8)}`;
  assert.equal(ok.length, 255);
  assert.equal(parseReference(ok).canonical, `${ok}:latest`);
  const hub = 'a'.repeat(255 - 'docker.io/library/'.length);
  assert.equal(parseReference(hub).repository, `library/${hub}`);
});

test('digest selectors (docs/pull.md §1.2 step 9)', () => {
  assert.deepEqual(parseImageSelector(D), { kind: 'digest', digest: D });
  assert.deepEqual(parseImageSelector(` ${D} `), { kind: 'digest', digest: D });
  assert.deepEqual(parseImageSelector(`sha512:${H128}`), { kind: 'digest', digest: `sha512:${H128}` });
  const lib = parseImageSelector(`library/sha256:${H64}`);
  assert.equal(lib.kind, 'reference');
  assert.equal(lib.kind === 'reference' && lib.canonical, `docker.io/library/sha256:${H64}`);
  const py = parseImageSelector('python');
  assert.equal(py.kind === 'reference' && py.canonical, 'docker.io/library/python:latest');
  assert.throws(() => parseImageSelector('Python'), InvalidReferenceError);
  // Uppercase hex is not a digest selector: it is the tag of docker.io/library/sha256.
  const up = parseImageSelector(`sha256:${H64.toUpperCase()}`);
  assert.equal(up.kind, 'reference');
  assert.throws(() => parseImageSelector(`sha256:${H64.slice(1)}`.replace('sha256', 'Sha256')), InvalidReferenceError);
});

test('registry endpoint host (docs/pull.md §1.3)', () => {
  assert.equal(registryEndpointHost('docker.io'), 'registry-1.docker.io');
  assert.equal(registryEndpointHost('ghcr.io'), 'ghcr.io');
  assert.equal(registryEndpointHost('localhost:5000'), 'localhost:5000');
  assert.equal(registryEndpointHost(parseReference('index.docker.io/x/y').domain), 'registry-1.docker.io');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestPathForm, isDigest, digestFromPathForm } from '../../src/util/digest.js';
import { redactUrl, LimitExceededError, MsbError } from '../../src/errors.js';

test('digests are validated before they become path names', () => {
  const d = 'sha256:' + 'a'.repeat(64);
  assert.equal(isDigest(d), true);
  assert.equal(digestPathForm(d), 'sha256_' + 'a'.repeat(64));
  assert.equal(digestFromPathForm('sha256_' + 'a'.repeat(64) + '.erofs', '.erofs'), d);
  for (const bad of [
    'sha256:' + 'A'.repeat(64),
    'sha256:../../etc/passwd',
    'md5:' + 'a'.repeat(32),
    'sha256:' + 'a'.repeat(63),
  ]) {
    assert.equal(isDigest(bad), false, bad);
    assert.throws(() => digestPathForm(bad));
  }
});

test('errors carry codes and URLs are redacted', () => {
  const e = new LimitExceededError('maxLayers', 1001, 1000);
  assert.ok(e instanceof MsbError);
  assert.equal(String(e).startsWith('LIMIT_EXCEEDED: '), true);
  assert.equal(redactUrl('https://u:p@cdn.example/blob?X-Amz-Signature=secret'), 'https://cdn.example/blob?…');
});

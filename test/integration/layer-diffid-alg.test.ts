/**
 * diff_ids in any of the three algorithms (docs/pull.md §7): the layer writer hashes the decompressed
 * stream with the algorithm of the expected diff_id, so a sha384/sha512 diff_id verifies — through
 * writeLayer, convertLayer (expectDiffId) and the pull's single-pass pipeline with the real
 * converter — and a wrong one of the same algorithm is still a mismatch. The image's uuid is the
 * first 16 bytes of that digest (docs/erofs.md §3).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { convertLayer } from '../../src/erofs/convert.js';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { checkErofsHeader } from '../../src/erofs/reader.js';
import { downloadAndConvert, type BlobEvent, type BlobSource } from '../../src/pull/blob-pipeline.js';
import { defaultConverterDeps } from '../../src/pull/deps-default.js';
import { PullEmitter } from '../../src/pull/events.js';
import { DigestMismatchError } from '../../src/errors.js';
import { digestUuid } from '../../src/util/digest.js';
import { tempDir } from '../helpers/env.js';
import { chunks, fsckOk } from '../helpers/layer.js';
import * as T from '../helpers/tar-writer.js';

const digest = (alg: string, b: Buffer) => `${alg}:${createHash(alg).update(b).digest('hex')}`;
const SAMPLE = T.tar(
  T.dir('etc'),
  T.file('etc/motd', 'hello from a sha512 layer\n'),
  T.file('big', Buffer.alloc(20000, 7)),
);

function setup(t: { after: (fn: () => void) => void }): string {
  const d = tempDir();
  t.after(d.cleanup);
  return d.dir;
}

for (const alg of ['sha256', 'sha384', 'sha512'] as const) {
  test(`writeLayer: diffIdAlgorithm ${alg} hashes the stream with ${alg}; the uuid follows it`, async (t) => {
    const dir = setup(t);
    const out = join(dir, `${alg}.erofs`);
    const r = await writeLayer(chunks(SAMPLE, 1000), out, { diffIdAlgorithm: alg });
    assert.equal(r.diffId, digest(alg, SAMPLE));
    await checkErofsHeader(out, { uuid: digestUuid(r.diffId) });
    fsckOk(out);
  });
}

test("writeLayer: the algorithm defaults to expectDiffId's; sha256 otherwise", async (t) => {
  const dir = setup(t);
  const r = await writeLayer(chunks(SAMPLE), join(dir, 'a.erofs'), { expectDiffId: digest('sha384', SAMPLE) });
  assert.equal(r.diffId, digest('sha384', SAMPLE));
  const r2 = await writeLayer(chunks(SAMPLE), join(dir, 'b.erofs'));
  assert.equal(r2.diffId, digest('sha256', SAMPLE));
  // Same content, another algorithm: only the superblock (uuid, checksum) differs.
  const a = readFileSync(join(dir, 'a.erofs'));
  const b = readFileSync(join(dir, 'b.erofs'));
  assert.equal(a.length, b.length);
  assert.ok(a.subarray(4096).equals(b.subarray(4096)));
});

test('convertLayer: a sha512 / sha384 expectDiffId verifies; a wrong one of the same algorithm is DIGEST_MISMATCH', async (t) => {
  const dir = setup(t);
  const gz = join(dir, 'l.tar.gz');
  writeFileSync(gz, gzipSync(SAMPLE));
  for (const alg of ['sha384', 'sha512']) {
    const r = await convertLayer(gz, join(dir, `${alg}.erofs`), { expectDiffId: digest(alg, SAMPLE) });
    assert.equal(r.diffId, digest(alg, SAMPLE));
    const wrong = digest(alg, Buffer.from('something else'));
    await assert.rejects(
      convertLayer(gz, join(dir, `${alg}-bad.erofs`), { expectDiffId: wrong }),
      (e: unknown) =>
        e instanceof DigestMismatchError &&
        e.what === 'diffId' &&
        e.expected === wrong &&
        e.actual === digest(alg, SAMPLE),
    );
  }
});

test('pull pipeline with the real converter: a sha512 diff_id verifies (it used to mismatch always)', async (t) => {
  const dir = setup(t);
  const blob = gzipSync(SAMPLE);
  const desc = {
    digest: digest('sha256', blob),
    size: blob.length,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  };
  const src: BlobSource = () =>
    (async function* (): AsyncGenerator<BlobEvent> {
      yield { type: 'open', rangeStart: 0, endpointIndex: 0, isMirror: false, source: 'test' };
      for (let i = 0; i < blob.length; i += 100) yield { type: 'data', chunk: blob.subarray(i, i + 100) };
    })();
  const deps = await defaultConverterDeps();
  const run = (diffId: string, n: number) =>
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId,
      partPath: join(dir, `p${n}.part`),
      candidatePath: join(dir, `c${n}.erofs`),
      source: src,
      deps,
      emitter: new PullEmitter(),
      signal: new AbortController().signal,
    });
  const r = await run(digest('sha512', SAMPLE), 1);
  assert.equal(r.diffId, digest('sha512', SAMPLE));
  await checkErofsHeader(join(dir, 'c1.erofs'), { uuid: digestUuid(r.diffId) });
  const wrong = digest('sha512', Buffer.from('x'));
  await assert.rejects(
    run(wrong, 2),
    (e: unknown) => e instanceof DigestMismatchError && e.what === 'diffId' && e.expected === wrong,
  );
});

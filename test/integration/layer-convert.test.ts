/**
 * convertLayer and `msb layer convert` (docs/api.md §5, docs/cli.md §9, docs/pull.md §7): compression detection,
 * diff_id checks and their precedence, decoder errors, the zstd window limit, gzip bombs against
 * maxLayerBytes (I8), abort, atomic output, and the CLI's JSON line and error lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { convertLayer } from '../../src/erofs/convert.js';
import { detectCompression, ZstdFrameScanner } from '../../src/layer/compression.js';
import { LimitExceededError } from '../../src/errors.js';
import { main } from '../../src/cli/main.js';
import { run, tempDir } from '../helpers/env.js';
import { fsckOk, rejectsTyped, withMount } from '../helpers/layer.js';
import * as T from '../helpers/tar-writer.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function setup(t: { after: (fn: () => void) => void }) {
  const d = tempDir();
  t.after(d.cleanup);
  return d.dir;
}

const SAMPLE = T.tar(T.dir('etc'), T.file('etc/motd', 'hello from a layer\n'), T.symlink('link', 'etc/motd'));

test('detectCompression: gzip, zstd (plain and skippable), tar, empty, zero blocks, garbage', () => {
  assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd');
  assert.equal(detectCompression(Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])), 'zstd');
  assert.equal(detectCompression(SAMPLE.subarray(0, 512)), 'none');
  assert.equal(detectCompression(Buffer.alloc(0)), 'none');
  assert.equal(detectCompression(Buffer.alloc(512)), 'none');
  assert.equal(detectCompression(Buffer.from('{"not":"a tar"}')), null);
  const bad = Buffer.from(SAMPLE.subarray(0, 512));
  bad[0] = bad[0]! ^ 1;
  assert.equal(detectCompression(bad), null);
});

test('zstd frame scanner: windows above 128 MiB are refused before decoding, 128 MiB is fine', () => {
  const frame = (wd: number) => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04, wd]);
  assert.throws(
    () => new ZstdFrameScanner(128 << 20).feed(frame(0x90)),
    (e: unknown) => e instanceof LimitExceededError && e.limit === 'zstdWindowBytes' && e.value === 256 << 20,
  );
  assert.throws(
    () => new ZstdFrameScanner(128 << 20).feed(frame(0x89)),
    (e: unknown) => e instanceof LimitExceededError && e.value === (128 << 20) + (16 << 20),
  );
  new ZstdFrameScanner(128 << 20).feed(frame(0x88));
});

test('D4: file, stdin stream, gzip, zstd (also with a skippable frame) give identical images and diff_ids', async (t) => {
  const dir = setup(t);
  const tarFile = join(dir, 'l.tar');
  writeFileSync(tarFile, SAMPLE);
  writeFileSync(`${tarFile}.gz`, gzipSync(SAMPLE));
  run('zstd', ['-q', tarFile, '-o', `${tarFile}.zst`]);
  const skippable = Buffer.concat([
    Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]),
    readFileSync(`${tarFile}.zst`),
  ]);
  writeFileSync(`${tarFile}.skip.zst`, skippable);
  const results = [];
  results.push(await convertLayer(tarFile, join(dir, 'a.erofs')));
  results.push(
    await convertLayer(Readable.from([SAMPLE.subarray(0, 100), SAMPLE.subarray(100)]), join(dir, 'b.erofs')),
  );
  results.push(await convertLayer(`${tarFile}.gz`, join(dir, 'c.erofs')));
  results.push(await convertLayer(createReadStream(`${tarFile}.zst`), join(dir, 'd.erofs')));
  results.push(await convertLayer(`${tarFile}.skip.zst`, join(dir, 'e.erofs')));
  assert.deepEqual(
    results.map((r) => r.compression),
    ['none', 'none', 'gzip', 'zstd', 'zstd'],
  );
  for (const r of results) {
    assert.equal(r.diffId, sha(SAMPLE));
    assert.deepEqual({ ...r, compression: 'x' }, { ...results[0]!, compression: 'x' });
  }
  const bytes = readFileSync(join(dir, 'a.erofs'));
  for (const n of ['b', 'c', 'd', 'e']) assert.ok(readFileSync(join(dir, `${n}.erofs`)).equals(bytes), n);
  assert.equal(results[0]!.sizeBytes, bytes.length);
  assert.equal(results[0]!.blocks * 4096, bytes.length);
  assert.equal(results[0]!.entries, 3);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes('.partial')),
    [],
  );
  fsckOk(join(dir, 'a.erofs'));
});

test('expectDiffId: match publishes; mismatch → DIGEST_MISMATCH and no output; it wins over a tar error (uncompressed)', async (t) => {
  const dir = setup(t);
  const out = join(dir, 'o.erofs');
  const right = sha(SAMPLE);
  const wrong = `sha256:${'0'.repeat(64)}`;
  await convertLayer(Readable.from([SAMPLE]), out, { expectDiffId: right });
  assert.ok(statSync(out).size > 0);
  const out2 = join(dir, 'o2.erofs');
  const e = await rejectsTyped(
    convertLayer(Readable.from([SAMPLE]), out2, { expectDiffId: wrong }),
    'DIGEST_MISMATCH',
    undefined,
    { dir, prefix: 'o2.erofs' },
  );
  assert.equal((e as unknown as { actual: string }).actual, right);
  // A hostile uncompressed tar: the diff_id is still computed over the whole stream.
  const hostile = Buffer.concat([T.tar(T.file('../evil', 'x')), Buffer.alloc(4096, 0x55)]);
  await rejectsTyped(
    convertLayer(Readable.from([hostile]), join(dir, 'h1.erofs'), { expectDiffId: wrong }),
    'DIGEST_MISMATCH',
    undefined,
    { dir, prefix: 'h1.erofs' },
  );
  await rejectsTyped(
    convertLayer(Readable.from([hostile]), join(dir, 'h2.erofs'), { expectDiffId: sha(hostile) }),
    'LAYER_INVALID',
    /traversal/,
    { dir, prefix: 'h2.erofs' },
  );
  // Not a tar at all: LAYER_INVALID, or DIGEST_MISMATCH when a diff_id was expected and differs.
  const junk = Buffer.from('{"this is": "json, not a layer"}'.repeat(40));
  await rejectsTyped(
    convertLayer(Readable.from([junk]), join(dir, 'j1.erofs')),
    'LAYER_INVALID',
    /neither gzip, zstd nor tar/,
  );
  await rejectsTyped(
    convertLayer(Readable.from([junk]), join(dir, 'j2.erofs'), { expectDiffId: wrong }),
    'DIGEST_MISMATCH',
  );
  await rejectsTyped(
    convertLayer(Readable.from([SAMPLE]), join(dir, 'x.erofs'), { expectDiffId: 'sha256:nope' }),
    'INVALID_ARGUMENT',
  );
  assert.deepEqual(readdirSync(dir), ['o.erofs']);
});

test('decoder errors: corrupt and truncated gzip/zstd → LAYER_INVALID; zstd window 256 MiB → LIMIT_EXCEEDED', async (t) => {
  const dir = setup(t);
  const gz = gzipSync(T.tar(T.file('a', Buffer.alloc(100000, 3))));
  const corrupt = Buffer.from(gz);
  corrupt[gz.length >> 1] = corrupt[gz.length >> 1]! ^ 0xff;
  await rejectsTyped(
    convertLayer(Readable.from([corrupt]), join(dir, 'c.erofs')),
    'LAYER_INVALID',
    /gzip|truncated|checksum/i,
  );
  await rejectsTyped(
    convertLayer(Readable.from([gz.subarray(0, gz.length - 20)]), join(dir, 't.erofs')),
    'LAYER_INVALID',
  );
  const tarFile = join(dir, 'x.tar');
  writeFileSync(tarFile, T.tar(T.file('a', Buffer.alloc(100000, 3))));
  const zst = run('sh', ['-c', `cat '${tarFile}' | zstd -q --long=28 -c -`], {
    encoding: 'buffer',
  } as never) as unknown as Buffer;
  const e = await rejectsTyped(convertLayer(Readable.from([zst]), join(dir, 'w.erofs')), 'LIMIT_EXCEEDED');
  assert.equal((e as LimitExceededError).limit, 'zstdWindowBytes');
  const z27 = run('sh', ['-c', `cat '${tarFile}' | zstd -q --long=27 -c -`], {
    encoding: 'buffer',
  } as never) as unknown as Buffer;
  await convertLayer(Readable.from([z27]), join(dir, 'ok.erofs'));
  await rejectsTyped(
    convertLayer(Readable.from([z27.subarray(0, z27.length - 10)]), join(dir, 'zt.erofs')),
    'LAYER_INVALID',
    /zstd/,
  );
  const zc = Buffer.from(z27);
  zc[20] = zc[20]! ^ 0xff;
  await rejectsTyped(convertLayer(Readable.from([zc]), join(dir, 'zc.erofs')), 'LAYER_INVALID');
  assert.deepEqual(readdirSync(dir).sort(), ['ok.erofs', 'x.tar']);
});

test('I8: gzip-compressed zeros beyond maxLayerBytes → LIMIT_EXCEEDED, nothing large on disk', async (t) => {
  const dir = setup(t);
  const bomb = join(dir, 'bomb.gz');
  // 11 gzip members of 100 MiB of zeros each: a 1.1 GiB stream from ~1 MB (multi-member gzip).
  const member = gzipSync(Buffer.alloc(100 << 20), { level: 9 });
  writeFileSync(bomb, Buffer.concat(Array.from({ length: 11 }, () => member)));
  assert.ok(statSync(bomb).size < 2 << 20);
  const e = await rejectsTyped(
    convertLayer(bomb, join(dir, 'out.erofs'), { limits: { maxLayerBytes: 1 << 30 } }),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e as LimitExceededError).limit, 'maxLayerBytes');
  assert.deepEqual(readdirSync(dir), ['bomb.gz']);
});

test('abort: a stalled stream is cut off, the candidate is deleted, AbortedError', async (t) => {
  const dir = setup(t);
  const src = new PassThrough();
  src.write(T.file('big', Buffer.alloc(3 << 20, 1)).subarray(0, 1 << 20));
  const ac = new AbortController();
  const p = convertLayer(src, join(dir, 'a.erofs'), { signal: ac.signal });
  setTimeout(() => ac.abort('test'), 50);
  await rejectsTyped(p, 'ABORTED');
  assert.deepEqual(readdirSync(dir), []);
});

/** Runs `msb …` in-process and captures stdout/stderr. */
async function msb(args: string[], stdin?: Buffer): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (d) => {
    out += String(d);
  });
  stderr.on('data', (d) => {
    err += String(d);
  });
  const code = await main(args, {
    stdout,
    stderr,
    stdin: Readable.from(stdin ? [stdin] : []),
    signal: new AbortController().signal,
    env: {},
  });
  return { code, out, err };
}

test('CLI: msb layer convert prints one JSON line, reads stdin with -, and reports typed errors', async (t) => {
  const dir = setup(t);
  const tarFile = join(dir, 'l.tar');
  writeFileSync(tarFile, SAMPLE);
  const r1 = await msb(['layer', 'convert', tarFile, '-o', join(dir, 'a.erofs')]);
  assert.equal(r1.code, 0, r1.err);
  const lines = r1.out.split('\n').filter(Boolean);
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(j), ['diffId', 'sizeBytes', 'inodes', 'blocks']);
  assert.equal(j.diffId, sha(SAMPLE));
  assert.equal(j.sizeBytes, statSync(join(dir, 'a.erofs')).size);
  assert.equal(j.blocks, (j.sizeBytes as number) / 4096);
  const r2 = await msb(
    ['layer', 'convert', '-', '-o', join(dir, 'b.erofs'), `--expect-diff-id=${sha(SAMPLE)}`],
    SAMPLE,
  );
  assert.equal(r2.code, 0, r2.err);
  assert.ok(readFileSync(join(dir, 'b.erofs')).equals(readFileSync(join(dir, 'a.erofs'))));
  await withMount(join(dir, 'b.erofs'), (m) =>
    assert.equal(readFileSync(join(m, 'etc/motd'), 'utf8'), 'hello from a layer\n'),
  );
  writeFileSync(join(dir, 'evil.tar'), T.tar(T.file('ok', 'x'), T.file('evil/../../x', 'x')));
  const r3 = await msb(['layer', 'convert', join(dir, 'evil.tar'), '-o', join(dir, 'e.erofs')]);
  assert.equal(r3.code, 1);
  assert.match(r3.err, /^msb: LAYER_INVALID: evil\/\.\.\/\.\.\/x: path traversal/);
  const r4 = await msb([
    'layer',
    'convert',
    tarFile,
    '-o',
    join(dir, 'm.erofs'),
    '--expect-diff-id',
    `sha256:${'1'.repeat(64)}`,
  ]);
  assert.equal(r4.code, 1);
  assert.match(r4.err, /^msb: DIGEST_MISMATCH: /);
  const r5 = await msb(['layer', 'convert', tarFile]);
  assert.equal(r5.code, 2);
  const r6 = await msb(['layer', 'frobnicate']);
  assert.equal(r6.code, 2);
  const r7 = await msb(['layer', 'convert', join(dir, 'missing.tar'), '-o', join(dir, 'x.erofs')]);
  assert.equal(r7.code, 1);
  assert.match(r7.err, /^msb: IO: ENOENT/);
  assert.deepEqual(readdirSync(dir).sort(), ['a.erofs', 'b.erofs', 'evil.tar', 'l.tar']);
});

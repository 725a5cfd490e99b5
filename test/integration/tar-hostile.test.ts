/**
 * Hostile and malformed tars (acceptance D13 limits, D17, D18, D23, D24, I1): every case ends in a
 * typed MsbError (or the documented success), leaves no candidate behind and writes nothing
 * outside the candidate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { LayerInvalidError, type LimitExceededError } from '../../src/errors.js';
import { ensureImages, run, tempDir } from '../helpers/env.js';
import { convertBuffer, rejectsTyped, withMount } from '../helpers/layer.js';
import * as T from '../helpers/tar-writer.js';

function setup(t: { after: (fn: () => void) => void }) {
  const d = tempDir();
  t.after(d.cleanup);
  return d.dir;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** What must not change: the test dir's tree, /etc/passwd, and no escape file where the evil names point. */
function sentinelState(dir: string): string {
  const escapes = [
    '/escape-dotdot.txt',
    '/escape2.txt',
    '/tmp/escape-through-symlink.txt',
    '/tmp/x',
    join(dir, '..', 'escape-dotdot.txt'),
    join(dir, '..', 'escape2.txt'),
  ]
    .map((p) => `${p}:${existsSync(p)}`)
    .join(',');
  return sha(run('find', [dir, '-printf', '%p %y %s\\n']) + escapes + sha(readFileSync('/etc/passwd')));
}

test('D17/D18/I1: path traversal and symlink write-through reject the whole layer; nothing outside the candidate changes', async (t) => {
  const dir = setup(t);
  mkdirSync(join(dir, 'sentinel'));
  writeFileSync(join(dir, 'sentinel', 'stamp'), 'x');
  const passwd = sha(readFileSync('/etc/passwd'));
  const before = sentinelState(dir);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['dotdot', T.tar(T.file('ok', 'x'), T.file('../escape-dotdot.txt', 'x')), /path traversal/],
    ['dotdot-mid', T.tar(T.file('evil/../../escape2.txt', 'x')), /path traversal/],
    ['dotdot-pax', T.tar(T.file('innocent', 'x', { pax: [['path', 'a/../../b']] })), /path traversal/],
    ['dotdot-link', T.tar(T.file('a', 'x'), T.hardlink('b', '../../etc/passwd')), /path traversal/],
    [
      'through-symlink',
      T.tar(T.symlink('evil/link-to-root', '/'), T.file('evil/link-to-root/tmp/x', 'x')),
      /parent is not a directory/,
    ],
    ['through-file', T.tar(T.file('f', 'x'), T.file('f/g', 'x')), /parent is not a directory/],
    ['nul-in-pax-path', T.tar(T.file('a', 'x', { pax: [['path', Buffer.from('a\0b')]] })), /NUL/],
  ];
  for (const [name, buf, re] of cases) {
    await rejectsTyped(convertBuffer(buf, join(dir, `${name}.erofs`)), 'LAYER_INVALID', re, {
      dir,
      prefix: `${name}.erofs`,
    });
  }
  // The shared testbed's evil layer (edge-evil).
  const img = ensureImages();
  const out = join(dir, 'evil.erofs');
  const err = await rejectsTyped(
    writeLayer(createReadStream(join(img.layers, 'evil.tar')), out),
    'LAYER_INVALID',
    /path traversal/,
    { dir, prefix: 'evil.erofs' },
  );
  assert.ok(err instanceof LayerInvalidError && err.entry !== undefined);
  assert.equal(sha(readFileSync('/etc/passwd')), passwd);
  assert.equal(sentinelState(dir), before);
  assert.deepEqual(readdirSync(dir).sort(), ['sentinel']);
  // "..foo" is an ordinary name.
  const okImg = join(dir, 'dots.erofs');
  await convertBuffer(T.tar(T.file('..foo', 'fine'), T.file('a/..b/c', 'fine')), okImg);
  await withMount(okImg, (m) => assert.equal(readFileSync(join(m, 'a/..b/c'), 'utf8'), 'fine'));
});

test('D13: a 256-byte component is LAYER_INVALID; a 4097-byte path or depth 129 is LIMIT_EXCEEDED', async (t) => {
  const dir = setup(t);
  await rejectsTyped(
    convertBuffer(T.tar(T.file('x', '', { pax: [['path', `a/${'n'.repeat(256)}`]] })), join(dir, 'a.erofs')),
    'LAYER_INVALID',
    /255/,
  );
  const long = Array.from({ length: 41 }, () => 'p'.repeat(99)).join('/'); // 41*99 + 40 = 4099 bytes
  const e1 = await rejectsTyped(
    convertBuffer(T.tar(T.file('x', '', { pax: [['path', long.slice(0, 4097)]] })), join(dir, 'b.erofs')),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e1 as LimitExceededError).limit, 'maxPathBytes');
  const deep = Array.from({ length: 129 }, () => 'd').join('/');
  const e2 = await rejectsTyped(
    convertBuffer(T.tar(T.file('x', '', { pax: [['path', deep]] })), join(dir, 'c.erofs')),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e2 as LimitExceededError).limit, 'maxPathDepth');
  // Exactly at the limits is fine: 4096 bytes, depth 128.
  // (fsck.erofs 1.9.4 itself refuses paths of 4096 bytes plus its leading '/', so the kernel checks these.)
  const img = join(dir, 'ok.erofs');
  const atLimit = long.slice(0, 4096).replace(/\/$/, 'q');
  const deepOk = Array.from({ length: 128 }, () => 'e').join('/');
  await convertBuffer(
    T.tar(T.file('x', 'at limit', { pax: [['path', atLimit]] }), T.file('y', 'deep', { pax: [['path', deepOk]] })),
    img,
  );
  await withMount(img, (m) => {
    // A 4096-byte path is over the syscall PATH_MAX with the mount prefix: open it relative to a cwd.
    const cut = atLimit.lastIndexOf('/', 2048);
    assert.equal(
      run('sh', ['-c', 'cd "$1" && cat "$2"', 'sh', join(m, atLimit.slice(0, cut)), atLimit.slice(cut + 1)]),
      'at limit',
    );
    assert.equal(readFileSync(join(m, deepOk), 'utf8'), 'deep');
  });
});

test('D10/D11: uid 5000000000 and an mtime above 2^63-1 are LAYER_INVALID', async (t) => {
  const dir = setup(t);
  await rejectsTyped(
    convertBuffer(T.tar(T.file('u', '', { pax: [['uid', '5000000000']] })), join(dir, 'u.erofs')),
    'LAYER_INVALID',
    /uid/,
  );
  await rejectsTyped(
    convertBuffer(T.tar(T.file('g', '', { pax: [['gid', '4294967296']] })), join(dir, 'g.erofs')),
    'LAYER_INVALID',
    /gid/,
  );
  await rejectsTyped(
    convertBuffer(T.tar(T.file('t', '', { pax: [['mtime', '9223372036854775808']] })), join(dir, 't.erofs')),
    'LAYER_INVALID',
    /mtime/,
  );
  await rejectsTyped(
    convertBuffer(T.tar(T.file('t', '', { pax: [['mtime', '12abc']] })), join(dir, 't2.erofs')),
    'LAYER_INVALID',
    /mtime/,
  );
});

test('D14: an unknown typeflag (Z, M, N) is LAYER_INVALID; a volume label is ignored', async (t) => {
  const dir = setup(t);
  for (const tf of ['Z', 'M', 'N']) {
    await rejectsTyped(
      convertBuffer(T.tar(T.entry({ name: 'z', type: tf, body: 'x' })), join(dir, `${tf}.erofs`)),
      'LAYER_INVALID',
      /typeflag/,
    );
  }
  const img = join(dir, 'v.erofs');
  const res = await convertBuffer(T.tar(T.entry({ name: 'LABEL', type: 'V' }), T.file('a', 'a')), img);
  assert.equal(res.entries, 1);
  await withMount(img, (m) => assert.deepEqual(readdirSync(m), ['a']));
});

test('D23: limits — entries, file size, PAX header size, GNU long name, extension header count', async (t) => {
  const dir = setup(t);
  const e1 = await rejectsTyped(
    convertBuffer(T.tar(...Array.from({ length: 11 }, (_, i) => T.file(`f${i}`, ''))), join(dir, 'n.erofs'), {
      limits: { maxLayerEntries: 10 },
    }),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e1 as LimitExceededError).limit, 'maxLayerEntries');
  const e2 = await rejectsTyped(
    convertBuffer(T.tar(T.file('big', Buffer.alloc(2 << 20, 1))), join(dir, 's.erofs'), {
      limits: { maxFileBytes: 1 << 20 },
    }),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e2 as LimitExceededError).limit, 'maxFileBytes');
  const e3 = await rejectsTyped(
    convertBuffer(T.tar(T.file('p', '', { pax: [['comment', Buffer.alloc(2 << 20, 0x41)]] })), join(dir, 'p.erofs')),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e3 as LimitExceededError).limit, 'maxPaxHeaderBytes');
  const e4 = await rejectsTyped(
    convertBuffer(T.tar(T.entry({ name: 'x', longName: 'l'.repeat(70 * 1024) })), join(dir, 'l.erofs')),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e4 as LimitExceededError).limit, 'gnuLongNameBytes');
  const paxHdr = (i: number) => {
    const b = T.paxBody([['comment', String(i)]]);
    return Buffer.concat([T.header({ name: 'h', type: 'x', size: b.length }), T.pad(b)]);
  };
  const nine = T.tar(...Array.from({ length: 9 }, (_, i) => paxHdr(i)), T.file('a', 'a'));
  await rejectsTyped(convertBuffer(nine, join(dir, 'nine.erofs')), 'LAYER_INVALID', /extension headers/);
  const eight = T.tar(...Array.from({ length: 8 }, (_, i) => paxHdr(i)), T.file('a', 'a'));
  await convertBuffer(eight, join(dir, 'eight.erofs'));
  const e5 = await rejectsTyped(
    convertBuffer(T.tar(T.file('a', Buffer.alloc(3000))), join(dir, 'lb.erofs'), { limits: { maxLayerBytes: 2048 } }),
    'LIMIT_EXCEEDED',
  );
  assert.equal((e5 as LimitExceededError).limit, 'maxLayerBytes');
  assert.deepEqual(readdirSync(dir), ['eight.erofs']);
});

test('D23: 1,000,001 entries with default limits → LIMIT_EXCEEDED maxLayerEntries (streamed, never buffered)', async (t) => {
  const dir = setup(t);
  const hdrs = Array.from({ length: 1000 }, (_, i) =>
    T.header({ name: `d${String(i).padStart(3, '0')}/`, type: '5', mode: 0o755 }),
  );
  async function* gen() {
    // 1000 directories × 1000 empty files, then one more file: 1,000,001 entries + 1000 dirs.
    const batch: Buffer[] = [];
    for (let d = 0; d < 1000; d++) {
      batch.push(hdrs[d]!);
      for (let f = 0; f < 1000; f++) batch.push(T.header({ name: `d${String(d).padStart(3, '0')}/${f}`, size: 0 }));
      yield Buffer.concat(batch.splice(0));
    }
    yield Buffer.concat([T.header({ name: 'last', size: 0 }), T.EOA]);
  }
  const err = await rejectsTyped(writeLayer(gen(), join(dir, 'm.erofs')), 'LIMIT_EXCEEDED');
  assert.equal((err as LimitExceededError).limit, 'maxLayerEntries');
  assert.equal((err as LimitExceededError).value, 1_000_001);
  assert.deepEqual(readdirSync(dir), []);
});

test('D24: bad checksum, truncation → LAYER_INVALID; trailing garbage hashed; PAX global path ignored', async (t) => {
  const dir = setup(t);
  await rejectsTyped(
    convertBuffer(T.tar(T.file('a', 'a', { checksum: 'bad' })), join(dir, 'c.erofs')),
    'LAYER_INVALID',
    /checksum/,
  );
  const full = T.tar(T.file('a', Buffer.alloc(5000, 7)));
  await rejectsTyped(convertBuffer(full.subarray(0, 512 + 3000), join(dir, 't1.erofs')), 'LAYER_INVALID', /truncated/);
  await rejectsTyped(convertBuffer(full.subarray(0, 300), join(dir, 't2.erofs')), 'LAYER_INVALID', /truncated/);
  const paxOnly = T.entry({ name: 'a', pax: [['path', 'b']] }).subarray(0, 1024);
  await rejectsTyped(convertBuffer(paxOnly, join(dir, 't3.erofs')), 'LAYER_INVALID', /truncated/);
  await rejectsTyped(
    convertBuffer(T.tar(T.file('a', 'a', { pax: [['path', 'x']] })).subarray(0, 700), join(dir, 't4.erofs')),
    'LAYER_INVALID',
  );
  await rejectsTyped(
    convertBuffer(
      Buffer.concat([
        T.header({ name: 'x', type: 'x', size: 5 }),
        T.pad(Buffer.from('9 a=b\n'.slice(0, 5))),
        T.file('a', ''),
        T.EOA,
      ]),
      join(dir, 'm.erofs'),
    ),
    'LAYER_INVALID',
    /PAX/,
  );
  // EOF right at a header boundary (no end marker) is a valid end; one zero block is enough.
  const noEoa = T.file('a', 'a');
  const r0 = await convertBuffer(noEoa, join(dir, 'noeoa.erofs'));
  assert.equal(r0.entries, 1);
  const oneZero = Buffer.concat([T.file('a', 'a'), Buffer.alloc(512)]);
  assert.equal((await convertBuffer(oneZero, join(dir, 'onezero.erofs'))).entries, 1);
  // Garbage after the end: accepted, not parsed, included in the diff_id.
  const garbage = Buffer.concat([
    T.tar(T.file('a', 'a')),
    Buffer.from('this is not a tar header at all, just trailing junk'),
    Buffer.alloc(700, 0xee),
  ]);
  const r = await convertBuffer(garbage, join(dir, 'g.erofs'), { chunk: 100 });
  assert.equal(r.diffId, `sha256:${sha(garbage)}`);
  assert.equal(r.entries, 1);
  // PAX global header with path= is ignored.
  const gb = T.paxBody([['path', 'global-name']]);
  const glob = T.tar(
    Buffer.concat([T.header({ name: 'g', type: 'g', size: gb.length }), T.pad(gb)]),
    T.file('real', 'r'),
  );
  const gi = join(dir, 'glob.erofs');
  await convertBuffer(glob, gi);
  await withMount(gi, (m) => assert.deepEqual(readdirSync(m), ['real']));
});

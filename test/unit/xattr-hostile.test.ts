/**
 * Invalid xattrs never reach an image (issue 9 item 8, docs/erofs.md §6.2, §6.9): for each record
 * kind (SCHILY / LIBARCHIVE) and each way of being invalid, a layer converted with the real writer
 * either drops the xattr (counted, `XATTR_DROPPED`) or is LAYER_INVALID; valid spellings keep the
 * exact bytes. The image is read back with our EROFS reader.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { MsbError } from '../../src/errors.js';
import { readErofsTree } from '../../src/erofs/reader.js';
import { xattrPrefixOf } from '../../src/erofs/format.js';
import type { DirNode } from '../../src/erofs/tree.js';
import { paxXattr } from '../../src/tar/pax.js';
import { tempDir } from '../helpers/env.js';
import { convertBuffer } from '../helpers/layer.js';
import { file, tar } from '../helpers/tar-writer.js';

const work = tempDir('msb-xattr-');
after(() => work.cleanup());
let n = 0;

/** Converts a one-file layer whose PAX header holds `records`; returns the file's xattrs by full name. */
async function convert(
  records: [string, string | Buffer][],
): Promise<{ xattrs: Map<string, Buffer>; dropped: number }> {
  const out = join(work.dir, `x${n++}.erofs`);
  const r = await convertBuffer(tar(file('f', 'data', { pax: records })), out);
  const { root } = await readErofsTree(out);
  const f = (root as DirNode).children.get('f')!;
  const xattrs = new Map<string, Buffer>();
  for (const x of f.meta.xattrs) xattrs.set(xattrPrefixOf(x.index)! + x.suffix.toString('latin1'), x.value);
  return { xattrs, dropped: r.xattrsDropped };
}

const DROPPED: [string, [string, string | Buffer][]][] = [
  ['a NUL in a SCHILY name', [['SCHILY.xattr.user.a\0b', 'v']]],
  ['a NUL in a LIBARCHIVE name (%00)', [['LIBARCHIVE.xattr.user.a%00b', 'dg==']]],
  ['a NUL at the end of a name', [['SCHILY.xattr.user.tail\0', 'v']]],
  ['a NUL right after the prefix', [['SCHILY.xattr.security.\0cap', 'v']]],
];

const REFUSED: [string, [string, string | Buffer][]][] = [
  ['base64 with an invalid character', [['LIBARCHIVE.xattr.user.b', 'dmFs*dWU=']]],
  ['base64 of impossible length (5 characters)', [['LIBARCHIVE.xattr.user.b', 'dmFsd']]],
  ['base64 with padding in the middle', [['LIBARCHIVE.xattr.user.b', 'dg==dg==']]],
  ['base64 with a newline', [['LIBARCHIVE.xattr.user.b', 'dmFs\ndWU=']]],
  ['base64 url-safe alphabet', [['LIBARCHIVE.xattr.user.b', 'd-_v']]],
  ['a %zz escape', [['LIBARCHIVE.xattr.user.%zz', 'dg==']]],
  ['a truncated escape at the end (%4)', [['LIBARCHIVE.xattr.user.a%4', 'dg==']]],
  ['a lone % at the end', [['LIBARCHIVE.xattr.user.a%', 'dg==']]],
];

test(`xattrs: ${DROPPED.length} invalid names are dropped and counted, never written`, async () => {
  for (const [what, recs] of DROPPED) {
    const r = await convert([...recs, ['SCHILY.xattr.user.kept', 'k']]);
    assert.deepEqual([...r.xattrs.keys()], ['user.kept'], what);
    assert.equal(r.dropped, 1, what);
  }
});

test(`xattrs: ${REFUSED.length} malformed LIBARCHIVE records → LAYER_INVALID`, async () => {
  for (const [what, recs] of REFUSED) {
    await assert.rejects(
      convert(recs),
      (e: unknown) => e instanceof MsbError && e.code === 'LAYER_INVALID' && /malformed PAX record/.test(e.message),
      what,
    );
  }
});

test('xattrs: valid spellings keep their exact bytes (padded and unpadded base64, %-escapes, binary values)', async () => {
  const bin = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80]);
  const r = await convert([
    ['LIBARCHIVE.xattr.user.padded', Buffer.from('value').toString('base64')],
    ['LIBARCHIVE.xattr.user.unpadded', Buffer.from('value').toString('base64').replace(/=+$/, '')],
    ['LIBARCHIVE.xattr.user.sp%20ace%3D', 'eA=='],
    ['LIBARCHIVE.xattr.user.empty', ''],
    ['SCHILY.xattr.security.capability', bin],
  ]);
  assert.deepEqual(r.xattrs.get('user.padded'), Buffer.from('value'));
  assert.deepEqual(r.xattrs.get('user.unpadded'), Buffer.from('value'));
  assert.deepEqual(r.xattrs.get('user.sp ace='), Buffer.from('x'));
  assert.deepEqual(r.xattrs.get('user.empty'), Buffer.alloc(0));
  assert.deepEqual(r.xattrs.get('security.capability'), bin);
  assert.equal(r.dropped, 0);
});

test('paxXattr: other keys are not xattrs; the name of a SCHILY record is taken as is', () => {
  assert.equal(paxXattr('path', Buffer.from('x'), 'here'), null);
  assert.equal(paxXattr('LIBARCHIVE.creationtime', Buffer.from('1'), 'here'), null);
  assert.deepEqual(paxXattr('SCHILY.xattr.user.%zz', Buffer.from('v'), 'here'), ['user.%zz', Buffer.from('v')]);
});

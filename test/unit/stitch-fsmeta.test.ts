/**
 * Device-table arithmetic of docs/erofs.md §2 and §7.2: header size, slots per position, tags, the
 * stand-in digest, the 2^32-block disk limit. (Bytes on disk: stitch-image.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MsbError } from '../../src/errors.js';
import {
  decodeDeviceSlot,
  deviceSlots,
  diffIdTag,
  encodeDeviceSlot,
  headerBlocks,
  standInDigest,
  uuidTag,
} from '../../src/stitch/fsmeta.js';

test('H = ceil((1152 + 128n) / 4096): 1 block up to 23 layers', () => {
  assert.equal(headerBlocks(0), 1);
  assert.equal(headerBlocks(23), 1);
  assert.equal(headerBlocks(24), 2);
  assert.equal(headerBlocks(55), 2);
  assert.equal(headerBlocks(56), 3);
  assert.equal(headerBlocks(1000), 32);
});

test('worked example: layers of 621 and 4 blocks after a 5-block fsmeta', () => {
  const t = Buffer.alloc(64, 0x61);
  const s = deviceSlots(5, [
    { blocks: 621, tag: t },
    { blocks: 4, tag: t },
  ]);
  assert.deepEqual(
    s.map((x) => [x.blocks, x.mappedBlkaddr]),
    [
      [621, 5],
      [4, 626],
    ],
  );
  const enc = encodeDeviceSlot(s[1]!);
  assert.equal(enc.length, 128);
  assert.deepEqual(enc.subarray(0x40, 0x48), Buffer.from([4, 0, 0, 0, 0x72, 2, 0, 0]));
  assert.ok(enc.subarray(0x48).every((b) => b === 0));
  const dec = decodeDeviceSlot(enc, 0);
  assert.equal(dec.mappedBlkaddr, 626);
  assert.deepEqual(dec.tag, t);
});

test('duplicated positions get their own slots', () => {
  const t = diffIdTag(`sha256:${'ab'.repeat(32)}`);
  const s = deviceSlots(1, [
    { blocks: 10, tag: t },
    { blocks: 10, tag: t },
    { blocks: 1, tag: t },
  ]);
  assert.deepEqual(
    s.map((x) => x.mappedBlkaddr),
    [1, 11, 21],
  );
});

test('tags: diff_id hex (first 64 chars, sha512 too) or the zero-padded uuid hex', () => {
  const hex = 'ab'.repeat(32);
  assert.equal(diffIdTag(`sha256:${hex}`).toString('latin1'), hex);
  assert.equal(diffIdTag(`sha512:${'cd'.repeat(64)}`).toString('latin1'), 'cd'.repeat(32));
  const u = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const tag = uuidTag(u);
  assert.equal(tag.length, 64);
  assert.equal(tag.subarray(0, 32).toString('latin1'), '00112233445566778899aabbccddeeff');
  assert.ok(tag.subarray(32).every((b) => b === 0));
});

test('stand-in digest = sha256 of each uuid hex plus a newline', () => {
  const u0 = Buffer.alloc(16, 1);
  const u1 = Buffer.alloc(16, 0xfe);
  const want = createHash('sha256')
    .update(`${'01'.repeat(16)}\n${'fe'.repeat(16)}\n`)
    .digest('hex');
  assert.equal(standInDigest([u0, u1]), `sha256:${want}`);
});

test('a disk reaching 2^32 blocks is LIMIT_EXCEEDED diskBlocks', () => {
  const t = Buffer.alloc(64);
  assert.doesNotThrow(() => deviceSlots(1, [{ blocks: 2 ** 32 - 2, tag: t }]));
  assert.throws(
    () =>
      deviceSlots(1, [
        { blocks: 2 ** 32 - 2, tag: t },
        { blocks: 1, tag: t },
      ]),
    (e: unknown) =>
      e instanceof MsbError && e.code === 'LIMIT_EXCEEDED' && (e.details as { limit: string }).limit === 'diskBlocks',
  );
});

/**
 * The content digest (docs/storage.md §10.1): fed in any order, with holes, it equals the digest of
 * the file read once, and equals an independent reference (sha256 of the concatenated sha256 of
 * each 1 MiB chunk). A symlink is refused, never followed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  ChunkedDigest,
  contentDigestOfBuffer,
  contentDigestOfFile,
  DIGEST_CHUNK,
  isContentDigest,
} from '../../src/util/chunked-digest.js';
import { tempDir } from '../helpers/env.js';

/** The definition, written plainly. */
function reference(b: Buffer): string {
  const outer = createHash('sha256');
  for (let o = 0; o < b.length; o += DIGEST_CHUNK)
    outer.update(
      createHash('sha256')
        .update(b.subarray(o, o + DIGEST_CHUNK))
        .digest(),
    );
  return `msb-chunked-sha256:${outer.digest('hex')}`;
}

test('known values: empty, one byte, one zero chunk plus a tail', () => {
  const empty = `msb-chunked-sha256:${createHash('sha256').digest('hex')}`;
  assert.equal(contentDigestOfBuffer(Buffer.alloc(0)), empty);
  const b = Buffer.concat([Buffer.alloc(DIGEST_CHUNK), Buffer.from('x')]);
  assert.equal(contentDigestOfBuffer(b), reference(b));
  assert.ok(isContentDigest(contentDigestOfBuffer(b)));
  assert.ok(!isContentDigest(`sha256:${'0'.repeat(64)}`));
  // It is not a plain sha256 of the bytes (a second chunk changes the structure).
  assert.notEqual(contentDigestOfBuffer(b), `msb-chunked-sha256:${createHash('sha256').update(b).digest('hex')}`);
});

const sceneArb = fc.record({
  /** length in 4 KiB blocks (up to ~3.5 MiB: several chunks and a short tail) */
  blocks: fc.integer({ min: 1, max: 900 }),
  /** regions of random data; the rest are holes */
  islands: fc.array(fc.record({ at: fc.nat(), len: fc.integer({ min: 1, max: 300_000 }) }), { maxLength: 6 }),
  /** how the file is cut into reported ranges, and in which order they arrive */
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  order: fc.array(fc.nat(), { maxLength: 30 }),
  holesAsZero: fc.boolean(),
  tailBytes: fc.integer({ min: 0, max: 4095 }),
});

test('property: any report order, holes reported or not = the file read once = the definition', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await fc.assert(
      fc.asyncProperty(sceneArb, async (s) => {
        const length = s.blocks * 4096 - (s.blocks > 1 ? s.tailBytes : 0);
        const content = Buffer.alloc(length);
        const islands: [number, number][] = [];
        for (const i of s.islands) {
          const at = i.at % length;
          const len = Math.min(i.len, length - at);
          randomBytes(len).copy(content, at);
          islands.push([at, at + len]);
        }
        const hasData = (a: number, b: number) => islands.some(([x, y]) => x < b && a < y);
        // Cut [0, length) into ranges; each is data (if any byte is) or a hole.
        const points = [...new Set([0, length, ...s.cuts.map((c) => c % length)])].sort((a, b) => a - b);
        const ranges: { at: number; len: number; hole: boolean }[] = [];
        for (let k = 0; k + 1 < points.length; k++) {
          const at = points[k]!;
          const len = points[k + 1]! - at;
          ranges.push({ at, len, hole: !hasData(at, at + len) });
        }
        for (let k = ranges.length - 1; k > 0; k--) {
          const j = (s.order[k] ?? k) % (k + 1);
          [ranges[k], ranges[j]] = [ranges[j]!, ranges[k]!];
        }
        const d = new ChunkedDigest();
        for (const r of ranges) {
          if (r.hole) {
            if (s.holesAsZero) d.zero(r.at, r.len);
            continue;
          }
          const copy = Buffer.from(content.subarray(r.at, r.at + r.len));
          const w = d.data(r.at, copy);
          copy.fill(0xee); // the caller's buffer is its own again once the call returns
          if (w) await w;
        }
        const streamed = await d.finish(length);
        const path = join(dir, 'f');
        writeFileSync(path, content);
        const read = await contentDigestOfFile(path);
        assert.equal(read.length, length);
        assert.equal(streamed, reference(content));
        assert.equal(read.digest, streamed);
      }),
      { numRuns: 60 },
    );
  } finally {
    cleanup();
  }
});

test('a sparse file (holes on disk) digests like its zeros; a flipped byte changes the digest', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'sparse');
    const fd = openSync(p, 'w');
    ftruncateSync(fd, 5 * DIGEST_CHUNK + 123);
    writeSync(fd, Buffer.from('hello'), 0, 5, 3 * DIGEST_CHUNK + 7);
    closeSync(fd);
    const full = Buffer.alloc(5 * DIGEST_CHUNK + 123);
    full.write('hello', 3 * DIGEST_CHUNK + 7);
    const a = await contentDigestOfFile(p);
    assert.equal(a.digest, reference(full));
    const fd2 = openSync(p, 'r+');
    writeSync(fd2, Buffer.from([1]), 0, 1, 4096);
    closeSync(fd2);
    assert.notEqual((await contentDigestOfFile(p)).digest, a.digest);
  } finally {
    cleanup();
  }
});

test('a symlink is refused (CACHE_CORRUPT), never followed', async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'target'), 'secret');
    symlinkSync(join(dir, 'target'), join(dir, 'link'));
    await assert.rejects(contentDigestOfFile(join(dir, 'link')), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'CACHE_CORRUPT');
      assert.match(e.message!, /symbolic link/);
      return true;
    });
  } finally {
    cleanup();
  }
});

test('reporting a byte twice or beyond the length is a bug the accumulator refuses', async () => {
  const d = new ChunkedDigest();
  d.data(0, Buffer.alloc(DIGEST_CHUNK, 1));
  assert.throws(() => d.data(10, Buffer.alloc(4, 1)), /twice/);
  const e = new ChunkedDigest();
  e.data(0, Buffer.alloc(100, 1));
  await assert.rejects(e.finish(50), /beyond the length/);
});

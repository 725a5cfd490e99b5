/**
 * The zstd decoder stream (src/layer/compression.ts) holds backpressure inside one input chunk: a
 * consumer that reads slowly must still receive every byte. A regression test for a stall: when a
 * read() called _read while the readable side was still full and the held input decoded to nothing
 * more (an input chunk that ends inside a block), the parked write callback was never released
 * and the stream hung with a chunk pending. With that bug this test stalls in round 4 (shown
 * once); each round must finish within its deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { compress } from 'zstd-napi';
import { createDecompressor } from '../../src/layer/compression.js';

/** ~12 MiB mixing runs (expand a hundredfold per input byte) with random stretches. */
function payload(seed: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 24; i++)
    parts.push((i + seed) % 3 === 0 ? randomBytes(64 << 10) : Buffer.alloc(512 << 10, i + seed));
  return Buffer.concat(parts);
}

async function slowDecode(compressed: Buffer, seed: number, pause: number): Promise<Buffer> {
  const src = Readable.from(
    (function* () {
      // Pseudo-random split points: an input chunk that ends inside a block decodes its tail to nothing.
      let x = seed;
      for (let o = 0; o < compressed.length; ) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        const len = 4096 + (x % (128 << 10));
        yield compressed.subarray(o, o + len);
        o += len;
      }
    })(),
    { objectMode: false },
  );
  const d = createDecompressor('zstd');
  pipeline(src, d, () => undefined);
  const h = createHash('sha256');
  for await (const c of d as AsyncIterable<Buffer>) {
    h.update(c);
    await sleep(pause);
  }
  return h.digest();
}

test('a slowly read zstd stream delivers every byte (no stall with input held back)', async () => {
  for (let round = 0; round < 12; round++) {
    const plain = payload(round);
    const want = createHash('sha256').update(plain).digest();
    const deadline = new AbortController();
    const got = await Promise.race([
      slowDecode(compress(plain), round + 1, 1 + (round % 3)),
      sleep(30_000, null, { signal: deadline.signal }).catch(() => null),
    ]);
    deadline.abort();
    assert.ok(got !== null, `round ${round}: the decoder stalled`);
    assert.deepEqual(got, want, `round ${round}: decoded bytes differ`);
  }
});

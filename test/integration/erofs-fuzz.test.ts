/**
 * Fuzz (acceptance D25): mutated variants of L3's headers (and PAX bodies), with and without a
 * repaired checksum so mutations reach past the checksum gate. Every case ends in success or a
 * typed LAYER_INVALID / LIMIT_EXCEEDED within a per-case timeout, never a crash or a hang, and
 * leaves no file behind but a successful output. Deterministic: a seeded PRNG (MSB_FUZZ_SEED).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { MsbError } from '../../src/errors.js';
import { ensureImages } from '../helpers/env.js';
import { chunks } from '../helpers/layer.js';

const CASES = Number(process.env.MSB_FUZZ_CASES ?? 10_000);
const SEED = Number(process.env.MSB_FUZZ_SEED ?? 0x5eed);
const TIMEOUT_MS = 20_000;

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** Offsets of every header block (entries and extension headers) and each 'x' body's range. */
function headers(tar: Buffer): Array<{ off: number; body: number; size: number; type: number }> {
  const out = [];
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8);
    out.push({ off, body: off + 512, size, type: h[156]! });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function fixChecksum(b: Buffer, off: number): void {
  b.fill(0x20, off + 148, off + 156);
  let s = 0;
  for (let i = off; i < off + 512; i++) s += b[i]!;
  b.write(s.toString(8).padStart(6, '0') + '\0 ', off + 148, 'latin1');
}

const FIELD_VALUES = [
  '00000000000\0',
  '77777777777\0',
  '99999999999\0',
  '\x80\0\0\0\0\0\0\0\xff\xff\xff\xff',
  '\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff',
  '           \0',
  '-1\0',
  '',
];
const NAME_VALUES = [
  '../x',
  '/',
  '',
  '.wh.',
  '.wh..wh..opq',
  'a/../../b',
  'x/.wh.y',
  '\xff\xfe',
  'sizes',
  'links/orig.txt',
];
const TYPES = '0123456789xgLKSDVZM\0 7';

/**
 * Mutates `b` in place and returns the variant plus an undo (the 7 MB tar is not copied per case):
 * each touched header block (and PAX body) is saved first.
 */
function mutate(
  b: Buffer,
  hs: ReturnType<typeof headers>,
  r: (n: number) => number,
): { variant: Buffer; undo: () => void } {
  const saved: Array<[number, Buffer]> = [];
  const n = 1 + r(3);
  for (let k = 0; k < n; k++) {
    const h = hs[r(hs.length)]!;
    saved.push([h.off, Buffer.from(b.subarray(h.off, h.off + 512 + (h.type === 0x78 ? h.size : 0)))]);
    const kind = r(8);
    if (kind === 0) b[h.off + r(512)] = r(256);
    else if (kind === 1)
      b.write(FIELD_VALUES[r(FIELD_VALUES.length)]!, h.off + [100, 108, 116, 124, 136, 329, 337][r(7)]!, 'latin1');
    else if (kind === 2) b[h.off + 156] = TYPES.charCodeAt(r(TYPES.length));
    else if (kind === 3) {
      b.fill(0, h.off, h.off + 100);
      b.write(NAME_VALUES[r(NAME_VALUES.length)]!, h.off, 'latin1');
    } else if (kind === 4) b.write(NAME_VALUES[r(NAME_VALUES.length)]!, h.off + 157, 'latin1');
    else if (kind === 5 && h.type === 0x78 && h.size > 0) b[h.body + r(h.size)] = r(256);
    else if (kind === 6 && h.type === 0x78 && h.size > 0) b.write(String(r(1000)), h.body + r(h.size), 'latin1');
    else b.write(String(r(99999999)).padStart(11, '0') + '\0', h.off + 124, 'latin1');
    if (r(4) !== 0) fixChecksum(b, h.off);
  }
  const undo = () => {
    for (const [off, bytes] of saved.reverse()) bytes.copy(b, off);
  };
  // Sometimes also cut the stream short.
  return { variant: r(10) === 0 ? b.subarray(0, r(b.length)) : b, undo };
}

test(`D25: ${CASES} mutated variants of L3 headers end in success or a typed error, never a crash, hang or stray file`, async (t) => {
  const l3 = readFileSync(join(ensureImages().layers, 'l3-nasty-pax.tar'));
  const hs = headers(l3);
  assert.ok(hs.length > 40);
  const dir = mkdtempSync('/dev/shm/msb-fuzz-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = rng(SEED);
  const tally: Record<string, number> = {};
  for (let i = 0; i < CASES; i++) {
    const { variant, undo } = mutate(l3, hs, r);
    const out = join(dir, `c${i}.erofs`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`case ${i} timed out`)), TIMEOUT_MS);
    });
    let outcome: string;
    try {
      await Promise.race([writeLayer(chunks(variant, [16384, 65536 + r(4096), 1 << 20][r(3)]), out), timeout]);
      outcome = 'ok';
    } catch (e) {
      assert.ok(e instanceof MsbError, `case ${i} (seed ${SEED}): untyped error ${String((e as Error)?.stack ?? e)}`);
      assert.ok(e.code === 'LAYER_INVALID' || e.code === 'LIMIT_EXCEEDED', `case ${i}: unexpected ${String(e)}`);
      outcome = e.code;
    } finally {
      clearTimeout(timer);
      undo();
    }
    tally[outcome] = (tally[outcome] ?? 0) + 1;
    const left = readdirSync(dir);
    assert.deepEqual(left, outcome === 'ok' ? [`c${i}.erofs`] : [], `case ${i}: stray files`);
    for (const f of left) rmSync(join(dir, f));
  }
  t.diagnostic(`outcomes: ${JSON.stringify(tally)}`);
  assert.ok((tally.ok ?? 0) > 0 && (tally.LAYER_INVALID ?? 0) > 0);
});

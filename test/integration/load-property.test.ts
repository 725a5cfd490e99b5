/**
 * The load property (issue 9, "What to build"): random bytes — and random mutations of valid plain,
 * gzip and zstd archives, which reach deeper — fed to `Image.load` as a path, as an API stream, and
 * on the CLI's stdin. For every input: the promise settles; a rejection is an MsbError; the process
 * survives (in-process: this test process; stdin: one real CLI process for all its cases, which
 * must exit normally); no temp entry and no lease outlives the call. An input that happens to be a
 * valid archive may load: that is allowed, and its image is removed again.
 *
 * fast-check prints the seed and the shrunk input of a failure; rerun with it to reproduce.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { MsbError } from '../../src/errors.js';
import { tempDir } from '../helpers/env.js';
import { rows, tmpEntries } from '../helpers/pull-env.js';
import { runCliBatch } from '../helpers/cli-batch.js';
import { gzip, smallArchive, zstd } from '../helpers/archives.js';
import { header } from '../helpers/tar-writer.js';

const work = tempDir('msb-load-property-');
after(() => work.cleanup());

const SMALL = smallArchive('prop/x:1');
const VALID = [SMALL, gzip(SMALL), zstd(SMALL)];
const PREFIXES = [
  Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
  Buffer.from([0x50, 0x2a, 0x4d, 0x18]),
  header({ name: 'manifest.json', size: 100 }),
  header({ name: 'blobs/sha256/x', size: 1 << 30 }),
];

type Mutation =
  | { kind: 'flip'; at: number; mask: number }
  | { kind: 'cut'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array };
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  }),
);

function mutate(base: Buffer, ms: Mutation[]): Buffer {
  let b = Buffer.from(base);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'flip') b[at]! ^= m.mask;
    else if (m.kind === 'cut') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
  }
  return b;
}

/** Random bytes, a known magic followed by random bytes, or a valid archive with 1–4 mutations. */
const inputArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 8192 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.constantFrom(...PREFIXES), fc.uint8Array({ maxLength: 4096 }))
    .map(([p, a]) => Buffer.concat([p, Buffer.from(a)])),
  fc
    .tuple(fc.constantFrom(...VALID), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
    .map(([v, ms]) => mutate(v, ms)),
);

function noLeftovers(home: string, what: string): void {
  assert.deepEqual(tmpEntries(home), [], `${what}: temp entries left`);
  assert.equal(rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM lease')[0]!.n, 0, `${what}: a lease left`);
}

/** Rejects if `p` does not settle within `ms` (a hang is a failure, not a slow test). */
function settles<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

test('random and mutated archives → Image.load (path and API stream) settles, rejects only with MsbError, leaves nothing', async (t) => {
  const home = join(work.dir, 'api');
  const backend = await LocalBackend.builder().home(home).build();
  let n = 0;
  let loaded = 0;
  const codes = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(inputArb, fc.boolean(), async (bytes, asPath) => {
      const what = `${asPath ? 'path' : 'stream'} of ${bytes.length} bytes`;
      let input: string | Readable;
      if (asPath) {
        input = join(work.dir, `in-${n++}`);
        writeFileSync(input, bytes);
      } else input = Readable.from([bytes.subarray(0, bytes.length >> 1), bytes.subarray(bytes.length >> 1)]);
      try {
        const h = await settles(Image.loadLocal(backend, input), 60_000, what);
        loaded++;
        for (const x of h) await Image.removeLocal(backend, x.reference);
      } catch (e) {
        assert.ok(e instanceof MsbError, `${what}: ${e instanceof Error ? e.stack : String(e)}`);
        assert.notEqual(e.code, 'INTERNAL', `${what}: a bug: ${e.message}`);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
      noLeftovers(home, what);
    }),
    { numRuns: 300 },
  );
  await backend.close();
  t.diagnostic(`loaded: ${loaded}; errors: ${JSON.stringify(Object.fromEntries(codes))}`);
});

test('random and mutated archives on the CLI stdin: one msb process survives them all; each exit is 0 or one typed line', async () => {
  const home = join(work.dir, 'cli');
  const inputs = fc.sample(inputArb, { numRuns: 80 });
  const cases = inputs.map((bytes, i) => {
    const p = join(work.dir, `stdin-${i}`);
    writeFileSync(p, bytes);
    return { args: ['load', '-q'], stdin: p, env: { MSB_HOME: home } };
  });
  const b = await runCliBatch(cases, { timeoutMs: 600_000 });
  assert.equal(b.exit, 0, `the CLI process did not survive: ${b.stderr}`);
  assert.equal(b.results.length, cases.length);
  for (const [i, r] of b.results.entries()) {
    const what = `stdin case ${i} (${inputs[i]!.length} bytes, starts ${inputs[i]!.subarray(0, 8).toString('hex')})`;
    if (r.status === 0) continue;
    const lines = r.stderr
      .trimEnd()
      .split('\n')
      .filter((l) => !/^(hint|msb: warning): /.test(l));
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.match(lines[0]!, /^msb: [A-Z_]+: /, what);
    assert.doesNotMatch(lines[0]!, /^msb: INTERNAL: /, `${what}: a bug: ${r.stderr}`);
  }
  noLeftovers(home, 'stdin');
});

/**
 * Hostile load archives (issue 9 items 1, 3, 10): generalized families, each case a typed error or
 * the documented behaviour, with nothing left behind.
 *
 * - corrupt compressed archives: every compression kind × every corruption position × path, API
 *   stream and CLI stdin (one real CLI process for the whole stdin column);
 * - the disk bound: an unreferenced member is never spooled (a spool budget far below its size
 *   still loads), the budget itself, bytes after the end-of-archive block;
 * - archives that hold no image; a docker archive whose images share a layer member hashes it once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { ArchiveMembers } from '../../src/archive/members.js';
import { tempDir } from '../helpers/env.js';
import { rows, tmpEntries } from '../helpers/pull-env.js';
import { file, header, tar } from '../helpers/tar-writer.js';
import { runCliBatch, type CliCase } from '../helpers/cli-batch.js';
import {
  assertClean,
  assertCliFailure,
  dockerArchive,
  gzip,
  layerTar,
  msbRejection,
  ociArchive,
  sha,
  smallArchive,
  zstd,
} from '../helpers/archives.js';

const work = tempDir('msb-archive-hostile-');
after(() => work.cleanup());

async function home(name: string, limits: Record<string, number> = {}) {
  const h = join(work.dir, name);
  const backend = await LocalBackend.builder().home(h).limits(limits).build();
  return { home: h, backend };
}

/**
 * `b` as a stream of 64 KiB chunks (as a pipe delivers it). Bytes after a compressed archive's end
 * are counted as they arrive: the chunk that holds the end is not (docs/archives.md §2).
 */
function chunked(b: Buffer, size = 64 << 10): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return Readable.from(parts);
}

function save(name: string, data: Buffer): string {
  const p = join(work.dir, name);
  writeFileSync(p, data);
  return p;
}

const SMALL = smallArchive();
const COMPRESSED = { gzip: gzip(SMALL), zstd: zstd(SMALL) };

/** Corruptions of a valid compressed archive `c` of kind `k`. */
const CORRUPTIONS: Record<string, (c: Buffer, k: 'gzip' | 'zstd') => Buffer> = {
  'magic then random bytes': (c) => Buffer.concat([c.subarray(0, 4), randomBytes(4096)]),
  'magic then zeros': (_c, k) =>
    Buffer.concat([
      k === 'gzip' ? Buffer.from([0x1f, 0x8b, 0x09]) : Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
      Buffer.alloc(100),
    ]),
  'a byte flipped in the middle': (c) => {
    const b = Buffer.from(c);
    b[b.length >> 1]! ^= 0x5a;
    return b;
  },
  'truncated at half': (c) => c.subarray(0, c.length >> 1),
  'truncated after 12 bytes': (c) => c.subarray(0, 12),
  'checksum trailer corrupted': (c, k) => {
    const b = Buffer.from(c);
    b[b.length - (k === 'gzip' ? 5 : 2)]! ^= 0xff; // gzip: CRC32 then ISIZE; zstd: the 4-byte content checksum
    return b;
  },
  'random garbage after the end': (c) => Buffer.concat([c, Buffer.from([0x42]), randomBytes(64 * 1024)]),
  'a second member of 8 MiB of zeros after the end': (c, k) =>
    Buffer.concat([c, k === 'gzip' ? gzip(Buffer.alloc(8 << 20)) : zstd(Buffer.alloc(8 << 20))]),
};
const WINDOW = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8]), randomBytes(600)]);
/** zstd skippable frames (magic 0x184D2A50, u32 length): raw bytes that decode to nothing. */
function skippable(total: number): Buffer {
  const frame = Buffer.alloc(8 + (1 << 20));
  frame.writeUInt32LE(0x184d2a50, 0);
  frame.writeUInt32LE(1 << 20, 4);
  return Buffer.concat(Array.from({ length: Math.ceil(total / frame.length) }, () => frame));
}

interface Case {
  name: string;
  bytes: Buffer;
  codes: string[];
}
const cases: Case[] = [];
for (const k of ['gzip', 'zstd'] as const) {
  for (const [what, corrupt] of Object.entries(CORRUPTIONS)) {
    cases.push({
      name: `${k}: ${what}`,
      bytes: corrupt(COMPRESSED[k], k),
      codes: ['ARCHIVE_INVALID', 'LIMIT_EXCEEDED'],
    });
  }
}
cases.push({ name: 'zstd: a frame window over the limit', bytes: WINDOW, codes: ['LIMIT_EXCEEDED'] });
cases.push({
  name: 'zstd: 16 MiB of skippable frames after the end',
  bytes: Buffer.concat([COMPRESSED.zstd, skippable(16 << 20)]),
  codes: ['LIMIT_EXCEEDED'],
});

test(`corrupt compressed archives: ${cases.length} corruptions × path and API stream → typed error, nothing left`, async () => {
  const H = await home('corrupt');
  let n = 0;
  for (const c of cases) {
    const path = save(`c${n++}.bin`, c.bytes);
    for (const [mode, input] of [
      ['path', path],
      ['stream', chunked(c.bytes)],
    ] as const) {
      const e = await msbRejection(Image.loadLocal(H.backend, input), `${c.name} (${mode})`);
      assert.ok(c.codes.includes(e.code), `${c.name} (${mode}): ${e.code}: ${e.message}`);
      if (c.name.includes('window')) assert.equal((e.details as { limit: string }).limit, 'zstdWindowBytes');
      if (c.name.includes('second member') || c.name.includes('skippable'))
        assert.equal((e.details as { limit: string }).limit, 'archiveTrailingBytes', `${c.name} (${mode})`);
      assertClean(H.home, `${c.name} (${mode})`);
    }
  }
  // The same archives, intact, load (the corruptions are what fails).
  for (const k of ['gzip', 'zstd'] as const) {
    const h = await Image.loadLocal(H.backend, Readable.from([COMPRESSED[k]]), { tag: `rel/ok:${k}` });
    assert.deepEqual(
      h.map((x) => x.reference),
      ['rel/small:1', `rel/ok:${k}`],
    );
  }
  await H.backend.close();
});

test(`corrupt compressed archives through the CLI's stdin: ${cases.length} cases in one msb process, one typed line each`, async () => {
  const H = await home('corrupt-cli');
  await H.backend.close();
  const paths = cases.map((c, i) => save(`cli${i}.bin`, c.bytes));
  const batch = await runCliBatch(paths.map((p): CliCase => ({ args: ['load'], stdin: p, env: { MSB_HOME: H.home } })));
  assert.equal(batch.exit, 0, `the CLI process died: ${batch.stderr}`);
  assert.equal(batch.results.length, cases.length);
  batch.results.forEach((r, i) => {
    const c = cases[i]!;
    assertCliFailure(r, `(${c.codes.join('|')})`, c.name);
    assertClean(H.home, `${c.name} (stdin)`);
  });
});

test('an unreferenced 64 MiB member is never spooled: loads with a 2 MiB spool budget (path and stream)', async () => {
  const junk = [header({ name: 'junk.bin', size: 64 << 20 }), Buffer.alloc(64 << 20)];
  const archive = gzip(Buffer.concat([...junk, smallArchive('rel/junk:1')]));
  const path = save('junk.tgz', archive);
  const H = await home('junk', { maxArchiveSpoolBytes: 2 << 20 });
  for (const input of [path, Readable.from([archive])]) {
    const h = await Image.loadLocal(H.backend, input);
    assert.deepEqual(
      h.map((x) => x.reference),
      ['rel/junk:1'],
    );
    assert.deepEqual(tmpEntries(H.home), []);
  }
  await H.backend.close();
});

test('the spool budget: a referenced member, a plain stream or a compressed copy over it → LIMIT_EXCEEDED maxArchiveSpoolBytes', async () => {
  const big = tar(file('big.bin', randomBytes(3 << 20))); // incompressible: the copy of a stream is big too
  const archive = dockerArchive([{ repoTags: ['rel/big:1'], layers: [{ name: 'big/layer.tar', tar: big }] }]);
  const H = await home('budget', { maxArchiveSpoolBytes: 1 << 20 });
  const inputs: [string, string | Readable][] = [
    ['gzip path (the layer member)', save('big.tgz', gzip(archive))],
    ['plain stream (spooled whole)', Readable.from([archive])],
    ['zstd stream (its copy)', Readable.from([zstd(archive)])],
  ];
  for (const [what, input] of inputs) {
    const e = await msbRejection(Image.loadLocal(H.backend, input), what);
    assert.equal(e.code, 'LIMIT_EXCEEDED', `${what}: ${e.message}`);
    assert.equal((e.details as { limit: string }).limit, 'maxArchiveSpoolBytes', what);
    assertClean(H.home, what);
  }
  // A plain tar from a path is read in place: no spool, so the same budget does not apply.
  const ok = await Image.loadLocal(H.backend, save('big.tar', archive));
  assert.equal(ok.length, 1);
  await H.backend.close();
});

test('bytes after the end of the archive: 512 KiB of padding and gzip zero padding load; 2 MiB, a zero stream, gzip of zeros → LIMIT_EXCEEDED archiveTrailingBytes', async () => {
  const H = await home('trailing');
  const padded = Buffer.concat([smallArchive('rel/pad:1'), Buffer.alloc(512 << 10)]);
  // gzip's decoder ends at zero padding after its last member (as `gzip -d` does): nothing more is read.
  const gzPadded = Buffer.concat([gzip(smallArchive('rel/pad:1')), Buffer.alloc(8 << 20)]);
  for (const input of [chunked(padded), save('padded.tar', padded), chunked(gzPadded), save('padded.tgz', gzPadded)])
    assert.equal((await Image.loadLocal(H.backend, input)).length, 1);
  await Image.removeLocal(H.backend, 'rel/pad:1');
  const over = Buffer.concat([smallArchive('rel/over:1'), Buffer.alloc(2 << 20)]);
  async function* zeros(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 64; i++) yield Buffer.alloc(1 << 20); // stops long before 64 MiB
    assert.fail('the load read 64 MiB of zeros');
  }
  const inputs: [string, string | Readable][] = [
    ['plain path', save('over.tar', over)],
    ['plain stream', chunked(over)],
    ['gzip path', save('over.tgz', gzip(over))],
    ['zero stream (msb load < /dev/zero)', Readable.from(zeros())],
    ['gzip of a zero stream', chunked(gzip(Buffer.alloc(64 << 20)))],
  ];
  for (const [what, input] of inputs) {
    const e = await msbRejection(Image.loadLocal(H.backend, input), what);
    assert.equal(e.code, 'LIMIT_EXCEEDED', `${what}: ${e.message}`);
    assert.equal((e.details as { limit: string }).limit, 'archiveTrailingBytes', what);
    assertClean(H.home, what);
  }
  await H.backend.close();
});

test('an archive that holds no image → ARCHIVE_INVALID (API and CLI), never a silent success', async () => {
  const H = await home('noimage');
  const attest = Buffer.from('{"predicate":{}}');
  const variants: [string, Buffer][] = [
    ['manifests: []', ociArchive([], { schemaVersion: 2, manifests: [] })],
    [
      'only unknown media types',
      ociArchive([attest], {
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.in-toto+json', digest: sha(attest), size: attest.length }],
      }),
    ],
  ];
  const cliCases: CliCase[] = [];
  for (const [what, archive] of variants) {
    const e = await msbRejection(Image.loadLocal(H.backend, Readable.from([archive])));
    assert.equal(e.code, 'ARCHIVE_INVALID', `${what}: ${e.message}`);
    assertClean(H.home, what);
    cliCases.push({ args: ['load', '-i', save(`noimage-${cliCases.length}.tar`, archive)], env: { MSB_HOME: H.home } });
  }
  await H.backend.close();
  const batch = await runCliBatch(cliCases);
  assert.equal(batch.exit, 0, batch.stderr);
  batch.results.forEach((r, i) => {
    assertCliFailure(r, 'ARCHIVE_INVALID', variants[i]![0]);
    assert.equal(r.stdout, '', 'nothing printed as loaded');
  });
});

test('a docker archive whose 6 images share one layer member hashes it once and converts it once (path and gzip)', async () => {
  const shared = { name: 'shared/layer.tar', tar: layerTar('shared.txt', 'shared\n'.repeat(1000)) };
  const images = Array.from({ length: 6 }, (_, i) => ({
    repoTags: [`rel/share:${i}`],
    layers: [shared, { name: `own${i}/layer.tar`, tar: layerTar(`own${i}.txt`, `${i}\n`) }],
    extra: { author: `image ${i}` },
  }));
  const archive = dockerArchive(images);
  const orig = ArchiveMembers.prototype.stream;
  const reads = new Map<string, number>();
  ArchiveMembers.prototype.stream = function (this: ArchiveMembers, m) {
    reads.set(m.name, (reads.get(m.name) ?? 0) + 1);
    return orig.call(this, m);
  };
  try {
    for (const [name, input] of [
      ['share-tar', save('share.tar', archive)],
      ['share-gz', save('share.tgz', gzip(archive))],
    ]) {
      reads.clear();
      const fresh = await home(name!);
      const h = await Image.loadLocal(fresh.backend, input!);
      assert.equal(h.length, 6);
      // A plain tar: once for the blob digest (the synthetic manifests of all six images), once to
      // convert. Compressed: the first pass spooled the (small) member and hashed it on the way.
      assert.equal(
        reads.get('shared/layer.tar'),
        name === 'share-tar' ? 2 : 1,
        `${name}: ${JSON.stringify([...reads])}`,
      );
      await fresh.backend.close();
    }
  } finally {
    ArchiveMembers.prototype.stream = orig;
  }
  assert.equal(rows<{ n: number }>(join(work.dir, 'share-tar'), 'SELECT COUNT(*) AS n FROM layer')[0]!.n, 7);
});

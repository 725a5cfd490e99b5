/**
 * The offline fixture layers (busybox L1, L2–L5, edge-sparse, edge-conttype, empty) through the
 * converter, fsck.erofs 1.9.4 and the kernel, compared with GNU tar's extraction of the same tar
 * (acceptance D1, D2, D3, D15 edge-sparse, D14 conttype/AREGTYPE); plus GNU tar's own sparse
 * formats built from a real sparse file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
  openSync,
  closeSync,
  writeSync,
  ftruncateSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { convertLayer } from '../../src/erofs/convert.js';
import { crc32c } from '../../src/erofs/format.js';
import { ensureImages, run, tempDir } from '../helpers/env.js';
import { fsckOk, withMount } from '../helpers/layer.js';
import { expectSameTree, gnuTarExtract } from '../helpers/compare.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The busybox layer blob (gzip) of the OCI fixture layout. */
function busyboxBlob(oci: string): string {
  const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === 'busybox')!;
  const blob = (d: string) => join(oci, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { layers: Array<{ digest: string }> };
  return blob(manifest.layers[0]!.digest);
}

/** D2: superblock fields, with the CRC recomputed here bit by bit. */
function checkSuperblock(img: string, diffId: string): void {
  const b = readFileSync(img);
  assert.equal(b.length % 4096, 0);
  const sb = b.subarray(1024, 1152);
  assert.equal(sb.readUInt32LE(0), 0xe0f5e1e2);
  const tail = Buffer.from(b.subarray(1024, 4096));
  tail.writeUInt32LE(0, 4);
  let c = 0xffffffff;
  for (const byte of tail) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  assert.equal(sb.readUInt32LE(4), c >>> 0);
  assert.equal(crc32c(0xffffffff, tail), c >>> 0);
  assert.equal(sb.readUInt16LE(0x0e), 1);
  assert.equal(sb.readUInt32LE(0x24) * 4096, b.length);
  assert.equal(sb.subarray(0x40, 0x50).toString('latin1'), 'msb-erofs/1\0\0\0\0\0');
  assert.deepEqual(sb.subarray(0x30, 0x40), Buffer.from(diffId.slice(7, 39), 'hex'));
}

const LAYERS = ['l2-base-pax', 'l3-nasty-pax', 'l4-gnu', 'l5-quirks', 'conttype', 'empty', 'sparse-pax'];

test('D1–D3: fixture layers convert, pass fsck.erofs 1.9.4, mount, and equal GNU tar extraction', async (t) => {
  const img = ensureImages();
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  for (const name of LAYERS) {
    const tarPath = join(img.layers, `${name}.tar`);
    const out = join(dir, `${name}.erofs`);
    const res = await writeLayer(createReadStream(tarPath, { highWaterMark: 1 << 20 }), out);
    assert.equal(res.diffId, `sha256:${sha(readFileSync(tarPath))}`, name);
    assert.equal(statSync(out).size, res.sizeBytes);
    checkSuperblock(out, res.diffId);
    fsckOk(out);
    const x = join(dir, `${name}.x`);
    gnuTarExtract(tarPath, x);
    await withMount(out, (m) => {
      assert.deepEqual(run('ls', ['-a', m]).split('\n').slice(0, 2), ['.', '..'], name);
      assert.equal(run('stat', ['-c', '%i', m]).trim(), '1', name);
      expectSameTree(m, x, { label: name });
      if (name === 'sparse-pax') {
        assert.deepEqual(
          readdirSync(m).filter((n) => n.startsWith('GNUSparseFile')),
          [],
        );
        const f = join(m, readdirSync(m).find((n) => statSync(join(m, n)).isFile())!);
        assert.equal(statSync(f).size, 64 * 1024 * 1024);
      }
      if (name === 'l3-nasty-pax') assert.equal(statSync(join(m, 'links/orig.txt')).nlink, 3);
    });
    if (name === 'sparse-pax')
      assert.ok(
        statSync(out).blocks * 512 < 1024 * 1024,
        `edge-sparse image allocates ${statSync(out).blocks * 512} bytes`,
      );
  }
});

test('D1/D4: the busybox layer (gzip blob) converts; the same tar as file, gzip and zstd gives identical bytes', async (t) => {
  const img = ensureImages();
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const blob = busyboxBlob(img.oci);
  const out = join(dir, 'busybox.erofs');
  const res = await convertLayer(blob, out);
  assert.equal(res.compression, 'gzip');
  checkSuperblock(out, res.diffId);
  fsckOk(out);
  const rawTar = join(dir, 'busybox.tar');
  writeFileSync(rawTar, run('gzip', ['-dc', blob], { encoding: 'buffer' } as never) as unknown as Buffer);
  assert.equal(res.diffId, `sha256:${sha(readFileSync(rawTar))}`);
  const x = join(dir, 'bb.x');
  gnuTarExtract(rawTar, x);
  await withMount(out, (m) => {
    expectSameTree(m, x, { label: 'busybox' });
    assert.ok(statSync(join(m, 'bin/busybox')).size > 100_000);
  });
  run('zstd', ['-q', '-19', rawTar, '-o', `${rawTar}.zst`]);
  const viaZstd = await convertLayer(`${rawTar}.zst`, join(dir, 'z.erofs'));
  const viaTar = await convertLayer(rawTar, join(dir, 't.erofs'));
  assert.equal(viaZstd.compression, 'zstd');
  assert.equal(viaTar.compression, 'none');
  for (const r of [viaZstd, viaTar]) assert.equal(r.diffId, res.diffId);
  const bytes = readFileSync(out);
  assert.ok(readFileSync(join(dir, 'z.erofs')).equals(bytes));
  assert.ok(readFileSync(join(dir, 't.erofs')).equals(bytes));
});

test('D15: GNU tar sparse archives (old GNU S, PAX 0.0, 0.1, 1.0) of a real sparse file keep holes and content', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const src = join(dir, 'src');
  mkdirSync(src);
  const f = join(src, 'sparse.img');
  const fd = openSync(f, 'w');
  const marks: Array<[number, string]> = [
    [0, 'start'],
    [5 * 4096 + 100, 'five'],
    [(1 << 26) + 7, 'sixty-four MiB'],
    [200_000_000, 'end'],
  ];
  for (const [o, s] of marks) writeSync(fd, Buffer.from(s), 0, s.length, o);
  ftruncateSync(fd, 200_000_100);
  closeSync(fd);
  const want = sha(readFileSync(f));
  for (const [fmt, ver] of [
    ['gnu', ''],
    ['posix', '0.0'],
    ['posix', '0.1'],
    ['posix', '1.0'],
  ] as const) {
    const tarPath = join(dir, `s-${fmt}${ver}.tar`);
    run('tar', [
      '-C',
      src,
      `--format=${fmt}`,
      '--sparse',
      ...(ver ? [`--sparse-version=${ver}`] : []),
      '-cf',
      tarPath,
      'sparse.img',
    ]);
    const out = join(dir, `s-${fmt}${ver}.erofs`);
    const res = await writeLayer(createReadStream(tarPath), out);
    assert.equal(res.entries, 1);
    fsckOk(out);
    assert.ok(statSync(out).blocks * 512 < 1024 * 1024, `${fmt}${ver}: ${statSync(out).blocks * 512} bytes allocated`);
    await withMount(out, (m) => {
      assert.deepEqual(readdirSync(m), ['sparse.img'], `${fmt}${ver}`);
      assert.equal(sha(readFileSync(join(m, 'sparse.img'))), want, `${fmt}${ver}`);
    });
  }
});

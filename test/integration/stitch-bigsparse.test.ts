/**
 * Acceptance E12 `big-sparse`: a generated layer whose 3 GiB sparse file puts data past the
 * 2 GiB extent boundary. The layer's VMDK lines must be `RW 4194304 … 0` and
 * `RW <rest> … 4194304`; after `qemu-img convert` and a kernel mount, both sentinels and the small
 * file written after the big one read back. The same check on a descriptor whose second offset is
 * written in bytes (the known bug class, docs/erofs.md §8) must fail, which proves the test can.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { convertLayer } from '../../src/erofs/convert.js';
import { stitchLayers } from '../../src/stitch/index.js';
import { validateVmdk } from '../../src/stitch/vmdk.js';
import { mountErofs, run, runStatus, tempDir } from '../helpers/env.js';

const GiB = 1024 ** 3;
const S1 = { off: 2 * GiB + 123, data: Buffer.from('SENTINEL-ONE past 2 GiB') };
const S2 = { off: 3 * GiB - 10, data: Buffer.from('SENTINEL2!') }; // ends exactly at 3 GiB
const SMALL = 'small file after the big one\n';

function readAt(path: string, off: number, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, off);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

test('E12 big-sparse: extents split at 4194304 sectors; sentinels past 2 GiB read through qemu-img + kernel', async (t) => {
  const { dir, cleanup } = tempDir('msb-bigsparse-');
  const undo: (() => void)[] = [];
  t.after(() => {
    for (const u of undo.reverse()) u();
    cleanup();
  });

  // The layer: GNU tar --sparse (PAX 1.0) of a 3 GiB file holding only the two sentinels, then a small file.
  const src = join(dir, 'src');
  mkdirSync(src);
  const big = join(src, 'big.img');
  const fd = openSync(big, 'w');
  ftruncateSync(fd, 3 * GiB);
  writeSync(fd, S1.data, 0, S1.data.length, S1.off);
  writeSync(fd, S2.data, 0, S2.data.length, S2.off);
  closeSync(fd);
  writeFileSync(join(src, 'small.txt'), SMALL);
  const tar = join(dir, 'big-sparse.tar');
  run('tar', ['-C', src, '--sparse', '--format=posix', '--numeric-owner', '-cf', tar, 'big.img', 'small.txt']);
  assert.ok(lstatSync(tar).size < 64 << 20, 'the tar itself is small');

  const layer = join(dir, 'big.erofs');
  await convertLayer(tar, layer);
  const layerSize = lstatSync(layer).size;
  assert.ok(layerSize > 3 * GiB, 'the layer file is longer than 3 GiB (sparse on disk)');
  const res = await stitchLayers([layer], join(dir, 'out'));

  const text = readFileSync(res.vmdkPath, 'utf8');
  const lines = text.split('\n').filter((l) => l.startsWith('RW '));
  const sectors = layerSize / 512;
  assert.deepEqual(lines, [
    `RW ${res.fsmetaSizeBytes / 512} FLAT "${res.fsmetaPath}" 0`,
    `RW 4194304 FLAT "${layer}" 0`,
    `RW ${sectors - 4194304} FLAT "${layer}" 4194304`,
  ]);

  const checkDisk = (vmdk: string, raw: string): { s1: boolean; s2: boolean; small: boolean } => {
    run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdk, raw]);
    const m = mountErofs(raw);
    undo.push(m.umount);
    try {
      const f = join(m.dir, 'big.img');
      const ok = {
        s1: readAt(f, S1.off, S1.data.length).equals(S1.data),
        s2: readAt(f, S2.off, S2.data.length).equals(S2.data),
        small: readFileSync(join(m.dir, 'small.txt'), 'utf8') === SMALL,
      };
      assert.equal(lstatSync(f).size, 3 * GiB);
      assert.ok(readAt(f, S1.off - 4096, 4096).equals(Buffer.alloc(4096)), 'holes read as zeros');
      return ok;
    } finally {
      m.umount();
    }
  };

  const raw = join(dir, 'disk.raw');
  assert.deepEqual(checkDisk(res.vmdkPath, raw), { s1: true, s2: true, small: true });
  // The flattened disk is fsmeta ‖ layer (cmp reads holes as zeros; no 3 GiB copy needed).
  assert.equal(runStatus('cmp', ['-n', String(res.fsmetaSizeBytes), raw, res.fsmetaPath]).status, 0);
  const c = runStatus('cmp', ['-i', `${res.fsmetaSizeBytes}:0`, raw, layer]);
  assert.equal(c.status, 0, c.stdout + c.stderr);
  assert.equal(lstatSync(raw).size, res.diskSizeBytes);
  runStatus('rm', ['-f', raw]);

  // The mutation: the second piece's offset in bytes instead of sectors.
  const bad = text.replace(`"${layer}" 4194304\n`, `"${layer}" ${2 * GiB}\n`);
  assert.notEqual(bad, text);
  assert.match(
    validateVmdk(bad, { paths: [res.fsmetaPath, layer], sizes: [res.fsmetaSizeBytes, layerSize] })!,
    /starts at sector/,
  );
  const badVmdk = join(dir, 'bad.vmdk');
  writeFileSync(badVmdk, bad);
  const got = checkDisk(badVmdk, join(dir, 'bad.raw'));
  assert.equal(got.s1 && got.s2 && got.small, false, 'a bytes-for-sectors offset must break what the test reads');
});

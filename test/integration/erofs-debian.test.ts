/**
 * Acceptance D1 for the real-world layer: the Debian minbase layer (~95 MB gzip, ~6800 entries,
 * built once per machine with debootstrap, shared with the benchmark) converts, passes fsck.erofs
 * 1.9.4, mounts, and equals GNU tar's extraction of the same tar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { convertLayer } from '../../src/erofs/convert.js';
import { debianLayer } from '../../bench/convert.js';
import { tempDir } from '../helpers/env.js';
import { fsckOk, withMount } from '../helpers/layer.js';
import { expectSameTree, gnuTarExtract } from '../helpers/compare.js';

test('D1: debian-minbase converts, passes fsck.erofs, mounts and equals GNU tar extraction', async (t) => {
  const blob = debianLayer();
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const out = join(dir, 'debian.erofs');
  const res = await convertLayer(blob, out);
  assert.equal(res.compression, 'gzip');
  assert.ok(res.entries > 5000);
  fsckOk(out);
  const tarPath = join(dir, 'debian.tar');
  const chunks: Buffer[] = [];
  const h = createHash('sha256');
  for await (const c of createReadStream(blob).pipe(createGunzip())) {
    chunks.push(c as Buffer);
    h.update(c as Buffer);
  }
  writeFileSync(tarPath, Buffer.concat(chunks));
  assert.equal(res.diffId, `sha256:${h.digest('hex')}`);
  const x = join(dir, 'x');
  gnuTarExtract(tarPath, x);
  // GNU tar cannot restore the mtime of a directory whose entries come back after it left it
  // (Go's archive/tar order: "a-bin/" before "a/x"), so directory mtimes are checked against the
  // tar headers themselves instead of GNU tar's extraction.
  await withMount(out, (m) => {
    expectSameTree(m, x, { label: 'debian-minbase', manifestFlags: ['--no-dir-mtime'] });
    const listing = execFileSync('tar', ['--full-time', '-tvf', tarPath], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC' },
      maxBuffer: 64 << 20,
    });
    let dirs = 0;
    for (const line of listing.split('\n')) {
      const mm = /^d\S+ \S+\s+\d+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\S* (.*)$/.exec(line);
      if (!mm) continue;
      const want = Date.parse(`${mm[1]}T${mm[2]}Z`) / 1000;
      const rel = mm[3]!.replace(/\/$/, '').replace(/^\.\/?/, '');
      assert.equal(Math.floor(statSync(join(m, rel)).mtimeMs / 1000), want, rel);
      dirs++;
    }
    assert.ok(dirs > 100);
  });
});

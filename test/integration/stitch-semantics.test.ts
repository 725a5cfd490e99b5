/**
 * Acceptance E3, E4, E5 end to end: small tars written with python's tarfile, converted with
 * `convertLayer`, stitched with `stitchLayers`, flattened by qemu-img and mounted by the kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { convertLayer } from '../../src/erofs/convert.js';
import { stitchLayers } from '../../src/stitch/index.js';
import { mountErofs, run, tempDir, treeManifest } from '../helpers/env.js';

interface TarEntry {
  name: string;
  type?: 'file' | 'dir' | 'hardlink' | 'chr';
  mode?: number;
  mtime?: number;
  uid?: number;
  data?: string;
  link?: string;
  major?: number;
  minor?: number;
}

const PY = `
import io, json, sys, tarfile
spec = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as tf:
    for e in spec:
        ti = tarfile.TarInfo(e['name'])
        ti.mode = e.get('mode', 0o644); ti.mtime = e.get('mtime', 1700000000); ti.uid = e.get('uid', 0)
        t = e.get('type', 'file')
        body = None
        if t == 'dir': ti.type = tarfile.DIRTYPE
        elif t == 'hardlink': ti.type = tarfile.LNKTYPE; ti.linkname = e['link']
        elif t == 'chr': ti.type = tarfile.CHRTYPE; ti.devmajor = e.get('major', 0); ti.devminor = e.get('minor', 0)
        else:
            data = e.get('data', '').encode(); ti.size = len(data); body = io.BytesIO(data)
        tf.addfile(ti, body)
`;

async function stitchTars(dir: string, layers: TarEntry[][], t: { after: (fn: () => void) => void }): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const [k, spec] of layers.entries()) {
    const tar = join(dir, `l${k}.tar`);
    run('python3', ['-c', PY, tar, JSON.stringify(spec)]);
    const p = join(dir, `l${k}.erofs`);
    await convertLayer(tar, p);
    paths.push(p);
  }
  const res = await stitchLayers(paths, join(dir, 'out'));
  const raw = join(dir, 'disk.raw');
  run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', res.vmdkPath, raw]);
  const m = mountErofs(raw);
  t.after(m.umount);
  return m.dir;
}

const T = 1600000000;

test('E3: an implicit upper /etc keeps the lower metadata; an explicit one overrides it', async (t) => {
  const { dir, cleanup } = tempDir('msb-sem-');
  t.after(cleanup);
  const lower: TarEntry[] = [
    { name: 'etc', type: 'dir', mode: 0o750, mtime: T, uid: 7 },
    { name: 'etc/passwd', data: 'root\n' },
  ];
  const m1 = await stitchTars(join(dir, 'a'), [lower, [{ name: 'etc/foo', data: 'foo\n' }]], t);
  const st = lstatSync(join(m1, 'etc'));
  assert.equal(st.mode & 0o7777, 0o750);
  assert.equal(st.mtimeMs, T * 1000);
  assert.equal(st.uid, 7);
  assert.deepEqual(readdirSync(join(m1, 'etc')).sort(), ['foo', 'passwd']);
  assert.doesNotMatch(treeManifest(m1), /trusted\.msb|trusted\.overlay/);

  const m2 = await stitchTars(
    join(dir, 'b'),
    [
      lower,
      [
        { name: 'etc/', type: 'dir', mode: 0o711, mtime: T + 5 },
        { name: 'etc/foo', data: 'foo\n' },
      ],
    ],
    t,
  );
  const st2 = lstatSync(join(m2, 'etc'));
  assert.equal(st2.mode & 0o7777, 0o711);
  assert.equal(st2.mtimeMs, (T + 5) * 1000);
  assert.equal(st2.uid, 0);
});

test('E4: root metadata from the topmost explicit root, defaults otherwise; a root opaque marker hides all lower files', async (t) => {
  const { dir, cleanup } = tempDir('msb-sem-');
  t.after(cleanup);
  const m1 = await stitchTars(
    join(dir, 'a'),
    [
      [{ name: 'a', data: 'a' }],
      [
        { name: './', type: 'dir', mode: 0o700, mtime: T },
        { name: 'b', data: 'b' },
      ],
    ],
    t,
  );
  assert.equal(lstatSync(m1).mode & 0o7777, 0o700);
  assert.equal(lstatSync(m1).mtimeMs, T * 1000);
  const m2 = await stitchTars(join(dir, 'b'), [[{ name: 'a', data: 'a' }], [{ name: 'd/b', data: 'b' }]], t);
  const r = lstatSync(m2);
  assert.deepEqual([r.mode & 0o7777, r.uid, r.gid, r.mtimeMs], [0o755, 0, 0, 0]);
  const m3 = await stitchTars(
    join(dir, 'c'),
    [
      [
        { name: 'a', data: 'a' },
        { name: 'd/x', data: 'x' },
      ],
      [{ name: '.wh..wh..opq' }, { name: 'new', data: 'new' }],
    ],
    t,
  );
  assert.deepEqual(readdirSync(m3), ['new']);
});

test('E5: whiteout or replacement of a hardlink alias lowers nlink; a dir replacing a file leaves no 0/0', async (t) => {
  const { dir, cleanup } = tempDir('msb-sem-');
  t.after(cleanup);
  const lower: TarEntry[] = [
    { name: 'l/orig', data: 'shared\n' },
    { name: 'l/h1', type: 'hardlink', link: 'l/orig' },
    { name: 'l/h2', type: 'hardlink', link: 'l/orig' },
    { name: 'f', data: 'was a file' },
  ];
  const m = await stitchTars(
    dir,
    [
      lower,
      [
        { name: 'l/.wh.h1' },
        { name: 'f/inside', data: 'now a dir' },
        { name: 'f/.wh.ghost' },
        { name: 'z', type: 'chr', major: 0, minor: 0 }, // a genuine 0/0 device is a whiteout too
      ],
      [{ name: 'l/h2', data: 'replaced\n' }],
    ],
    t,
  );
  const o = lstatSync(join(m, 'l/orig'));
  assert.equal(o.nlink, 1, 'one alias whited out, one replaced');
  assert.equal(readFileSync(join(m, 'l/orig'), 'utf8'), 'shared\n');
  assert.equal(readFileSync(join(m, 'l/h2'), 'utf8'), 'replaced\n');
  assert.notEqual(lstatSync(join(m, 'l/h2')).ino, o.ino);
  assert.ok(!existsSync(join(m, 'l/h1')));
  assert.deepEqual(readdirSync(join(m, 'f')), ['inside']);
  assert.ok(!existsSync(join(m, 'z')));
  assert.doesNotMatch(treeManifest(m), / chr .*rdev=0,0/);
});

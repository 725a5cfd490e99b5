/**
 * fsmeta bytes and kernel proof on hand-built layer images (docs/erofs.md §7.2, §7.3; acceptance E5,
 * E6 structure, E7, E8), independent of the tar ingest: each layer is written with the shared
 * image writer plus file data placed by this test, so the only thing under test is the merge +
 * fsmeta + VMDK path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import { lstatSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { layoutImage, writeImageMetadata } from '../../src/erofs/image-writer.js';
import { newDir, newMeta, type DirNode, type Entry, type Inode, type Meta } from '../../src/erofs/tree.js';
import { buildFsmeta, planFsmeta } from '../../src/stitch/build.js';
import { diffIdTag } from '../../src/stitch/fsmeta.js';
import { validateFsmetaFile, validateLayerFile } from '../../src/stitch/validate.js';
import { superblockChecksum } from '../../src/erofs/format.js';
import { MsbError } from '../../src/errors.js';
import { erofsUtils, mountErofs, run, runStatus, tempDir } from '../helpers/env.js';
import { flipByte } from '../helpers/bytes.js';

const X = (index: number, suffix: string, value: string | Buffer) => ({
  index,
  suffix: Buffer.from(suffix, 'latin1'),
  value: Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'),
});
const meta = (p: Partial<Meta> = {}): Meta => newMeta(p);
function dir(
  children: Record<string, Entry>,
  opts: { implicit?: boolean; opaque?: boolean; meta?: Partial<Meta> } = {},
): DirNode {
  const d = newDir(opts.implicit ?? false, meta(opts.meta));
  d.opaque = opts.opaque ?? false;
  for (const [k, v] of Object.entries(children)) d.children.set(k, v);
  return d;
}

/** A hand-built layer: tree + the content of each regular file (placed from block 1 on). */
interface HandLayer {
  root: DirNode;
  contents: Map<Inode, Buffer>;
}
function file(contents: Map<Inode, Buffer>, data: Buffer | string, m: Partial<Meta> = {}): Inode {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const f: Inode = { kind: 'file', meta: meta({ mode: 0o644, ...m }), size: buf.length };
  contents.set(f, buf);
  return f;
}
const wh = (): Inode => ({ kind: 'chr', meta: meta({ mode: 0 }), size: 0, rdevMajor: 0, rdevMinor: 0 });

/** Writes a layer image the way the layer writer lays it out: data blocks from 1, then metadata. */
async function writeHandLayer(path: string, l: HandLayer, uuid: Buffer): Promise<number> {
  const fh = await open(path, 'wx', 0o644);
  try {
    let cursor = 1;
    for (const [f, buf] of l.contents) {
      if (buf.length === 0) continue;
      f.data = { device: 0, startBlock: cursor };
      await fh.write(buf, 0, buf.length, cursor * 4096);
      cursor += Math.ceil(buf.length / 4096);
    }
    const layout = layoutImage(l.root, { firstFreeBlock: cursor });
    await writeImageMetadata(fh, layout, { uuid });
    return layout.totalBlocks * 4096;
  } finally {
    await fh.close();
  }
}

const rand = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >>> 16;
  }
  return b;
};

function makeLayers() {
  const c0 = new Map<Inode, Buffer>();
  const shared = file(c0, 'original content\n', { mtime: 1000n, mtimeNsec: 5 });
  const L0: HandLayer = {
    contents: c0,
    root: dir(
      {
        etc: dir(
          { motd: file(c0, 'hello from layer 0\n'), passwd: file(c0, 'root:x:0:0\n') },
          { meta: { mode: 0o750, mtime: 1234n, uid: 0 } },
        ),
        links: dir({ 'orig.txt': shared, hard1: shared, sub: dir({ hard2: shared }) }),
        big: file(c0, rand(3 * 4096 + 5, 1)),
        gone: dir({ a: file(c0, 'a') }),
        tc: file(c0, 'was a file'),
        empty: file(c0, ''),
      },
      { implicit: true },
    ),
  };
  const c1 = new Map<Inode, Buffer>();
  const cap = Buffer.from('0100000200300000000000000000000000000000', 'hex');
  const L1: HandLayer = {
    contents: c1,
    root: dir(
      {
        etc: dir({ new: file(c1, 'new in layer 1\n') }, { implicit: true }),
        links: dir({ hard1: wh() }, { implicit: true }),
        gone: wh(),
        tc: dir({ inner: file(c1, 'dir now'), w: wh() }, { meta: { mode: 0o711 } }),
        // user.abc=1 is a 20-byte ibody: the chunk index needs 4 bytes of padding (E7).
        xa: file(c1, rand(9000, 2), { xattrs: [X(1, 'abc', '1')] }),
        capbin: file(c1, rand(100, 3), { xattrs: [X(6, 'capability', cap)] }),
        dev: dir({
          big: { kind: 'chr', meta: meta({ mode: 0o600 }), size: 0, rdevMajor: 250, rdevMinor: 70000 },
          fifo: { kind: 'fifo', meta: meta(), size: 0 },
        }),
        sym: { kind: 'symlink', meta: meta({ mode: 0o777 }), size: 11, target: Buffer.from('/etc/passwd') },
      },
      { implicit: true },
    ),
  };
  return { L0, L1, cap };
}

test('fsmeta of hand-built layers: structure (E6), kernel mount of fsmeta ‖ layers (E5, E7), fsck --device (E8)', async (t) => {
  const { dir: tmp, cleanup } = tempDir();
  t.after(cleanup);
  const { L0, L1, cap } = makeLayers();
  const u0 = Buffer.alloc(16, 0xa0);
  const u1 = Buffer.alloc(16, 0xa1);
  const p0 = join(tmp, 'l0.erofs');
  const p1 = join(tmp, 'l1.erofs');
  const s0 = await writeHandLayer(p0, L0, u0);
  const s1 = await writeHandLayer(p1, L1, u1);
  const d0 = `sha256:${'0a'.repeat(32)}`;
  const d1 = `sha256:${'1b'.repeat(32)}`;
  const uuid = Buffer.from('fedcba98765432100123456789abcdef', 'hex');
  const fsmeta = join(tmp, 'fsmeta.erofs');
  const res = await buildFsmeta(
    [
      { root: L0.root, sizeBytes: s0, tag: diffIdTag(d0) },
      { root: L1.root, sizeBytes: s1, tag: diffIdTag(d1) },
    ],
    fsmeta,
    { uuid },
  );
  const fb = await readFile(fsmeta);
  assert.equal(fb.length, res.sizeBytes);
  assert.equal(res.blocks * 4096, res.sizeBytes);

  // Superblock and device table (E6).
  const sb = fb.subarray(1024, 1152);
  assert.equal(sb.readUInt32LE(0), 0xe0f5e1e2);
  assert.equal(sb.readUInt16LE(0x0e), 1, 'root_nid');
  assert.equal(sb.readUInt32LE(0x24), res.blocks);
  assert.deepEqual(sb.subarray(0x30, 0x40), uuid);
  assert.equal(sb.readUInt32LE(0x50), 0xc, 'feature_incompat');
  assert.equal(sb.readUInt16LE(0x56), 2, 'extra_devices');
  assert.equal(sb.readUInt16LE(0x58), 9, 'devt_slotoff');
  const slot = (i: number) => fb.subarray(1152 + 128 * i, 1152 + 128 * (i + 1));
  assert.equal(slot(0).subarray(0, 64).toString('latin1'), '0a'.repeat(32));
  assert.equal(slot(0).readUInt32LE(0x40), s0 / 4096);
  assert.equal(slot(0).readUInt32LE(0x44), res.blocks);
  assert.equal(slot(1).subarray(0, 64).toString('latin1'), '1b'.repeat(32));
  assert.equal(slot(1).readUInt32LE(0x40), s1 / 4096);
  assert.equal(slot(1).readUInt32LE(0x44), res.blocks + s0 / 4096);

  // Every non-empty file is CHUNK_BASED with one index on its provenance device; empty is FLAT_PLAIN.
  const plan = planFsmeta([
    { root: L0.root, sizeBytes: s0, tag: diffIdTag(d0) },
    { root: L1.root, sizeBytes: s1, tag: diffIdTag(d1) },
  ]);
  const metaBase = plan.layout.metaBlkaddr * 4096;
  let chunked = 0;
  for (const p of plan.layout.nodes) {
    if (p.entry.kind !== 'file') continue;
    const ino = fb.subarray(metaBase + p.offset, metaBase + p.offset + p.slot);
    const fmt = ino.readUInt16LE(0);
    if (p.entry.size === 0) {
      assert.equal(fmt, 0x0001);
      assert.equal(ino.readUInt32LE(16), 0xffffffff);
      continue;
    }
    assert.equal(fmt, 0x0009, 'CHUNK_BASED');
    const iu = ino.readUInt32LE(16);
    const nblocks = Math.ceil(p.entry.size / 4096);
    assert.equal(iu, 0x20 | Math.ceil(Math.log2(nblocks)));
    const idxOff = Math.ceil((64 + p.ibody) / 8) * 8;
    assert.equal(p.slot, Math.ceil((idxOff + 8) / 32) * 32, 'exactly one chunk index');
    assert.equal(ino.readUInt16LE(idxOff), 0);
    assert.equal(ino.readUInt16LE(idxOff + 2), p.entry.data!.device);
    assert.equal(ino.readUInt32LE(idxOff + 4), p.entry.data!.startBlock);
    if (p.ibody === 20) assert.ok(ino.subarray(64 + 20, 64 + 24).equals(Buffer.alloc(4)), '4 zero bytes of padding');
    chunked++;
  }
  assert.equal(chunked, 8);

  // Deterministic: a second build is byte-identical.
  const again = join(tmp, 'again.erofs');
  await buildFsmeta(
    [
      { root: L0.root, sizeBytes: s0, tag: diffIdTag(d0) },
      { root: L1.root, sizeBytes: s1, tag: diffIdTag(d1) },
    ],
    again,
    { uuid },
  );
  assert.ok(fb.equals(await readFile(again)));

  // fsck with the layers as devices (E8).
  const fsck = runStatus(erofsUtils('fsck.erofs'), [`--device=${p0}`, `--device=${p1}`, fsmeta]);
  assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);

  // The single-disk form: cat fsmeta l0 l1, kernel mount, flat multi-device mode.
  const disk = join(tmp, 'disk.raw');
  await writeFile(disk, Buffer.concat([fb, await readFile(p0), await readFile(p1)]));
  const m = mountErofs(disk);
  t.after(m.umount);
  const r = (p: string) => readFileSync(join(m.dir, p));
  assert.equal(r('etc/motd').toString(), 'hello from layer 0\n');
  assert.equal(r('etc/new').toString(), 'new in layer 1\n');
  assert.ok(r('big').equals(L0.contents.get(L0.root.children.get('big') as Inode)!));
  assert.ok(r('xa').equals(rand(9000, 2)), 'a 20-byte-ibody file reads its true content (E7)');
  assert.ok(r('capbin').equals(rand(100, 3)));
  assert.equal(run('getfattr', ['--only-values', '-n', 'user.abc', join(m.dir, 'xa')]), '1');
  const capHex = run('getfattr', ['-e', 'hex', '-n', 'security.capability', join(m.dir, 'capbin')]);
  assert.match(capHex, new RegExp(`security.capability=0x${cap.toString('hex')}`));
  assert.deepEqual(readdirSync(m.dir).sort(), ['big', 'capbin', 'dev', 'empty', 'etc', 'links', 'sym', 'tc', 'xa']);
  assert.deepEqual(
    readdirSync(join(m.dir, 'tc')).sort(),
    ['inner'],
    'no 0/0 device under a dir that replaced a file (E5)',
  );
  assert.equal(lstatSync(join(m.dir, 'tc')).mode & 0o7777, 0o711);
  const etc = lstatSync(join(m.dir, 'etc'));
  assert.equal(etc.mode & 0o7777, 0o750, 'an implicit upper dir keeps the lower metadata (E3)');
  assert.equal(etc.mtimeMs, 1234000);
  const orig = lstatSync(join(m.dir, 'links/orig.txt'));
  assert.equal(orig.nlink, 2, 'a whited-out alias lowers nlink (E5)');
  assert.equal(lstatSync(join(m.dir, 'links/sub/hard2')).ino, orig.ino);
  assert.equal(lstatSync(join(m.dir, 'links/orig.txt'), { bigint: true }).mtimeNs, 1000_000000005n);
  assert.equal(r('links/sub/hard2').toString(), 'original content\n');
  const big = lstatSync(join(m.dir, 'dev/big'));
  assert.ok(big.isCharacterDevice());
  assert.equal(big.rdev, (250 << 8) | (70000 & 0xff) | ((70000 & ~0xff) << 12));
  assert.ok(lstatSync(join(m.dir, 'dev/fifo')).isFIFO());
  assert.equal(lstatSync(join(m.dir, 'empty')).size, 0);
  assert.equal(run('readlink', [join(m.dir, 'sym')]).trim(), '/etc/passwd');
  const rootSt = lstatSync(m.dir);
  assert.equal(rootSt.mode & 0o7777, 0o755);
  assert.equal(rootSt.mtimeMs, 0);
  assert.equal(run('stat', ['-c', '%i', m.dir]).trim(), '1');
});

test('buildFsmeta: O_EXCL candidate, removed on failure; diskBlocks limit', async (t) => {
  const { dir: tmp, cleanup } = tempDir();
  t.after(cleanup);
  const { L0 } = makeLayers();
  const p0 = join(tmp, 'l0.erofs');
  const s0 = await writeHandLayer(p0, L0, Buffer.alloc(16, 1));
  const tag = diffIdTag(`sha256:${'0a'.repeat(32)}`);
  await writeFile(join(tmp, 'exists'), 'x');
  await assert.rejects(
    buildFsmeta([{ root: L0.root, sizeBytes: s0, tag }], join(tmp, 'exists'), { uuid: Buffer.alloc(16) }),
    (e: unknown) => e instanceof MsbError && e.code === 'IO',
  );
  assert.equal(readFileSync(join(tmp, 'exists'), 'utf8'), 'x', 'an existing file is never overwritten');
  await assert.rejects(
    buildFsmeta([{ root: L0.root, sizeBytes: 2 ** 32 * 4096 - 4096, tag }], join(tmp, 'huge'), {
      uuid: Buffer.alloc(16),
    }),
    (e: unknown) =>
      e instanceof MsbError && e.code === 'LIMIT_EXCEEDED' && (e.details as { limit: string }).limit === 'diskBlocks',
  );
  assert.deepEqual(readdirSync(tmp).sort(), ['exists', 'l0.erofs']);
  const ac = new AbortController();
  ac.abort('stop');
  await assert.rejects(
    buildFsmeta([{ root: L0.root, sizeBytes: s0, tag }], join(tmp, 'ab'), {
      uuid: Buffer.alloc(16),
      signal: ac.signal,
    }),
    (e: unknown) => e instanceof MsbError && e.code === 'ABORTED',
  );
  assert.deepEqual(readdirSync(tmp).sort(), ['exists', 'l0.erofs']);
});

test('validation (docs/storage.md §5): layer and fsmeta headers, each corruption detected by a cheap read', async (t) => {
  const { dir: tmp, cleanup } = tempDir();
  t.after(cleanup);
  const { L0, L1 } = makeLayers();
  const u0 = Buffer.alloc(16, 0xa0);
  const u1 = Buffer.alloc(16, 0xa1);
  const p0 = join(tmp, 'l0.erofs');
  const p1 = join(tmp, 'l1.erofs');
  const s0 = await writeHandLayer(p0, L0, u0);
  const s1 = await writeHandLayer(p1, L1, u1);
  const tags = [diffIdTag(`sha256:${'0a'.repeat(32)}`), diffIdTag(`sha256:${'1b'.repeat(32)}`)];
  const uuid = Buffer.alloc(16, 0x5e);
  const fsmeta = join(tmp, 'fsmeta.erofs');
  const res = await buildFsmeta(
    [
      { root: L0.root, sizeBytes: s0, tag: tags[0]! },
      { root: L1.root, sizeBytes: s1, tag: tags[1]! },
    ],
    fsmeta,
    { uuid },
  );
  const expected = {
    uuid,
    layers: [
      { sizeBytes: s0, tag: tags[0]! },
      { sizeBytes: s1, tag: tags[1]! },
    ],
  };

  assert.equal(await validateLayerFile(p0, { uuid: u0, sizeBytes: s0 }), null);
  assert.equal(await validateLayerFile(p1), null);
  assert.equal(await validateFsmetaFile(fsmeta, expected), null);
  assert.equal(await validateFsmetaFile(fsmeta, { ...expected, sizeBytes: res.sizeBytes }), null);

  assert.match((await validateLayerFile(p0, { uuid: u1 }))!, /uuid/);
  assert.match((await validateLayerFile(p0, { sizeBytes: s0 + 4096 }))!, /recorded/);
  assert.match((await validateLayerFile(fsmeta))!, /device table/);
  assert.match((await validateLayerFile(join(tmp, 'nope')))!, /ENOENT/);
  symlinkSync(p0, join(tmp, 'link.erofs'));
  assert.match((await validateLayerFile(join(tmp, 'link.erofs')))!, /symbolic link/);
  assert.match(
    (await validateFsmetaFile(fsmeta, { ...expected, layers: [expected.layers[1]!, expected.layers[0]!] }))!,
    /device 1/,
  );
  assert.match((await validateFsmetaFile(fsmeta, { ...expected, layers: [expected.layers[0]!] }))!, /extra_devices/);
  assert.match((await validateFsmetaFile(fsmeta, { ...expected, uuid: u0 }))!, /uuid/);

  const corrupt = async (src: string, f: (b: Buffer) => unknown): Promise<string> => {
    const b = readFileSync(src);
    const out = (f(b) as Buffer | undefined) ?? b;
    const p = join(tmp, `bad-${Math.random().toString(16).slice(2)}`);
    await writeFile(p, out);
    return p;
  };
  const cases: [string, (b: Buffer) => unknown, RegExp][] = [
    [
      'magic',
      (b) => {
        flipByte(b, 1024, 0xff);
      },
      /magic/,
    ],
    [
      'crc (a device-table byte)',
      (b) => {
        flipByte(b, 1152 + 0x40, 1);
      },
      /CRC/,
    ],
    [
      'crc (a byte in the unused tail of block 0)',
      (b) => {
        b[4000] = 1;
      },
      /CRC/,
    ],
    ['one block longer', (b) => Buffer.concat([b, Buffer.alloc(4096)]), /blocks/],
    ['not a block multiple', (b) => b.subarray(0, b.length - 100), /multiple/],
    ['empty', () => Buffer.alloc(0), /multiple/],
  ];
  for (const [name, f, re] of cases) {
    assert.match((await validateFsmetaFile(await corrupt(fsmeta, f), expected)) ?? 'valid', re, name);
  }
  const layerCases: [string, (b: Buffer) => unknown, RegExp][] = [
    [
      'volume name',
      (b) => {
        b.write('msb-erofs/2', 1024 + 0x40, 'latin1');
        fixCrc(b);
      },
      /volume_name/,
    ],
    [
      'blkszbits',
      (b) => {
        b[1024 + 0x0c] = 9;
        fixCrc(b);
      },
      /blkszbits/,
    ],
    [
      'meta_blkaddr past the end',
      (b) => {
        b.writeUInt32LE(b.length / 4096, 1024 + 0x28);
        fixCrc(b);
      },
      /meta_blkaddr|root inode/,
    ],
    [
      'root nid points at a file',
      (b) => {
        b.writeUInt16LE(5, 1024 + 0x0e);
        fixCrc(b);
      },
      /root inode/,
    ],
  ];
  for (const [name, f, re] of layerCases) {
    assert.match((await validateLayerFile(await corrupt(p0, f))) ?? 'valid', re, name);
  }
});

function fixCrc(b: Buffer): void {
  b.writeUInt32LE(superblockChecksum(b.subarray(0, 4096)), 1024 + 4);
}

/**
 * Golden bytes and kernel proof for the EROFS image writer (docs/erofs.md §2–§4, §7.2; acceptance D2,
 * D3, D6 dirent order, chunk-index alignment with a 20-byte ibody).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, writeFile as writeFileP } from 'node:fs/promises';
import { readdirSync, statSync, readFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c, superblockChecksum, BLOCK_SIZE } from '../../src/erofs/format.js';
import { layoutImage, writeImageMetadata, type DeviceSlot } from '../../src/erofs/image-writer.js';
import { newDir, newMeta, type DirNode, type Inode } from '../../src/erofs/tree.js';
import { erofsUtils, mountErofs, run, runStatus, tempDir } from '../helpers/env.js';

const UUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

async function build(
  root: DirNode,
  path: string,
  opts: {
    firstFreeBlock?: number;
    devices?: DeviceSlot[];
    pre?: (fh: import('node:fs/promises').FileHandle) => Promise<void>;
  } = {},
) {
  const fh = await open(path, 'wx', 0o644);
  try {
    await opts.pre?.(fh);
    const layout = layoutImage(root, { firstFreeBlock: opts.firstFreeBlock ?? 1 });
    await writeImageMetadata(fh, layout, { uuid: UUID, ...(opts.devices ? { devices: opts.devices } : {}) });
    return layout;
  } finally {
    await fh.close();
  }
}

function fsckOk(img: string, extra: string[] = []) {
  const r = runStatus(erofsUtils('fsck.erofs'), [...extra, img]);
  assert.equal(r.status, 0, `fsck.erofs ${img}: ${r.stdout}${r.stderr}`);
}

test('CRC32C vectors (docs/erofs.md §3)', () => {
  assert.equal(crc32c(0xffffffff, Buffer.from('123456789')), 0x1cf96d7c);
  assert.equal(crc32c(0xffffffff, Buffer.from([0xe2, 0xe1, 0xf5, 0xe0, 0, 0, 0, 0])), 0x5045b54a);
});

test('empty root image: golden superblock and root inode bytes, mounts with . and .. at inode 1', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const img = join(dir, 'empty.erofs');
  const layout = await build(newDir(false), img);
  assert.equal(layout.totalBlocks, 2);
  const b = await readFile(img);
  assert.equal(b.length, 2 * BLOCK_SIZE);
  assert.ok(b.subarray(0, 1024).equals(Buffer.alloc(1024)));
  const sb = b.subarray(1024, 1152);
  const expectSb = Buffer.alloc(128);
  expectSb.writeUInt32LE(0xe0f5e1e2, 0);
  expectSb.writeUInt32LE(1, 8); // SB_CHKSUM
  expectSb[0x0c] = 12;
  expectSb.writeUInt16LE(1, 0x0e); // root nid
  expectSb.writeBigUInt64LE(1n, 0x10); // inos
  expectSb.writeUInt32LE(2, 0x24); // blocks
  expectSb.writeUInt32LE(1, 0x28); // meta_blkaddr: right after the (empty) data
  UUID.copy(expectSb, 0x30);
  expectSb.write('msb-erofs/1', 0x40, 'latin1');
  // CRC verified independently: the table-free bitwise CRC over [1024,4096) with the field zeroed.
  const tail = Buffer.from(b.subarray(1024, 4096));
  tail.writeUInt32LE(0, 4);
  let c = 0xffffffff;
  for (const byte of tail) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  expectSb.writeUInt32LE(c >>> 0, 4);
  assert.deepEqual(sb, expectSb);
  assert.equal(superblockChecksum(b), sb.readUInt32LE(4));
  assert.ok(b.subarray(1152, 4096).equals(Buffer.alloc(4096 - 1152)));
  // Metadata area at block 1: nid 0 reserved (zeros), root inode at nid 1 (byte 32), FLAT_INLINE.
  const meta = b.subarray(4096);
  assert.ok(meta.subarray(0, 32).equals(Buffer.alloc(32)));
  const expectInode = Buffer.from(
    '0500' +
      '0000' +
      'ed41' +
      '0000' +
      '1b00000000000000' +
      'ffffffff' +
      '01000000' +
      '00000000' +
      '00000000' +
      '0000000000000000' +
      '00000000' +
      '02000000' +
      '00'.repeat(16),
    'hex',
  );
  assert.deepEqual(meta.subarray(32, 96), expectInode);
  // Inline dirents: "." nid 1 nameoff 24 type 2, ".." nid 1 nameoff 25 type 2, names "..." (27 bytes).
  const expectDir = Buffer.from(
    '0100000000000000' + '1800' + '02' + '00' + '0100000000000000' + '1900' + '02' + '00',
    'hex',
  );
  assert.deepEqual(meta.subarray(96, 120), expectDir);
  assert.equal(meta.subarray(120, 123).toString('latin1'), '...');
  assert.ok(meta.subarray(123).equals(Buffer.alloc(meta.length - 123)));
  fsckOk(img);
  const m = mountErofs(img);
  try {
    assert.deepEqual(run('ls', ['-a', m.dir]).split('\n').filter(Boolean), ['.', '..']);
    assert.equal(run('stat', ['-c', '%i', m.dir]).trim(), '1');
  } finally {
    m.umount();
  }
});

test('dirent order: "-x" sorts before "." (docs/erofs.md §4.5); big dirs pack greedily across blocks', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const root = newDir(false);
  const f = (): Inode => ({ kind: 'file', meta: newMeta({ mode: 0o644 }), size: 0 });
  root.children.set('-x', f());
  root.children.set('a', f());
  const big = newDir(false);
  root.children.set('big', big);
  for (let i = 0; i < 5000; i++) big.children.set(`name-${String(i).padStart(5, '0')}`, f());
  const img = join(dir, 'd.erofs');
  const layout = await build(root, img);
  const b = await readFile(img);
  const rp = layout.byEntry.get(root)!;
  assert.equal(rp.nid, 1);
  const base = layout.metaBlkaddr * 4096 + rp.offset + 64;
  const names: string[] = [];
  const n = b.readUInt16LE(base + 8) / 12;
  for (let i = 0; i < n; i++) {
    const s = b.readUInt16LE(base + i * 12 + 8);
    const e = i + 1 < n ? b.readUInt16LE(base + (i + 1) * 12 + 8) : rp.size;
    names.push(b.subarray(base + s, base + e).toString('latin1'));
  }
  assert.deepEqual(names, ['-x', '.', '..', 'a', 'big']);
  const bp = layout.byEntry.get(big)!;
  assert.ok(bp.nblocks > 10);
  fsckOk(img);
  const m = mountErofs(img);
  try {
    assert.deepEqual(run('ls', ['-a', m.dir]).split('\n').filter(Boolean).sort(), ['-x', '.', '..', 'a', 'big']);
    const listed = readdirSync(join(m.dir, 'big'));
    assert.equal(listed.length, 5000);
    for (const name of ['name-00000', 'name-02500', 'name-04999'])
      assert.ok(statSync(join(m.dir, 'big', name)).isFile());
    assert.equal(statSync(join(m.dir, 'big')).nlink, 2);
    assert.equal(statSync(m.dir).nlink, 3);
  } finally {
    m.umount();
  }
});

test('fsmeta shape: CHUNK_BASED file with a 20-byte ibody (4 pad bytes), device table; the stitched disk mounts', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  // Layer: one file whose data is at layer block 1 and 2 (5000 bytes), written by hand.
  const content = Buffer.alloc(5000);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7 + 3) & 0xff;
  const lroot = newDir(false);
  lroot.children.set('f', {
    kind: 'file',
    meta: newMeta({ mode: 0o644 }),
    size: content.length,
    data: { device: 0, startBlock: 1 },
  });
  const layerImg = join(dir, 'layer.erofs');
  const ll = await build(lroot, layerImg, {
    firstFreeBlock: 3,
    pre: async (fh) => {
      await fh.write(content, 0, content.length, 4096);
    },
  });
  fsckOk(layerImg);
  // fsmeta: the same file as a chunk index into device 1, with user.a = "bcd" → ibody 20.
  const root = newDir(false);
  const xattrs = [{ index: 1, suffix: Buffer.from('a'), value: Buffer.from('bcd') }];
  root.children.set('f', {
    kind: 'file',
    meta: newMeta({ mode: 0o644, xattrs }),
    size: content.length,
    data: { device: 1, startBlock: 1 },
  });
  root.children.set('g', { kind: 'file', meta: newMeta({ mode: 0o600 }), size: 0 });
  const fsmeta = join(dir, 'fsmeta.erofs');
  // firstFreeBlock 1 (H = 1 for n ≤ 23); the layout tells us the fsmeta block count for mapped_blkaddr.
  const probe = layoutImage(root, { firstFreeBlock: 1 });
  const tag = Buffer.alloc(64);
  Buffer.from(UUID.toString('hex')).copy(tag);
  const layout = await build(root, fsmeta, {
    devices: [{ tag, blocks: ll.totalBlocks, mappedBlkaddr: probe.totalBlocks }],
  });
  const b = await readFile(fsmeta);
  assert.equal(b.length, layout.totalBlocks * 4096);
  assert.equal(b.readUInt32LE(1024 + 0x50), 0xc);
  assert.equal(b.readUInt16LE(1024 + 0x56), 1);
  assert.equal(b.readUInt16LE(1024 + 0x58), 9);
  assert.deepEqual(b.subarray(1152, 1152 + 64), tag);
  assert.equal(b.readUInt32LE(1152 + 0x40), ll.totalBlocks);
  assert.equal(b.readUInt32LE(1152 + 0x44), layout.totalBlocks);
  const fp = layout.byEntry.get(root.children.get('f')!)!;
  assert.equal(fp.ibody, 20);
  assert.equal(fp.slot, 96);
  const ioff = layout.metaBlkaddr * 4096 + fp.offset;
  assert.equal(b.readUInt16LE(ioff), 0x0009); // CHUNK_BASED, extended
  assert.equal(b.readUInt16LE(ioff + 2), 3); // (20 - 12) / 4 + 1
  assert.equal(b.readUInt32LE(ioff + 16), 0x21); // INDEXES | chunkbits 13 - 12 (2 blocks)
  assert.deepEqual(b.subarray(ioff + 84, ioff + 96), Buffer.from('00000000' + '0000' + '0100' + '01000000', 'hex'));
  fsckOk(fsmeta, [`--device=${layerImg}`]);
  const raw = join(dir, 'disk.raw');
  await writeFileP(raw, Buffer.concat([b, readFileSync(layerImg)]));
  const m = mountErofs(raw);
  try {
    assert.deepEqual(readFileSync(join(m.dir, 'f')), content);
    assert.equal(lstatSync(join(m.dir, 'g')).size, 0);
    assert.equal(run('getfattr', ['--only-values', '-n', 'user.a', join(m.dir, 'f')]), 'bcd');
  } finally {
    m.umount();
  }
});

test('determinism: the same tree gives the same bytes', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const mk = () => {
    const root = newDir(true);
    root.opaque = true;
    const sub = newDir(false, newMeta({ mode: 0o700, uid: 70000, mtime: 4102444800n, mtimeNsec: 5 }));
    root.children.set('sub', sub);
    sub.children.set('l', {
      kind: 'symlink',
      meta: newMeta({ mode: 0o777 }),
      size: 300,
      target: Buffer.alloc(300, 0x61),
    });
    sub.children.set('c', { kind: 'chr', meta: newMeta({ mode: 0o600 }), size: 0, rdevMajor: 250, rdevMinor: 70000 });
    return root;
  };
  await build(mk(), join(dir, 'a.erofs'));
  await build(mk(), join(dir, 'b.erofs'));
  assert.deepEqual(await readFile(join(dir, 'a.erofs')), await readFile(join(dir, 'b.erofs')));
  fsckOk(join(dir, 'a.erofs'));
  const m = mountErofs(join(dir, 'a.erofs'));
  try {
    assert.equal(run('stat', ['-c', '%t:%T %a %u %Y', join(m.dir, 'sub/c')]).trim(), `fa:11170 600 0 0`);
    assert.equal(run('readlink', [join(m.dir, 'sub/l')]).trim(), 'a'.repeat(300));
    assert.equal(run('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', m.dir]), 'y');
    assert.equal(run('getfattr', ['--only-values', '-n', 'trusted.msb.implicit', m.dir]), 'y');
    assert.equal(run('stat', ['-c', '%a %u %.9Y', join(m.dir, 'sub')]).trim(), '700 70000 4102444800.000000005');
  } finally {
    m.umount();
  }
});

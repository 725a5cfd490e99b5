/**
 * The EROFS reader (docs/erofs.md §5 Reader) and the docs/storage.md §5 header check: round trips of real
 * layers (the tree read back equals the ingested one, hardlink identities and marker flags
 * included), compact inodes from mkfs.erofs, and CacheCorruptError for each corruption class.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createReadStream,
  mkdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  linkSync,
  utimesSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { checkErofsHeader, readErofsTree } from '../../src/erofs/reader.js';
import { layoutImage, writeImageMetadata, type ImageLayout } from '../../src/erofs/image-writer.js';
import { superblockChecksum } from '../../src/erofs/format.js';
import { isDir, newDir, newMeta, type DirNode, type Entry, type Inode } from '../../src/erofs/tree.js';
import { CacheCorruptError } from '../../src/errors.js';
import { ensureImages, erofsUtils, run, tempDir } from '../helpers/env.js';
import { rejectsTyped } from '../helpers/layer.js';

const UUID = Buffer.alloc(16, 0xab);

async function build(root: DirNode, path: string): Promise<ImageLayout> {
  const fh = await open(path, 'wx', 0o644);
  try {
    const layout = layoutImage(root, { firstFreeBlock: 1 });
    await writeImageMetadata(fh, layout, { uuid: UUID });
    return layout;
  } finally {
    await fh.close();
  }
}

function sampleTree(): DirNode {
  const root = newDir(true);
  const d = newDir(
    false,
    newMeta({ mode: 0o750, uid: 1, xattrs: [{ index: 1, suffix: Buffer.from('k'), value: Buffer.from('v') }] }),
  );
  d.opaque = true;
  root.children.set('d', d);
  const f: Inode = { kind: 'symlink', meta: newMeta({ mode: 0o777 }), size: 5, target: Buffer.from('abcde') };
  d.children.set('s', f);
  d.children.set('s2', f);
  for (let i = 0; i < 300; i++) d.children.set(`file-${i}`, { kind: 'fifo', meta: newMeta({ mode: 0o600 }), size: 0 });
  return root;
}

test('round trip: fixture layers read back deep-equal to the ingested trees, aliases share objects', async (t) => {
  const img = ensureImages();
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  for (const name of ['l2-base-pax', 'l3-nasty-pax', 'l4-gnu', 'l5-quirks', 'sparse-pax', 'empty']) {
    const out = join(dir, `${name}.erofs`);
    const res = await writeLayer(createReadStream(join(img.layers, `${name}.tar`)), out);
    const back = await readErofsTree(out);
    assert.ok(isDeepStrictEqual(back.root, res.root), name);
    assert.equal(back.blocks, res.blocks);
    assert.deepEqual(back.uuid, Buffer.from(res.diffId.slice(7, 39), 'hex'));
    const sb = await checkErofsHeader(out, { uuid: back.uuid });
    assert.equal(sb.volumeName, 'msb-erofs/1');
    assert.equal(sb.rootNid, 1);
    if (name === 'l3-nasty-pax') {
      const links = back.root.children.get('links') as DirNode;
      const sub = links.children.get('sub') as DirNode;
      assert.equal(links.children.get('orig.txt'), sub.children.get('hard2'));
      assert.equal((back.root.children.get('opaque') as DirNode).opaque, true);
    }
  }
  const out = join(dir, 'sample.erofs');
  const root = sampleTree();
  await build(root, out);
  const back = await readErofsTree(out);
  assert.ok(isDeepStrictEqual(back.root, root));
  assert.equal(back.root.implicit, true);
  const d = back.root.children.get('d') as DirNode;
  assert.equal(d.opaque, true);
  assert.equal(d.children.get('s'), d.children.get('s2'));
});

test('compact inodes (mkfs.erofs -Eforce-inode-compact) are read: owners, modes, mtimes, hardlinks, data map', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'd/e'), { recursive: true });
  writeFileSync(join(src, 'd/f'), 'hello\n');
  writeFileSync(join(src, 'd/e/big'), Buffer.alloc(10000, 9));
  symlinkSync('d/f', join(src, 'l'));
  linkSync(join(src, 'd/f'), join(src, 'hl'));
  run('chown', ['-h', '1234:567', join(src, 'd/e/big')]);
  for (const p of ['d/f', 'd/e/big', 'd/e', 'd', '']) utimesSync(join(src, p), 1577836800, 1577836800);
  const out = join(dir, 'c.erofs');
  run(erofsUtils('mkfs.erofs'), ['--quiet', '-Eforce-inode-compact,noinline_data', '-T1577836800', out, src]);
  assert.match(run(erofsUtils('dump.erofs'), ['--path=/d/e/big', out]), /Inode size: 32/);
  const { root } = await readErofsTree(out);
  const d = root.children.get('d') as DirNode;
  const big = (d.children.get('e') as DirNode).children.get('big') as Inode;
  assert.equal(big.kind, 'file');
  assert.equal(big.size, 10000);
  assert.equal(big.meta.uid, 1234);
  assert.equal(big.meta.gid, 567);
  assert.equal(big.meta.mtime, 1577836800n);
  assert.ok(big.data && big.data.device === 0 && big.data.startBlock > 0);
  const bytes = readFileSync(out);
  assert.deepEqual(
    bytes.subarray(big.data.startBlock * 4096, big.data.startBlock * 4096 + 10000),
    Buffer.alloc(10000, 9),
  );
  assert.equal(d.children.get('f'), root.children.get('hl'));
  assert.deepEqual((root.children.get('l') as Inode).target, Buffer.from('d/f'));
  // Not our format: the header check refuses it (volume name), the reader does not care.
  await rejectsTyped(checkErofsHeader(out), 'CACHE_CORRUPT', /format version|checksum/);
});

/** Copies `src` to a new file, applies `patch` to its bytes, optionally re-signs block 0. */
function corruptCopy(src: string, dst: string, patch: (b: Buffer) => void, resign = true): string {
  const b = Buffer.from(readFileSync(src));
  patch(b);
  if (resign) b.writeUInt32LE(superblockChecksum(b), 1024 + 4);
  writeFileSync(dst, b);
  return dst;
}

test('checkErofsHeader (docs/storage.md §5): each failed condition is CACHE_CORRUPT with a reason', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const good = join(dir, 'good.erofs');
  await build(sampleTree(), good);
  assert.equal((await checkErofsHeader(good, { uuid: UUID })).blocks * 4096, readFileSync(good).length);
  const sb = (o: number) => 1024 + o;
  const cases: Array<[string, () => string, RegExp]> = [
    ['missing', () => join(dir, 'nope.erofs'), /missing/],
    [
      'symlink',
      () => {
        symlinkSync(good, join(dir, 'sym.erofs'));
        return join(dir, 'sym.erofs');
      },
      /regular file/,
    ],
    [
      'empty',
      () => {
        writeFileSync(join(dir, 'e.erofs'), '');
        return join(dir, 'e.erofs');
      },
      /multiple of 4096/,
    ],
    [
      'odd length',
      () => {
        const p = corruptCopy(good, join(dir, 'odd.erofs'), () => undefined);
        truncateSync(p, 4096 * 2 + 1);
        return p;
      },
      /multiple of 4096/,
    ],
    [
      'one block longer',
      () => {
        const p = corruptCopy(good, join(dir, 'long.erofs'), () => undefined);
        truncateSync(p, readFileSync(good).length + 4096);
        return p;
      },
      /blocks/,
    ],
    [
      'magic',
      () =>
        corruptCopy(good, join(dir, 'magic.erofs'), (b) => {
          b[sb(0)] = 0;
        }),
      /magic/,
    ],
    [
      'crc',
      () =>
        corruptCopy(
          good,
          join(dir, 'crc.erofs'),
          (b) => {
            b[3000] = 1;
          },
          false,
        ),
      /checksum/,
    ],
    [
      'blkszbits',
      () =>
        corruptCopy(good, join(dir, 'bs.erofs'), (b) => {
          b[sb(0x0c)] = 9;
        }),
      /block size/,
    ],
    [
      'meta_blkaddr',
      () =>
        corruptCopy(good, join(dir, 'meta.erofs'), (b) => {
          b.writeUInt32LE(1000, sb(0x28));
        }),
      /meta_blkaddr/,
    ],
    [
      'volume',
      () =>
        corruptCopy(good, join(dir, 'vol.erofs'), (b) => {
          b.write('msb-erofs/9', sb(0x40), 'latin1');
        }),
      /format version/,
    ],
    [
      'root not dir',
      () =>
        corruptCopy(good, join(dir, 'root.erofs'), (b) => {
          const m = b.readUInt32LE(sb(0x28)) * 4096 + 32;
          b.writeUInt16LE(0o100644, m + 4);
        }),
      /root inode/,
    ],
    ['uuid', () => good, /uuid/],
  ];
  for (const [name, mk, re] of cases) {
    const path = mk();
    const e = await rejectsTyped(
      checkErofsHeader(path, name === 'uuid' ? { uuid: Buffer.alloc(16) } : {}),
      'CACHE_CORRUPT',
      re,
    );
    assert.ok(e instanceof CacheCorruptError && e.path === path, name);
  }
});

test('readErofsTree rejects cycles, shared xattrs, compression, unknown layouts, bad bounds, bad dirents, depth', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const good = join(dir, 'good.erofs');
  const root = newDir(false);
  const a = newDir(false);
  root.children.set('a', a);
  a.children.set('x', {
    kind: 'file',
    meta: newMeta({ xattrs: [{ index: 1, suffix: Buffer.from('k'), value: Buffer.from('v') }] }),
    size: 0,
  });
  a.children.set('y', { kind: 'symlink', meta: newMeta(), size: 3, target: Buffer.from('abc') });
  const layout = await build(root, good);
  await readErofsTree(good);
  const base = layout.metaBlkaddr * 4096;
  const at = (e: Entry) => base + layout.byEntry.get(e)!.offset;
  const aOff = at(a);
  const xOff = at(a.children.get('x')!);
  const yOff = at(a.children.get('y')!);
  // a's dirents are inline after its 64-byte inode: ".", "..", "x", "y" (all sorted).
  const dirent = (i: number) => aOff + 64 + i * 12;
  const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
    ['cycle', (b) => b.writeBigUInt64LE(1n, dirent(2)), /twice|cycle/],
    [
      'shared xattr',
      (b) => {
        b[xOff + 64 + 4] = 1;
      },
      /shared xattrs/,
    ],
    ['compression', (b) => b.writeUInt16LE(1 | (1 << 1), xOff), /compress/],
    ['unknown layout', (b) => b.writeUInt16LE(1 | (6 << 1), xOff), /unknown data layout/],
    [
      'symlink out of bounds',
      (b) => {
        b.writeUInt16LE(1, yOff);
        b.writeUInt32LE(99999, yOff + 16);
      },
      /out of bounds/,
    ],
    ['nid out of bounds', (b) => b.writeBigUInt64LE(1n << 40n, dirent(3)), /out of bounds|out of range/],
    ['bad nameoff', (b) => b.writeUInt16LE(7, dirent(0) + 8), /nameoff/],
    [
      'unsorted',
      (b) => {
        const n = dirent(0) + b.readUInt16LE(dirent(0) + 8);
        b.write('y', n + 1 + 2, 'latin1');
      },
      /sorted/,
    ],
    [
      'slash in name',
      (b) => {
        const n = dirent(0) + b.readUInt16LE(dirent(3) + 8);
        b.write('/', n, 'latin1');
      },
      /invalid name/,
    ],
    ['xattr beyond ibody', (b) => b.writeUInt16LE(200, xOff + 64 + 12 + 2), /beyond/],
  ];
  for (const [name, patch, re] of cases) {
    const p = corruptCopy(good, join(dir, `${name.replace(/ /g, '-')}.erofs`), patch, false);
    await rejectsTyped(readErofsTree(p), 'CACHE_CORRUPT', re);
  }
  await rejectsTyped(readErofsTree(good, { maxPathDepth: 1 }), 'CACHE_CORRUPT', /depth/);
  // A directory that is really a cycle through a child: a/x → a.
  const p = corruptCopy(
    good,
    join(dir, 'self.erofs'),
    (b) => b.writeBigUInt64LE(BigInt(layout.byEntry.get(a)!.nid), dirent(2)),
    false,
  );
  await rejectsTyped(readErofsTree(p), 'CACHE_CORRUPT', /twice|cycle/);
  assert.ok(isDir(root));
});

/**
 * Tar ingest semantics through the REAL kernel (acceptance D5–D16, D19–D22): tars built with the
 * test tar writer, converted by writeLayer, checked with fsck.erofs 1.9.4 and `mount -t erofs`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run, tempDir, erofsUtils } from '../helpers/env.js';
import { convertBuffer, fsckOk, withMount, rejectsTyped } from '../helpers/layer.js';
import * as T from '../helpers/tar-writer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const statf = (path: string, fmt: string) => run('stat', ['-c', fmt, path]).trim();
const getx = (path: string, name: string) =>
  run('getfattr', ['-h', '--only-values', '-n', name, path], { encoding: 'buffer' } as never) as unknown as Buffer;

function setup(t: { after: (fn: () => void) => void }) {
  const d = tempDir();
  t.after(d.cleanup);
  return d.dir;
}

test('D5/D10/D11/D13/D14/D16: sizes, modes, owners, mtimes, names, header formats and path normalization', async (t) => {
  const dir = setup(t);
  const sizes = [1, 4095, 4096, 4097, 65536, 4 * 1024 * 1024 + 123];
  const bodies = new Map(sizes.map((n) => [n, randomBytes(n)]));
  const name200 = 'n'.repeat(200);
  const deep = `${'d'.repeat(100)}/${'e'.repeat(100)}/${'f'.repeat(100)}/${'g'.repeat(160)}.txt`;
  const ff = Buffer.concat([Buffer.from('bin-'), Buffer.from([0xff]), Buffer.from('-name')]);
  const t2100 = Date.UTC(2100, 5, 1) / 1000;
  const tarBuf = T.tar(
    T.dir('./', { mode: 0o755, mtime: 1600000000 }),
    T.dir('sizes'),
    ...sizes.map((n) => T.file(`sizes/f${n}`, bodies.get(n)!)),
    T.file('modes/m4755', 'x', { mode: 0o4755 }),
    T.file('modes/m2755', 'x', { mode: 0o2755 }),
    T.dir('modes/d1777', { mode: 0o1777 }),
    T.file('modes/m000', 'x', { mode: 0 }),
    T.file('owners/u1000', 'x', { uid: 1000, gid: 1000 }),
    T.file('owners/u70000', 'x', { uid: 70000, gid: 70000 }),
    T.file('owners/u3000000', 'x', {
      pax: [
        ['uid', '3000000'],
        ['gid', '3000001'],
      ],
    }),
    T.file('owners/u65534', 'x', { uid: 65534, gid: 65534 }),
    T.file('owners/b256', 'base-256 uid and size', { uid: 3000000, base256: ['uid', 'size', 'gid'], gid: 7 }),
    T.file('times/t0', 'x', { mtime: 0 }),
    T.file('times/t2100', 'x', { mtime: t2100 }),
    T.file('times/frac', 'x', { pax: [['mtime', '1700000000.123456789']] }),
    T.file('times/neg', 'x', { pax: [['mtime', '-5.5']] }),
    T.file('times/neg256', 'x', { mtime: -100 }),
    T.file('names/héllo wörld.txt', 'utf8'),
    T.file(ff, 'ff'),
    T.file('names/x', 'long', { pax: [['path', `names/${name200}`]] }),
    T.file('names/y', 'deep', { pax: [['path', `names/${deep}`]] }),
    T.file('names/-leading', 'dash'),
    T.file('./a', 'a'),
    T.file('/b', 'b'),
    T.dir('c/'),
    T.file('d//e/./f', 'f'),
    T.file('././g', 'g'),
    T.file('..foo', 'dots'),
    T.file('fmt/v7', 'v7 body', { format: 'v7' }),
    T.file('fmt/gnu', 'gnu body', { format: 'gnu' }),
    T.file('fmt/signed-\xe9', 'signed checksum', { checksum: 'signed' }),
    T.entry({ name: 'fmt/areg', type: '\0', body: 'aregtype body' }),
    T.entry({ name: 'fmt/aregdir/', type: '\0', mode: 0o750 }),
    T.entry({ name: 'fmt/cont', type: '7', body: 'contiguous' }),
    T.entry({ name: 'x', type: '0', body: 'gnu long', longName: `fmt/${'L'.repeat(200)}/${'M'.repeat(100)}` }),
    T.entry({ name: 'fmt/longlink', type: '2', linkname: 'x', longLink: 'T'.repeat(400) }),
    T.entry({ name: 'split', type: '0', body: 'prefix', prefix: 'fmt/ustar-prefix' }),
  );
  const img = join(dir, 'a.erofs');
  // Small chunks: headers and bodies straddle chunk boundaries.
  const res = await convertBuffer(tarBuf, img, { chunk: 777 });
  assert.equal(res.xattrsDropped, 0);
  fsckOk(img);
  await withMount(img, (m) => {
    for (const n of sizes) {
      const f = join(m, 'sizes', `f${n}`);
      assert.equal(sha(readFileSync(f)), sha(bodies.get(n)!), `f${n}`);
      const dump = run(erofsUtils('dump.erofs'), [`--path=/sizes/f${n}`, img]);
      assert.match(dump, /Layout: 0 /, `f${n} is FLAT_PLAIN`);
    }
    assert.equal(statf(join(m, 'modes/m4755'), '%a'), '4755');
    assert.equal(statf(join(m, 'modes/m2755'), '%a'), '2755');
    assert.equal(statf(join(m, 'modes/d1777'), '%a %F'), '1777 directory');
    assert.equal(statf(join(m, 'modes/m000'), '%a'), '0');
    assert.equal(statf(join(m, 'owners/u1000'), '%u %g'), '1000 1000');
    assert.equal(statf(join(m, 'owners/u70000'), '%u %g'), '70000 70000');
    assert.equal(statf(join(m, 'owners/u3000000'), '%u %g'), '3000000 3000001');
    assert.equal(statf(join(m, 'owners/u65534'), '%u %g'), '65534 65534');
    assert.equal(statf(join(m, 'owners/b256'), '%u %g %s'), '3000000 7 21');
    assert.equal(statf(join(m, 'times/t0'), '%.9Y'), '0.000000000');
    assert.equal(statf(join(m, 'times/t2100'), '%Y'), String(t2100));
    assert.equal(statf(join(m, 'times/frac'), '%.9Y'), '1700000000.123456789');
    assert.equal(statf(join(m, 'times/neg'), '%.9Y'), '0.000000000');
    assert.equal(statf(join(m, 'times/neg256'), '%.9Y'), '0.000000000');
    assert.equal(readFileSync(join(m, 'names/héllo wörld.txt'), 'utf8'), 'utf8');
    assert.ok(readdirSync(m, { encoding: 'buffer' }).some((n) => n.equals(ff)));
    assert.equal(readFileSync(join(m, 'names', name200), 'utf8'), 'long');
    assert.equal(readFileSync(join(m, 'names', deep), 'utf8'), 'deep');
    assert.equal(readFileSync(join(m, 'names/-leading'), 'utf8'), 'dash');
    for (const [n, c] of [
      ['a', 'a'],
      ['b', 'b'],
      ['d/e/f', 'f'],
      ['g', 'g'],
      ['..foo', 'dots'],
    ])
      assert.equal(readFileSync(join(m, n!), 'utf8'), c);
    assert.ok(statSync(join(m, 'c')).isDirectory());
    assert.equal(readFileSync(join(m, 'fmt/v7'), 'utf8'), 'v7 body');
    assert.equal(readFileSync(join(m, 'fmt/gnu'), 'utf8'), 'gnu body');
    assert.equal(readFileSync(join(m, 'fmt/signed-\xe9'), 'utf8'), 'signed checksum');
    assert.equal(readFileSync(join(m, 'fmt/areg'), 'utf8'), 'aregtype body');
    assert.equal(statf(join(m, 'fmt/aregdir'), '%F %a'), 'directory 750');
    assert.equal(readFileSync(join(m, 'fmt/cont'), 'utf8'), 'contiguous');
    assert.equal(readFileSync(join(m, 'fmt', 'L'.repeat(200), 'M'.repeat(100)), 'utf8'), 'gnu long');
    assert.equal(readlinkSync(join(m, 'fmt/longlink')), 'T'.repeat(400));
    assert.equal(readFileSync(join(m, 'fmt/ustar-prefix/split'), 'utf8'), 'prefix');
    // The explicit root entry applies its metadata (D20).
    assert.equal(statf(m, '%a %Y'), '755 1600000000');
  });
});

test('D7: symlink targets of 1…4095 bytes read back exactly; dangling, self-loop and absolute kept verbatim', async (t) => {
  const dir = setup(t);
  const lens = [1, 160, 300, 4000, 4095];
  const tgt = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  const img = join(dir, 's.erofs');
  await convertBuffer(
    T.tar(
      ...lens.map((n) => T.entry({ name: `l${n}`, type: '2', linkname: 'x', pax: [['linkpath', tgt(n)]] })),
      T.symlink('dangling', 'does/not/exist'),
      T.symlink('self', 'self'),
      T.symlink('abs', '/etc/passwd'),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    for (const n of lens) assert.equal(readlinkSync(join(m, `l${n}`)), tgt(n), `l${n}`);
    assert.equal(readlinkSync(join(m, 'dangling')), 'does/not/exist');
    assert.equal(readlinkSync(join(m, 'self')), 'self');
    assert.equal(readlinkSync(join(m, 'abs')), '/etc/passwd');
    assert.equal(statf(join(m, 'l4095'), '%s'), '4095');
  });
  for (const [name, target] of [
    ['l4096', tgt(4096)],
    ['empty', ''],
  ] as const) {
    await rejectsTyped(
      convertBuffer(
        T.tar(T.entry({ name, type: '2', linkname: '', pax: target ? [['linkpath', target]] : [] })),
        join(dir, `${name}.erofs`),
      ),
      'LAYER_INVALID',
      /symlink target/,
      { dir, prefix: `${name}.erofs` },
    );
  }
});

test('D8: hardlinks share one inode; chains; a replaced target keeps the old content for its links', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'h.erofs');
  await convertBuffer(
    T.tar(
      T.file('links/orig', 'original content', { mode: 0o640, uid: 5 }),
      T.hardlink('links/h1', 'links/orig', { mode: 0o777, uid: 9 }),
      T.hardlink('links/sub/h2', './links/orig'),
      T.symlink('links/sym', 'orig'),
      T.hardlink('links/symlink-alias', 'links/sym'),
      T.file('chain/a', 'chain'),
      T.hardlink('chain/b', 'chain/a'),
      T.hardlink('chain/c', 'chain/b'),
      T.hardlink('chain/a', 'chain/a'),
      T.file('rep/f', 'old'),
      T.hardlink('rep/h', 'rep/f'),
      T.file('rep/f', 'new!'),
      T.file('fifo-target', '', { type: '6' }),
      T.hardlink('fifo-alias', 'fifo-target'),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    const o = lstatSync(join(m, 'links/orig'));
    assert.equal(o.nlink, 3);
    for (const a of ['links/h1', 'links/sub/h2']) {
      const s = lstatSync(join(m, a));
      assert.equal(s.ino, o.ino);
      assert.equal(s.mode & 0o7777, 0o640);
      assert.equal(s.uid, 5);
      assert.equal(readFileSync(join(m, a), 'utf8'), 'original content');
    }
    const s1 = lstatSync(join(m, 'links/sym'));
    const s2 = lstatSync(join(m, 'links/symlink-alias'));
    assert.ok(s2.isSymbolicLink());
    assert.equal(s1.ino, s2.ino);
    assert.equal(s1.nlink, 2);
    const c = ['a', 'b', 'c'].map((n) => lstatSync(join(m, 'chain', n)));
    assert.ok(c.every((s) => s.ino === c[0]!.ino && s.nlink === 3));
    assert.equal(readFileSync(join(m, 'rep/h'), 'utf8'), 'old');
    assert.equal(readFileSync(join(m, 'rep/f'), 'utf8'), 'new!');
    assert.equal(lstatSync(join(m, 'rep/h')).nlink, 1);
    assert.equal(lstatSync(join(m, 'rep/f')).nlink, 1);
    assert.equal(lstatSync(join(m, 'fifo-alias')).ino, lstatSync(join(m, 'fifo-target')).ino);
  });
  const bad: Array<[string, Buffer]> = [
    ['missing', T.tar(T.hardlink('x', 'nope'))],
    ['directory', T.tar(T.dir('d'), T.hardlink('x', 'd'))],
    ['whiteout', T.tar(T.file('.wh.w', ''), T.hardlink('x', 'w'))],
    ['lower-only', T.tar(T.hardlink('x', 'bin/busybox'))],
  ];
  for (const [name, buf] of bad) {
    await rejectsTyped(convertBuffer(buf, join(dir, `${name}.erofs`)), 'LAYER_INVALID', /hardlink target/, {
      dir,
      prefix: `${name}.erofs`,
    });
  }
});

test('D9: devices keep exact rdev (incl. 250:70000), fifos are fifos; major 5000 is LAYER_INVALID', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'dev.erofs');
  await convertBuffer(
    T.tar(
      T.entry({ name: 'null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 }),
      T.entry({ name: 'loop7', type: '4', devmajor: 7, devminor: 7, mode: 0o660 }),
      T.entry({ name: 'big', type: '3', devmajor: 250, devminor: 70000 }),
      T.entry({
        name: 'paxdev',
        type: '3',
        pax: [
          ['SCHILY.devmajor', '4095'],
          ['SCHILY.devminor', '1048575'],
        ],
      }),
      T.entry({ name: 'fifo', type: '6', mode: 0o600 }),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    assert.equal(statf(join(m, 'null'), '%F %t:%T %a'), 'character special file 1:3 666');
    assert.equal(statf(join(m, 'loop7'), '%F %t:%T %a'), 'block special file 7:7 660');
    assert.equal(statf(join(m, 'big'), '%t:%T'), `fa:${(70000).toString(16)}`);
    assert.equal(statf(join(m, 'paxdev'), '%t:%T'), 'fff:fffff');
    assert.equal(statf(join(m, 'fifo'), '%F'), 'fifo');
  });
  await rejectsTyped(
    convertBuffer(T.tar(T.entry({ name: 'd', type: '3', devmajor: 5000, devminor: 1 })), join(dir, 'bad.erofs')),
    'LAYER_INVALID',
    /device/,
  );
});

/** A valid POSIX ACL xattr value: user::rw- user:1000:r-- group::r-- mask::r-- other::r--. */
function aclValue(): Buffer {
  const ents: Array<[number, number, number]> = [
    [1, 6, 0xffffffff],
    [2, 4, 1000],
    [4, 4, 0xffffffff],
    [0x10, 4, 0xffffffff],
    [0x20, 4, 0xffffffff],
  ];
  const b = Buffer.alloc(4 + 8 * ents.length);
  b.writeUInt32LE(2, 0);
  ents.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + i * 8);
    b.writeUInt16LE(perm, 6 + i * 8);
    b.writeUInt32LE(id, 8 + i * 8);
  });
  return b;
}

test('D12/I9: xattrs byte-exact (binary, security.capability, ACL); reserved and unknown prefixes dropped with one warning', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'x.erofs');
  const big = randomBytes(1000);
  // cap_net_bind_service+ep, VFS_CAP_REVISION_2
  const cap = Buffer.from('0100000200040000000000000000000000000000', 'hex');
  const warnings: string[] = [];
  const res = await convertBuffer(
    T.tar(
      T.dir('xattr', {
        pax: [
          ['SCHILY.xattr.user.dirattr', 'on a dir'],
          ['SCHILY.xattr.trusted.overlay.opaque', 'y'],
        ],
      }),
      T.file('xattr/f', 'x', {
        pax: [
          ['SCHILY.xattr.user.mykey', 'myvalue'],
          ['SCHILY.xattr.user.binary', Buffer.from([0x00, 0xff, 0x10])],
          ['SCHILY.xattr.user.big', big],
          ['SCHILY.xattr.security.capability', cap],
          ['SCHILY.xattr.system.posix_acl_access', aclValue()],
          ['SCHILY.xattr.trusted.overlay.redirect', '/x'],
          ['SCHILY.xattr.foo.bar', 'dropped'],
          ['LIBARCHIVE.xattr.user.lib%20name', Buffer.from('bGliYXJjaGl2ZQ==')],
          ['SCHILY.xattr.user.nl', Buffer.from('a\nb=c\n')],
        ],
      }),
      T.hardlink('xattr/alias', 'xattr/f', { pax: [['SCHILY.xattr.user.ignored', 'on a link']] }),
    ),
    img,
    { onWarning: (code, msg) => warnings.push(`${code}: ${msg}`) },
  );
  assert.equal(res.xattrsDropped, 3); // trusted.overlay.opaque (I9), trusted.overlay.redirect, foo.bar
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^XATTR_DROPPED/);
  fsckOk(img);
  await withMount(img, (m) => {
    const f = join(m, 'xattr/f');
    assert.deepEqual(getx(f, 'user.mykey'), Buffer.from('myvalue'));
    assert.deepEqual(getx(f, 'user.binary'), Buffer.from([0x00, 0xff, 0x10]));
    assert.deepEqual(getx(f, 'user.big'), big);
    assert.deepEqual(getx(f, 'security.capability'), cap);
    assert.deepEqual(getx(f, 'user.lib name'), Buffer.from('libarchive'));
    assert.deepEqual(getx(f, 'user.nl'), Buffer.from('a\nb=c\n'));
    assert.match(run('getcap', [f]), /cap_net_bind_service[=+]ep/);
    assert.match(run('getfacl', ['-n', f]), /user:1000:r--/);
    assert.deepEqual(getx(join(m, 'xattr'), 'user.dirattr'), Buffer.from('on a dir'));
    const names = run('getfattr', ['-h', '-m', '-', '-d', f]);
    assert.doesNotMatch(names, /redirect|foo\.bar|ignored/);
    assert.doesNotMatch(run('getfattr', ['-h', '-m', '-', '-d', join(m, 'xattr')]), /opaque/);
  });
});

test('D15: sparse files of every kind expand with holes; a 100 MiB zero file stays a hole', async (t) => {
  const dir = setup(t);
  const seg = (o: number, n: number): [number, Buffer] => [o, randomBytes(n)];
  const mk = (segs: Array<[number, Buffer]>, size: number) => {
    const b = Buffer.alloc(size);
    for (const [o, d] of segs) d.copy(b, o);
    return b;
  };
  const manySegs = Array.from({ length: 30 }, (_, i) => seg(i * 1_000_000 + 17, 5000 + i)); // > 4 + 21: two extension blocks
  const cases: Array<[string, Buffer, Buffer]> = [];
  const real = 40_000_000;
  cases.push(['oldgnu', T.oldGnuSparse('oldgnu', real, manySegs), mk(manySegs, real)]);
  for (const v of ['0.0', '0.1', '1.0'] as const) {
    const segs = [seg(0, 100), seg(8192, 4096), seg(20_000_000, 3), [real, Buffer.alloc(0)] as [number, Buffer]];
    cases.push([`pax${v}`, T.paxSparse(v, `pax${v}`, real, segs), mk(segs, real)]);
  }
  const zeros = Buffer.alloc(100 * 1024 * 1024);
  const img = join(dir, 'sp.erofs');
  await convertBuffer(T.tar(...cases.map(([, e]) => e), T.file('zeros', zeros)), img);
  fsckOk(img);
  // Allocated bytes of the image: data segments only (about 160 KiB), far from the 260 MB logical.
  const allocated = statSync(img).blocks * 512;
  assert.ok(allocated < 1024 * 1024, `image allocates ${allocated} bytes`);
  await withMount(img, (m) => {
    for (const [name, , want] of cases) {
      const got = readFileSync(join(m, name));
      assert.equal(got.length, want.length, name);
      assert.equal(sha(got), sha(want), name);
    }
    assert.equal(statSync(join(m, 'zeros')).size, zeros.length);
    assert.equal(sha(readFileSync(join(m, 'zeros'))), sha(zeros));
    assert.deepEqual(
      readdirSync(m).filter((n) => n.startsWith('GNUSparseFile')),
      [],
    );
  });
  // Hostile maps: overlapping, out of order, beyond the real size, data/map size mismatch.
  const badMaps: Array<[string, Buffer]> = [
    [
      'overlap',
      T.paxSparse('0.1', 'a', 100, [
        [0, Buffer.alloc(10, 1)],
        [5, Buffer.alloc(10, 1)],
      ]),
    ],
    [
      'order',
      T.paxSparse('0.1', 'a', 100, [
        [50, Buffer.alloc(10, 1)],
        [0, Buffer.alloc(10, 1)],
      ]),
    ],
    ['beyond', T.paxSparse('1.0', 'a', 100, [[95, Buffer.alloc(10, 1)]])],
  ];
  for (const [name, e] of badMaps)
    await rejectsTyped(convertBuffer(T.tar(e), join(dir, `${name}.erofs`)), 'LAYER_INVALID', /sparse/);
});

test('D19/D20: duplicates (later wins), type replacement, implicit parents, explicit root', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'dup.erofs');
  await convertBuffer(
    T.tar(
      T.file('foo', 'first'),
      T.file('foo', 'second'),
      T.dir('dirthenfile'),
      T.file('dirthenfile/child', 'c'),
      T.file('dirthenfile', 'now a file'),
      T.file('filethendir', 'f'),
      T.dir('filethendir', { mode: 0o711 }),
      T.file('late/child', 'kept'),
      T.dir('late', { mode: 0o750, uid: 3, mtime: 1234 }),
      T.file('x/y/z', 'deep'),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    assert.equal(readFileSync(join(m, 'foo'), 'utf8'), 'second');
    assert.equal(readFileSync(join(m, 'dirthenfile'), 'utf8'), 'now a file');
    assert.equal(statf(join(m, 'filethendir'), '%F %a'), 'directory 711');
    assert.equal(statf(join(m, 'late'), '%a %u %Y'), '750 3 1234');
    assert.equal(readFileSync(join(m, 'late/child'), 'utf8'), 'kept');
    assert.throws(() => getx(join(m, 'late'), 'trusted.msb.implicit'));
    for (const d of ['x', 'x/y', '.']) {
      assert.equal(statf(join(m, d), '%a %u %g %.9Y'), '755 0 0 0.000000000', d);
      assert.deepEqual(getx(join(m, d), 'trusted.msb.implicit'), Buffer.from('y'), d);
    }
  });
  const img2 = join(dir, 'root.erofs');
  await convertBuffer(T.tar(T.dir('./', { mode: 0o700, uid: 5 }), T.file('a', 'a')), img2);
  await withMount(img2, (m) => {
    assert.equal(statf(m, '%a %u'), '700 5');
    assert.throws(() => getx(m, 'trusted.msb.implicit'));
  });
  await rejectsTyped(convertBuffer(T.tar(T.file('./', 'x')), join(dir, 'badroot.erofs')), 'LAYER_INVALID', /root/);
});

test('D21/D22: whiteouts are char 0/0 with header bits; opaque markers; within one layer nothing cancels', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'wh.erofs');
  await convertBuffer(
    T.tar(
      T.file('data/.wh.deleteme.txt', '', { mode: 0o640, uid: 7, mtime: 99 }),
      T.file('opaque/.wh..wh..opq', ''),
      T.dir('opaque', { mode: 0o700 }),
      T.file('opaque/new', 'n'),
      T.dir('op2'),
      T.file('op2/.wh..wh..opq', ''),
      T.file('.wh..wh.plnk', ''),
      T.file('.wh....', ''),
      T.file('wd/.wh.foo', ''),
      T.file('wd/foo/bar', 'bar'),
      T.file('dw/foo/bar', 'bar'),
      T.file('dw/.wh.foo', ''),
      T.file('wf/.wh.f', ''),
      T.file('wf/f', 'file wins'),
      T.file('fw/f', 'file stays'),
      T.file('fw/.wh.f', ''),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    assert.equal(statf(join(m, 'data/deleteme.txt'), '%F %t:%T %a %u %Y'), 'character special file 0:0 640 7 99');
    assert.deepEqual(getx(join(m, 'opaque'), 'trusted.overlay.opaque'), Buffer.from('y'));
    assert.equal(statf(join(m, 'opaque'), '%a'), '700');
    assert.deepEqual(getx(join(m, 'op2'), 'trusted.overlay.opaque'), Buffer.from('y'));
    assert.ok(!readdirSync(m).some((n) => n.startsWith('.wh.')));
    assert.equal(statf(join(m, '...'), '%t:%T'), '0:0');
    for (const d of ['wd/foo', 'dw/foo']) {
      assert.deepEqual(getx(join(m, d), 'trusted.overlay.opaque'), Buffer.from('y'), d);
      assert.equal(readFileSync(join(m, d, 'bar'), 'utf8'), 'bar');
    }
    assert.equal(readFileSync(join(m, 'wf/f'), 'utf8'), 'file wins');
    assert.equal(readFileSync(join(m, 'fw/f'), 'utf8'), 'file stays');
    assert.deepEqual(readdirSync(join(m, 'wf')), ['f']);
  });
  const img2 = join(dir, 'rootopq.erofs');
  await convertBuffer(T.tar(T.file('.wh..wh..opq', '')), img2);
  await withMount(img2, (m) => assert.deepEqual(getx(m, 'trusted.overlay.opaque'), Buffer.from('y')));
  for (const name of ['.wh.', '.wh..', '.wh...']) {
    await rejectsTyped(
      convertBuffer(T.tar(T.file(`d/${name}`, '')), join(dir, 'bad.erofs')),
      'LAYER_INVALID',
      /whiteout/,
    );
  }
});

test('D6: directories of 600 and 5000 entries list completely; "-x" sorts before "."', async (t) => {
  const dir = setup(t);
  const img = join(dir, 'big.erofs');
  const names = (n: number) =>
    Array.from({ length: n }, (_, i) => `entry-${String(i).padStart(5, '0')}-${'p'.repeat(i % 40)}`);
  await convertBuffer(
    T.tar(
      ...names(600).map((n) => T.file(`d600/${n}`, '')),
      ...names(5000).map((n) => T.file(`d5000/${n}`, n)),
      T.file('-x', 'dash'),
      T.file('a', 'a'),
    ),
    img,
  );
  fsckOk(img);
  await withMount(img, (m) => {
    for (const [d, n] of [
      ['d600', 600],
      ['d5000', 5000],
    ] as const) {
      const want = names(n);
      assert.deepEqual(readdirSync(join(m, d)).sort(), [...want].sort());
      for (const i of [0, Math.floor(n / 2), n - 1]) assert.ok(lstatSync(join(m, d, want[i]!)).isFile());
    }
    assert.equal(readFileSync(join(m, 'd5000', names(5000)[4999]!), 'utf8'), names(5000)[4999]);
    assert.equal(readFileSync(join(m, '-x'), 'utf8'), 'dash');
    // readdir order on EROFS is the on-disk dirent order: "-x" comes before "." and "..".
    const order = run('ls', ['-a', '-f', m]).split('\n').filter(Boolean);
    assert.ok(order.indexOf('-x') < order.indexOf('.'), order.join(' '));
  });
});

/**
 * Property: for a random tree materialized on disk (files with zero runs and block-boundary sizes,
 * dirs, symlinks, hardlinks, fifos, devices, modes incl. suid/sgid/sticky, big uids, ns mtimes,
 * user xattrs with binary values), GNU tar (posix) → our converter → kernel mount gives exactly
 * the source tree's canonical listing. GNU tar is the independent writer; the kernel the reader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { convertLayer } from '../../src/erofs/convert.js';
import { run, tempDir, treeManifest } from '../helpers/env.js';
import { fsckOk, withMount } from '../helpers/layer.js';

const NAMES = ['a', 'b', 'dir', 'x y', 'ü', '-x', '.hidden', 'n'.repeat(120), 'z.txt', '..foo'];

type Kind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'chr';
interface Spec {
  path: number[];
  kind: Kind;
  mode: number;
  uid: number;
  gid: number;
  sec: number;
  nsec: number;
  content: { size: number; zeroBlocks: number[]; seed: number };
  target: string;
  xattrs: Array<[string, Uint8Array]>;
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  path: fc.array(fc.nat(NAMES.length - 1), { minLength: 1, maxLength: 3 }),
  kind: fc.constantFrom<Kind>('file', 'file', 'file', 'dir', 'symlink', 'hardlink', 'fifo', 'chr'),
  mode: fc.oneof(fc.constantFrom(0o644, 0o755, 0o4755, 0o2750, 0o1777, 0o600, 0), fc.nat(0o7777)),
  uid: fc.oneof(fc.constant(0), fc.nat(70000), fc.constant(3000000)),
  gid: fc.oneof(fc.constant(0), fc.nat(70000)),
  sec: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4102444800 })),
  nsec: fc.oneof(fc.constant(0), fc.nat(999_999_999)),
  content: fc.record({
    size: fc.oneof(fc.constantFrom(0, 1, 4095, 4096, 4097, 8192, 65536), fc.nat(40000)),
    zeroBlocks: fc.array(fc.nat(16), { maxLength: 4 }),
    seed: fc.nat(),
  }),
  target: fc.oneof(
    fc.constantFrom('/', '../x', 'a/b', 't'.repeat(300)),
    fc.string({ minLength: 1, maxLength: 50 }).filter((s) => !s.includes('\0')),
  ),
  xattrs: fc.array(
    fc.tuple(fc.constantFrom('user.a', 'user.bin', 'user.long.name'), fc.uint8Array({ minLength: 0, maxLength: 300 })),
    { maxLength: 3 },
  ),
});

function content(c: Spec['content']): Buffer {
  const b = Buffer.alloc(c.size);
  let x = c.seed | 1;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  for (const z of c.zeroBlocks) b.fill(0, z * 4096, Math.min(b.length, (z + 1) * 4096));
  return b;
}

/** Materializes specs under `root` (as root); returns false entries that collide are skipped. */
function materialize(root: string, specs: Spec[]): void {
  const files: string[] = [];
  const dirs: Array<[string, Spec]> = [];
  for (const s of specs) {
    const rel = s.path.map((i) => NAMES[i]!).join('/');
    const p = join(root, rel);
    let ok = true;
    let cur = root;
    for (const part of s.path.slice(0, -1).map((i) => NAMES[i]!)) {
      cur = join(cur, part);
      if (existsSync(cur) || isLink(cur)) {
        if (!lstatSync(cur).isDirectory()) {
          ok = false;
          break;
        }
      } else mkdirSync(cur);
    }
    if (!ok || existsSync(p) || isLink(p)) continue;
    switch (s.kind) {
      case 'file': {
        const fd = openSync(p, 'w');
        const data = content(s.content);
        if (data.length) writeSync(fd, data);
        closeSync(fd);
        files.push(p);
        break;
      }
      case 'dir':
        mkdirSync(p);
        dirs.push([p, s]);
        continue;
      case 'symlink':
        symlinkSync(s.target, p);
        break;
      case 'hardlink':
        if (files.length === 0) continue;
        linkSync(files[s.content.seed % files.length]!, p);
        continue; // shares the target's metadata
      case 'fifo':
        run('mkfifo', [p]);
        break;
      case 'chr':
        run('mknod', [p, 'c', String(s.uid % 4096), String(s.gid % 1048576)]);
        break;
    }
    applyMeta(p, s);
  }
  // Directory metadata last, deepest first, so later creations do not bump their mtimes.
  for (const [p, s] of dirs.sort((a, b) => b[0].length - a[0].length)) applyMeta(p, s);
  run('touch', ['-h', '-d', '@1700000000.5', root]);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function applyMeta(p: string, s: Spec): void {
  const link = s.kind === 'symlink';
  run('chown', ['-h', `${s.uid}:${s.gid}`, p]);
  if (!link) {
    run('chmod', [(s.mode & 0o7777).toString(8).padStart(4, '0'), p]);
    if (s.kind === 'file' || s.kind === 'dir')
      for (const [n, v] of s.xattrs) run('setfattr', ['-n', n, '-v', `0x${Buffer.from(v).toString('hex')}`, p]);
  }
  run('touch', ['-h', '-d', `@${s.sec}.${String(s.nsec).padStart(9, '0')}`, p]);
}

test('property: random trees → GNU tar → converter → kernel mount equal the source tree', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(specArb, { minLength: 1, maxLength: 25 }), async (specs) => {
      const i = n++;
      const src = join(dir, `src${i}`);
      mkdirSync(src);
      try {
        materialize(src, specs);
        const tarPath = join(dir, `t${i}.tar`);
        run('tar', [
          '--format=posix',
          '--xattrs',
          '--xattrs-include=*',
          '--numeric-owner',
          '--pax-option=delete=atime,delete=ctime',
          '-C',
          src,
          '-cf',
          tarPath,
          '.',
        ]);
        const img = join(dir, `i${i}.erofs`);
        await convertLayer(tarPath, img);
        fsckOk(img);
        const want = treeManifest(src);
        const got = await withMount(img, (m) => treeManifest(m));
        assert.equal(got, want);
        rmSync(img);
        rmSync(tarPath);
      } finally {
        rmSync(src, { recursive: true, force: true });
      }
    }),
    { numRuns: Number(process.env.MSB_PROPERTY_RUNS ?? 30), endOnFailure: true },
  );
});

/**
 * docs/erofs.md §7.1 merge on hand-built layer trees (acceptance E2–E5 at the tree level; the kernel
 * level is in stitch-image.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDir, newDir, newMeta, type DirNode, type Entry, type Inode, type Meta } from '../../src/erofs/tree.js';
import { mergeLayers } from '../../src/stitch/merge.js';

const X = (index: number, suffix: string, value: string) => ({
  index,
  suffix: Buffer.from(suffix, 'latin1'),
  value: Buffer.from(value, 'latin1'),
});
const IMPLICIT = X(4, 'msb.implicit', 'y');
const OPAQUE = X(4, 'overlay.opaque', 'y');

function meta(p: Partial<Meta> = {}): Meta {
  return newMeta(p);
}
function dir(
  children: Record<string, Entry> = {},
  opts: { implicit?: boolean; opaque?: boolean; meta?: Partial<Meta> } = {},
): DirNode {
  const xattrs = [...(opts.meta?.xattrs ?? [])];
  // Layers carry their markers both as flags and, as the reader may leave them, as xattrs.
  if (opts.implicit) xattrs.push(IMPLICIT);
  if (opts.opaque) xattrs.push(OPAQUE);
  const d = newDir(opts.implicit ?? false, meta({ ...opts.meta, xattrs }));
  d.opaque = opts.opaque ?? false;
  for (const [k, v] of Object.entries(children)) d.children.set(k, v);
  return d;
}
function file(startBlock: number, size = 10, m: Partial<Meta> = {}): Inode {
  return { kind: 'file', meta: meta({ mode: 0o644, ...m }), size, data: { device: 0, startBlock } };
}
function wh(): Inode {
  return { kind: 'chr', meta: meta({ mode: 0 }), size: 0, rdevMajor: 0, rdevMinor: 0 };
}
function sym(t: string): Inode {
  return { kind: 'symlink', meta: meta({ mode: 0o777 }), size: t.length, target: Buffer.from(t) };
}

function get(root: DirNode, path: string): Entry | undefined {
  let e: Entry = root;
  for (const c of path.split('/').filter(Boolean)) {
    if (!isDir(e)) return undefined;
    const n = e.children.get(c);
    if (!n) return undefined;
    e = n;
  }
  return e;
}
function names(root: DirNode, path: string): string[] {
  const d = get(root, path);
  assert.ok(d && isDir(d), `${path} is a directory`);
  return [...d.children.keys()].sort();
}
/** Walks the merged tree: alias counts per Inode object, and a check that nothing forbidden remains. */
function audit(root: DirNode): Map<Inode, number> {
  const refs = new Map<Inode, number>();
  const walk = (d: DirNode, path: string) => {
    assert.equal(d.implicit, false, `${path} implicit`);
    assert.equal(d.opaque, false, `${path} opaque`);
    for (const x of d.meta.xattrs)
      assert.ok(!(x.index === 4 && /^(overlay|msb)\./.test(x.suffix.toString('latin1'))), `${path} marker xattr`);
    for (const [n, c] of d.children) {
      if (isDir(c)) walk(c, `${path}/${n}`);
      else {
        assert.ok(!(c.kind === 'chr' && !c.rdevMajor && !c.rdevMinor), `${path}/${n} is a whiteout`);
        refs.set(c, (refs.get(c) ?? 0) + 1);
      }
    }
  };
  walk(root, '');
  return refs;
}

test('merged root defaults to 0755 0:0 mtime 0; an explicit top root wins (E4)', () => {
  const m = mergeLayers([dir({ a: file(1) }, { implicit: true }), dir({}, { implicit: true })]);
  assert.deepEqual(m.meta, newMeta());
  const top = mergeLayers([
    dir({ a: file(1) }, { implicit: true }),
    dir({}, { meta: { mode: 0o700, uid: 5, mtime: 99n } }),
  ]);
  assert.equal(top.meta.mode, 0o700);
  assert.equal(top.meta.uid, 5);
  assert.equal(top.meta.mtime, 99n);
  assert.deepEqual(names(top, '/'), ['a']);
  audit(top);
});

test('a root-level opaque marker in an upper layer hides every lower file (E4)', () => {
  const m = mergeLayers([
    dir({ a: file(1), d: dir({ b: file(2) }) }),
    dir({ c: file(3) }, { implicit: true, opaque: true }),
  ]);
  assert.deepEqual(names(m, '/'), ['c']);
  assert.deepEqual(m.meta, newMeta(), 'an implicit opaque root keeps the root metadata');
  audit(m);
});

test('implicit upper dirs never change lower metadata; explicit ones replace it, markers stripped (E3)', () => {
  const T = 1700000000n;
  const lower = dir({
    etc: dir(
      { passwd: file(1) },
      { meta: { mode: 0o750, uid: 3, gid: 4, mtime: T, mtimeNsec: 7, xattrs: [X(1, 'a', '1')] } },
    ),
  });
  const implicitUpper = dir({ etc: dir({ foo: file(2) }, { implicit: true }) }, { implicit: true });
  const m = mergeLayers([lower, implicitUpper]);
  const etc = get(m, 'etc') as DirNode;
  assert.equal(etc.meta.mode, 0o750);
  assert.equal(etc.meta.mtime, T);
  assert.equal(etc.meta.mtimeNsec, 7);
  assert.deepEqual(
    etc.meta.xattrs.map((x) => x.suffix.toString()),
    ['a'],
  );
  assert.deepEqual(names(m, 'etc'), ['foo', 'passwd']);

  const explicitUpper = dir(
    { etc: dir({ foo: file(2) }, { opaque: false, meta: { mode: 0o711, mtime: 5n, xattrs: [X(1, 'b', '2')] } }) },
    { implicit: true },
  );
  const m2 = mergeLayers([lower, explicitUpper]);
  const etc2 = get(m2, 'etc') as DirNode;
  assert.equal(etc2.meta.mode, 0o711);
  assert.equal(etc2.meta.uid, 0);
  assert.equal(etc2.meta.mtime, 5n);
  assert.deepEqual(
    etc2.meta.xattrs.map((x) => x.suffix.toString()),
    ['b'],
  );
  audit(m2);
});

test('opaque dirs, whiteouts, type changes and resurrection (E2)', () => {
  const L0 = dir({
    data: dir({ 'keep.txt': file(1), 'deleteme.txt': file(2), 'overwrite.txt': file(3) }),
    opaque: dir({ 'old1.txt': file(4), sub: dir({ 'old2.txt': file(5) }) }),
    gone: dir({ a: file(6), inner: dir({ b: file(7) }) }),
    typechange: dir({ d: dir({ x: file(8) }), f: file(9) }),
  });
  const L1 = dir(
    {
      data: dir({ '.': wh(), 'deleteme.txt': wh(), 'overwrite.txt': file(1) }),
      opaque: dir({ 'new.txt': file(2) }, { opaque: true }),
    },
    { implicit: true },
  );
  const L2 = dir(
    {
      gone: wh(),
      'never-existed': wh(),
      data: dir({ 'deleteme.txt': file(1), 'overwrite.txt': file(2) }),
      typechange: dir({ d: file(3), f: dir({ y: file(4), ghost: wh() }) }),
    },
    { implicit: true },
  );
  const m = mergeLayers([L0, L1, L2]);
  assert.deepEqual(names(m, '/'), ['data', 'opaque', 'typechange']);
  assert.deepEqual(names(m, 'data'), ['deleteme.txt', 'keep.txt', 'overwrite.txt']);
  assert.deepEqual((get(m, 'data/deleteme.txt') as Inode).data, { device: 3, startBlock: 1 });
  assert.deepEqual((get(m, 'data/overwrite.txt') as Inode).data, { device: 3, startBlock: 2 });
  assert.deepEqual((get(m, 'data/keep.txt') as Inode).data, { device: 1, startBlock: 1 });
  assert.deepEqual(names(m, 'opaque'), ['new.txt']);
  assert.deepEqual((get(m, 'opaque/new.txt') as Inode).data, { device: 2, startBlock: 2 });
  assert.equal(get(m, 'typechange/d')!.kind, 'file');
  assert.deepEqual(names(m, 'typechange/f'), ['y']);
  // A directory replacing a file gets its metadata from the (explicit) layer dir, not from the file.
  assert.equal((get(m, 'typechange/f') as DirNode).meta.mode, 0o755);
  audit(m);
});

test('a directory replacing a file, implicit in its layer, gets the implicit defaults', () => {
  const m = mergeLayers([
    dir({ p: file(1, 10, { mode: 0o600, uid: 9, mtime: 77n }) }),
    dir({ p: dir({ q: file(2), w: wh() }, { implicit: true }) }, { implicit: true }),
  ]);
  const p = get(m, 'p') as DirNode;
  assert.equal(p.kind, 'dir');
  assert.deepEqual(p.meta, newMeta());
  assert.deepEqual(names(m, 'p'), ['q']);
  audit(m);
});

test('a whited-out name may come back as another type; every char 0/0 is a whiteout', () => {
  const genuineNull: Inode = { kind: 'chr', meta: meta({ mode: 0o666 }), size: 0, rdevMajor: 0, rdevMinor: 0 };
  const m = mergeLayers([
    dir({
      a: dir({ x: file(1) }),
      dev: dir({ zero: genuineNull, null: { kind: 'chr', meta: meta(), size: 0, rdevMajor: 1, rdevMinor: 3 } }),
    }),
    dir({ a: wh() }),
    dir({ a: sym('/target') }),
  ]);
  assert.equal(get(m, 'a')!.kind, 'symlink');
  assert.deepEqual((get(m, 'a') as Inode).target, Buffer.from('/target'));
  assert.deepEqual(names(m, 'dev'), ['null'], 'a genuine 0/0 device acts as a whiteout and is never inserted');
  const big = mergeLayers([dir({ big: { kind: 'chr', meta: meta(), size: 0, rdevMajor: 250, rdevMinor: 70000 } })]);
  assert.equal((get(big, 'big') as Inode).rdevMinor, 70000);
  audit(m);
});

test('hardlinks: one merged inode per (layer, identity); whiteout or replacement lowers nlink (E5)', () => {
  const orig = file(5, 17, { xattrs: [X(6, 'capability', '\x01\x00')] });
  const L0 = dir({ links: dir({ 'orig.txt': orig, hard1: orig, sub: dir({ hard2: orig }) }) });
  const m0 = mergeLayers([L0]);
  const refs0 = audit(m0);
  const merged = get(m0, 'links/orig.txt') as Inode;
  assert.equal(refs0.get(merged), 3);
  assert.strictEqual(get(m0, 'links/hard1'), merged);
  assert.strictEqual(get(m0, 'links/sub/hard2'), merged);
  assert.notStrictEqual(merged, orig, 'merged inodes are new objects');
  assert.deepEqual(merged.data, { device: 1, startBlock: 5 });
  assert.deepEqual(merged.meta.xattrs, orig.meta.xattrs);

  const m1 = mergeLayers([L0, dir({ links: dir({ hard1: wh() }, { implicit: true }) }, { implicit: true })]);
  assert.equal(audit(m1).get(get(m1, 'links/orig.txt') as Inode), 2);
  const m2 = mergeLayers([
    L0,
    dir({ links: dir({ sub: dir({ hard2: file(1) }) }, { implicit: true }) }, { implicit: true }),
  ]);
  const refs2 = audit(m2);
  assert.equal(refs2.get(get(m2, 'links/orig.txt') as Inode), 2);
  assert.equal(refs2.get(get(m2, 'links/sub/hard2') as Inode), 1);
});

test('the same layer tree at two positions gives two identities with their own devices (edge-dup)', () => {
  const f = file(3);
  const L = dir({ a: f, b: f });
  const m = mergeLayers([L, L]);
  const a = get(m, 'a') as Inode;
  assert.deepEqual(a.data, { device: 2, startBlock: 3 });
  assert.strictEqual(get(m, 'b'), a);
  assert.equal(audit(m).get(a), 2);
});

test('empty files carry no data; non-file inodes keep rdev and targets; inputs are not modified', () => {
  const L0 = dir(
    { e: { kind: 'file', meta: meta(), size: 0 }, f: { kind: 'fifo', meta: meta({ mode: 0o600 }), size: 0 } },
    { implicit: true },
  );
  const L1 = dir({ e: wh() }, { opaque: false, meta: { mode: 0o700 } });
  const snapshot = JSON.stringify([L0, L1], (_k, v) =>
    v instanceof Map ? [...v] : typeof v === 'bigint' ? String(v) : v,
  );
  const m = mergeLayers([L0]);
  assert.equal((get(m, 'e') as Inode).data, undefined);
  assert.equal(get(m, 'f')!.kind, 'fifo');
  mergeLayers([L0, L1]);
  assert.equal(
    JSON.stringify([L0, L1], (_k, v) => (v instanceof Map ? [...v] : typeof v === 'bigint' ? String(v) : v)),
    snapshot,
  );
  assert.equal(L0.meta.xattrs.length, 1, 'the layer keeps its marker');
});

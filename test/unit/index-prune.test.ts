/**
 * remove/prune exactly as docs/storage.md §7–§8 with real files: reports that match the files that
 * disappeared byte for byte (B4), empty/second prunes (B5), dry run = real run (B6), restricted
 * prunes (B7), allocated-block measures (B8), temp grace and leases (B9), orphans (B10), per-item
 * errors (B11), lock inodes (B12), list with no filesystem calls (B16), 10,000 refs (H12).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, {
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { Image, LocalBackend, type ImagePruneReport } from '../../src/index.js';
import { createLease } from '../../src/store/lease.js';
import { withLock } from '../../src/store/locks.js';
import { allocOf, diffIdOf, publishFakeImage, synthesizeIndex, fileAlloc } from '../helpers/index-fixtures.js';
import { cli } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';

async function backend(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  const b = await LocalBackend.builder().home(dir).build();
  t.after(async () => {
    await b.close();
    cleanup();
  });
  const store = await b._open('write');
  return { dir, b, store, paths: store.paths, db: store.index.db };
}

function dbDump(db: { prepare(s: string): { all(): unknown[] } }): string {
  return JSON.stringify(
    ['image_ref', 'manifest', 'config', 'layer', 'manifest_layer', 'pin', 'lease', 'lease_item'].map((tname) =>
      db.prepare(`SELECT * FROM ${tname} ORDER BY 1, 2`).all(),
    ),
  );
}

function comparable(r: ImagePruneReport) {
  const { dryRun: _d, errors: _e, ...rest } = r;
  return rest;
}

/** B4's scene: A (a1, a2; sandbox via a1), B (snapshot), C (two tags, unpinned), D (refless after a retag); shared layers. */
async function scene(b: LocalBackend, db: { prepare(s: string): { run(...a: unknown[]): unknown } }) {
  const A = await publishFakeImage(b, { refs: ['a1', 'a2'], layers: ['base', 'a-only'], layerBlocks: [2, 1] });
  db.prepare("INSERT INTO pin VALUES ('sandbox', 'web', 'web', ?, 'docker.io/library/a1:latest', 1)").run(
    A.manifestDigest,
  );
  const B = await publishFakeImage(b, { refs: ['b'], layers: ['base', 'b-only'], layerBlocks: [2, 3] });
  db.prepare("INSERT INTO pin VALUES ('snapshot', ?, 'nightly', ?, NULL, 1)").run(
    'sha256:' + '9'.repeat(64),
    B.manifestDigest,
  );
  const C = await publishFakeImage(b, {
    refs: ['c:1', 'c:2'],
    layers: ['base', 'c-only', 'cd-shared'],
    layerBlocks: [2, 4, 1],
  });
  const D = await publishFakeImage(b, { refs: ['d'], layers: ['cd-shared', 'd-only'], layerBlocks: [1, 5] });
  await publishFakeImage(b, { refs: ['d'], layers: ['a-only'], salt: 'retag' }); // d moves; D keeps no ref
  const E = await Image.getLocal(b, 'd');
  return { A, B, C, D, E };
}

test('B4/B6: prune keeps pinned images, removes the rest, and the report matches the files that disappeared byte for byte; dry run = real run', async (t) => {
  const { dir, b, db, paths } = await backend(t);
  const { A, B, C, D, E } = await scene(b, db);
  const before = fileAlloc(dir);
  const dbBefore = dbDump(db);
  const dry = await Image.pruneLocal(b, { dryRun: true });
  assert.deepEqual(fileAlloc(dir), before, 'a dry run changes no file');
  assert.equal(dbDump(db), dbBefore, 'a dry run changes no row');
  const real = await Image.pruneLocal(b);
  const after = fileAlloc(dir);
  let gone = 0;
  for (const [p, bytes] of before) if (!after.has(p)) gone += bytes;
  assert.equal(real.bytesReclaimed, gone);
  assert.deepEqual(comparable(dry), comparable(real));
  assert.equal(dry.dryRun, true);
  assert.equal(real.dryRun, false);
  assert.deepEqual(real.errors, []);
  // C's two tags and the moved d (E is unpinned too) go; A's and B's stay.
  assert.deepEqual([...real.removed.references].sort(), ['c:1', 'c:2', 'd:latest']);
  assert.equal(real.imageRefsRemoved, 3);
  assert.deepEqual([...real.removed.manifests].sort(), [C.manifestDigest, D.manifestDigest, E.manifestDigest].sort());
  assert.equal(real.manifestsRemoved, 3);
  assert.equal(real.fsmetaRemoved, 3);
  assert.equal(real.vmdkRemoved, 3);
  // E used a-only, which A still uses; C and D used c-only, cd-shared, d-only; base stays (A, B).
  assert.deepEqual(real.removed.layers, [diffIdOf('c-only'), diffIdOf('cd-shared'), diffIdOf('d-only')].sort());
  assert.equal(real.layersRemoved, 3);
  for (const d of [diffIdOf('base'), diffIdOf('a-only'), diffIdOf('b-only')]) assert.ok(existsSync(paths.layer(d)));
  for (const m of [A, B]) assert.ok(existsSync(paths.fsmeta(m.manifestDigest)));
  assert.deepEqual((await Image.listLocal(b)).map((h) => h.reference).sort(), ['a1:latest', 'a2:latest', 'b:latest']);
});

test('B4 (acceptance counts): unpinned C with two tags and refless D go; pinned A and B stay', async (t) => {
  const { b, db } = await backend(t);
  const A = await publishFakeImage(b, { refs: ['a1', 'a2'], layers: ['s', 'a'] });
  db.prepare("INSERT INTO pin VALUES ('sandbox', 'web', 'web', ?, NULL, 1)").run(A.manifestDigest);
  const B = await publishFakeImage(b, { refs: ['b'], layers: ['s', 'b'] });
  db.prepare("INSERT INTO pin VALUES ('snapshot', ?, NULL, ?, NULL, 1)").run(
    'sha256:' + '1'.repeat(64),
    B.manifestDigest,
  );
  await publishFakeImage(b, { refs: ['c:1', 'c:2'], layers: ['s', 'c'] });
  await publishFakeImage(b, { refs: ['a2'], layers: ['d'] }); // D: a2 moves here …
  await Image.tagLocal(b, A.manifestDigest, 'a2'); // … and back: D keeps no ref
  const r = await Image.pruneLocal(b);
  assert.equal(r.imageRefsRemoved, 2);
  assert.equal(r.manifestsRemoved, 2);
  assert.equal(r.layersRemoved, 2);
  assert.equal(r.fsmetaRemoved, 2);
  assert.equal(r.vmdkRemoved, 2);
});

test('B5: an empty cache and a second prune report zeros and bytesReclaimed null', async (t) => {
  const { b } = await backend(t);
  const zero = {
    imageRefsRemoved: 0,
    manifestsRemoved: 0,
    layersRemoved: 0,
    fsmetaRemoved: 0,
    vmdkRemoved: 0,
    bytesReclaimed: null,
    tempRemoved: 0,
    orphansRemoved: 0,
    skippedInUse: 0,
    keptPinned: [],
    errors: [],
    dryRun: false,
    removed: { references: [], manifests: [], layers: [] },
  };
  assert.deepEqual(await Image.pruneLocal(b), zero);
  await publishFakeImage(b, { refs: ['x'], layers: ['y'] });
  assert.notEqual((await Image.pruneLocal(b)).bytesReclaimed, null);
  assert.deepEqual(await Image.pruneLocal(b), zero);
  assert.deepEqual(await Image.pruneLocal(b, { dryRun: true }), { ...zero, dryRun: true });
});

test('B7: unusedFor and filter restrict the prune to what the matching refs release', async (t) => {
  const { b, db, paths } = await backend(t);
  const old = await publishFakeImage(b, { refs: ['old'], layers: ['shared', 'old-only'] });
  await publishFakeImage(b, { refs: ['fresh'], layers: ['shared', 'fresh-only'] });
  db.prepare('UPDATE image_ref SET last_used_at = ? WHERE reference = ?').run(
    Date.now() - 2 * 3600_000,
    'docker.io/library/old:latest',
  );
  const orphanM = await publishFakeImage(b, { refs: ['unrelated'], layers: ['u'] });
  await publishFakeImage(b, { refs: ['unrelated'], layers: ['u2'] }); // orphanM now has no ref
  const tmpFile = join(paths.tmpDir, 'layer-aged.tmp');
  writeFileSync(tmpFile, 'x');
  const aged = new Date(Date.now() - 5 * 3600_000);
  utimesSync(tmpFile, aged, aged);
  const dry = await Image.pruneLocal(b, { unusedFor: '1h', dryRun: true });
  const r = await Image.pruneLocal(b, { unusedFor: '1h' });
  assert.deepEqual(comparable(dry), comparable(r));
  assert.deepEqual(r.removed.references, ['old:latest']);
  assert.deepEqual(r.removed.manifests, [old.manifestDigest]);
  assert.deepEqual(r.removed.layers, [diffIdOf('old-only')]);
  assert.equal(r.tempRemoved, 0);
  assert.ok(existsSync(tmpFile), 'temp files are left alone by a restricted prune');
  assert.ok(existsSync(paths.fsmeta(orphanM.manifestDigest)), 'an unrelated refless manifest stays');
  assert.equal((await Image.getLocal(b, 'fresh')).reference, 'fresh:latest');

  const m1 = await publishFakeImage(b, {
    refs: ['127.0.0.1:5000/peers/multilayer', '127.0.0.1:5000/peers/multiarch:v2'],
    layers: ['ml'],
  });
  await publishFakeImage(b, { refs: ['127.0.0.1:5000/peers/busybox'], layers: ['ml', 'bb'] });
  const f = await Image.pruneLocal(b, { filter: { reference: '127.0.0.1:5000/peers/multi*' } });
  assert.deepEqual(f.removed.references, [
    '127.0.0.1:5000/peers/multiarch:v2',
    '127.0.0.1:5000/peers/multilayer:latest',
  ]);
  assert.deepEqual(f.removed.manifests, [m1.manifestDigest]);
  assert.deepEqual(f.removed.layers, [], 'ml is still used by busybox');
  assert.ok(existsSync(paths.fsmeta(orphanM.manifestDigest)));
  const g = await Image.pruneLocal(b, { filter: { reference: ['fresh:*', 'nomatch'] }, dryRun: true });
  assert.deepEqual(g.removed.references, ['fresh:latest']);
});

test('B8: measures are allocated blocks; a hard-linked layer frees 0 bytes; an empty file counts with 0 bytes', async (t) => {
  const { dir, b, paths } = await backend(t);
  const sparse = await publishFakeImage(b, { refs: ['sparse'], layers: ['sp'], layerBlocks: [1] });
  const lp = paths.layer(sparse.diffIds[0]!);
  truncateSync(lp, 64 * 1024 * 1024); // 64 MiB long, a few blocks allocated
  const expected =
    allocOf(lp) + allocOf(paths.fsmeta(sparse.manifestDigest)) + allocOf(paths.vmdk(sparse.manifestDigest));
  assert.ok(allocOf(lp) < 1024 * 1024);
  const r = await Image.pruneLocal(b);
  assert.equal(r.bytesReclaimed, expected);

  const linked = await publishFakeImage(b, { refs: ['linked'], layers: ['hl'] });
  const hl = paths.layer(linked.diffIds[0]!);
  linkSync(hl, join(dir, 'elsewhere'));
  const expect2 = allocOf(paths.fsmeta(linked.manifestDigest)) + allocOf(paths.vmdk(linked.manifestDigest));
  const r2 = await Image.pruneLocal(b);
  assert.equal(r2.layersRemoved, 1);
  assert.equal(r2.bytesReclaimed, expect2, 'the hard-linked layer frees nothing');

  const tmp = join(paths.tmpDir, 'blob-empty.part');
  writeFileSync(tmp, '');
  const old = new Date(Date.now() - 2 * 3600_000);
  utimesSync(tmp, old, old);
  const r3 = await Image.pruneLocal(b);
  assert.equal(r3.tempRemoved, 1);
  assert.equal(r3.bytesReclaimed, 0, 'a deleted empty file counts: 0, not null');
});

test('B9: temp files: aged 2 h unleased goes, 10 min stays, leased stays; tempGrace 0 removes the young one', async (t) => {
  const { b, paths } = await backend(t);
  const mk = (name: string, ageMs: number, bytes = 10_000) => {
    const p = join(paths.tmpDir, name);
    writeFileSync(p, Buffer.alloc(bytes, 1));
    const d = new Date(Date.now() - ageMs);
    utimesSync(p, d, d);
    return p;
  };
  const leasedBlob = 'sha256:' + 'c'.repeat(64);
  const aged = mk('blob-sha256_' + 'a'.repeat(64) + '.part', 2 * 3600_000);
  const young = mk('blob-sha256_' + 'b'.repeat(64) + '.part', 10 * 60_000);
  const leased = mk('blob-sha256_' + 'c'.repeat(64) + '.part', 2 * 3600_000);
  const leasedTemp = mk('layer-sha256_' + 'd'.repeat(64) + '-1-abc.tmp', 2 * 3600_000);
  mkdirSync(join(paths.tmpDir, 'load-1-dead'));
  writeFileSync(join(paths.tmpDir, 'load-1-dead', 'm.json'), Buffer.alloc(5000, 2));
  const spool = join(paths.tmpDir, 'load-1-dead');
  const old = new Date(Date.now() - 3 * 3600_000);
  utimesSync(spool, old, old);
  const lease = await createLease(await b._open('write'), 'pull');
  await lease.addItem('blob', leasedBlob);
  await lease.addItem('temp', 'layer-sha256_' + 'd'.repeat(64) + '-1-abc.tmp');
  const expected = allocOf(aged) + allocOf(join(spool, 'm.json'));
  const dry = await Image.pruneLocal(b, { dryRun: true });
  const r = await Image.pruneLocal(b);
  assert.deepEqual(comparable(dry), comparable(r));
  assert.equal(r.tempRemoved, 2);
  assert.equal(r.bytesReclaimed, expected);
  assert.equal(existsSync(aged), false);
  assert.equal(existsSync(spool), false);
  for (const p of [young, leased, leasedTemp]) assert.ok(existsSync(p), p);
  const r2 = await Image.pruneLocal(b, { tempGrace: 0 });
  assert.equal(r2.tempRemoved, 1);
  assert.equal(existsSync(young), false);
  await lease.release();
  const r3 = await Image.pruneLocal(b, { tempGrace: '1m' });
  assert.equal(r3.tempRemoved, 2);
});

test('B10: a digest-named layer file with no row is an orphan; other names are left alone; no marker → no orphan step', async (t) => {
  const { b, paths } = await backend(t);
  const orphan = paths.layer('sha256:' + 'f'.repeat(64));
  writeFileSync(orphan, Buffer.alloc(8192, 3));
  const fsmetaOrphan = paths.fsmeta('sha512:' + 'e'.repeat(128));
  writeFileSync(fsmetaOrphan, Buffer.alloc(4096, 3));
  const notes = join(paths.layersDir, 'notes.txt');
  writeFileSync(notes, 'mine');
  const bad = join(paths.layersDir, 'sha256_' + 'F'.repeat(64) + '.erofs');
  writeFileSync(bad, 'uppercase: not a digest');
  const expected = allocOf(orphan) + allocOf(fsmetaOrphan);
  const dry = await Image.pruneLocal(b, { dryRun: true });
  const r = await Image.pruneLocal(b);
  assert.deepEqual(comparable(dry), comparable(r));
  assert.equal(r.orphansRemoved, 2);
  assert.equal(r.bytesReclaimed, expected);
  assert.equal(existsSync(orphan), false);
  assert.ok(existsSync(notes));
  assert.ok(existsSync(bad));
  // With the marker gone (not ours any more), the orphan step is skipped.
  writeFileSync(orphan, Buffer.alloc(4096));
  fs.unlinkSync(paths.marker);
  const r2 = await Image.pruneLocal(b);
  assert.equal(r2.orphansRemoved, 0);
  assert.ok(existsSync(orphan));
});

test('B11: one fsmeta replaced by a non-empty directory: the prune goes on, records one error, and msb image prune -y exits 1', async (t) => {
  const { dir, b, paths } = await backend(t);
  const x = await publishFakeImage(b, { refs: ['x'], layers: ['x1'] });
  const y = await publishFakeImage(b, { refs: ['y'], layers: ['y1'] });
  const f = paths.fsmeta(x.manifestDigest);
  fs.unlinkSync(f);
  mkdirSync(f);
  writeFileSync(join(f, 'inside'), 'x');
  const r = await Image.pruneLocal(b);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.kind, 'fsmeta');
  assert.equal(r.errors[0]!.item, x.manifestDigest);
  assert.equal(r.errors[0]!.path, f);
  assert.equal(r.errors[0]!.code, 'IO');
  assert.equal(r.manifestsRemoved, 2);
  assert.equal(r.fsmetaRemoved, 1);
  assert.equal(r.vmdkRemoved, 2);
  assert.equal(r.layersRemoved, 2);
  assert.equal(existsSync(paths.fsmeta(y.manifestDigest)), false);
  // The CLI: a report with errors exits 1.
  await publishFakeImage(b, { refs: ['z'], layers: ['z1'] });
  const f2 = paths.fsmeta((await Image.getLocal(b, 'z')).manifestDigest);
  fs.unlinkSync(f2);
  mkdirSync(f2);
  writeFileSync(join(f2, 'inside'), 'x');
  await b.close();
  const out = await cli(['--home', dir, 'image', 'prune', '-y']);
  assert.equal(out.status, 1, out.stderr);
  assert.match(out.stderr, /fsmeta/);
});

test('B12: remove and prune never touch lock files (same inodes)', async (t) => {
  const { b, paths } = await backend(t);
  await publishFakeImage(b, { refs: ['l1', 'l2'], layers: ['a', 'b'] });
  await publishFakeImage(b, { refs: ['l3'], layers: ['b', 'c'] });
  await Image.pruneLocal(b, { dryRun: true });
  await withLock(await b._open('write'), 'ref', 'docker.io/library/l1:latest', () => undefined);
  await withLock(await b._open('write'), 'gc', null, () => undefined);
  const inodes = new Map(readdirSync(paths.locksDir).map((n) => [n, statSync(join(paths.locksDir, n)).ino]));
  assert.ok(inodes.size >= 4);
  await Image.removeLocal(b, 'l1');
  await Image.removeLocal(b, 'l3');
  await Image.pruneLocal(b);
  for (const [n, ino] of inodes) assert.equal(statSync(join(paths.locksDir, n)).ino, ino, n);
});

test('skippedInUse: a manifest or layer whose lock is held (an in-flight pull) is left alone and counted', async (t) => {
  const { b, paths } = await backend(t);
  const x = await publishFakeImage(b, { refs: ['busy'], layers: ['busy-layer'] });
  await Image.removeLocal(b, 'busy'); // the layer goes with it … re-create a refless manifest instead
  const y = await publishFakeImage(b, { refs: ['busy2'], layers: ['busy-layer2'] });
  let report: ImagePruneReport | undefined;
  await withLock(await b._open('write'), 'image', y.manifestDigest, async () => {
    report = await Image.pruneLocal(b);
  });
  assert.equal(report!.skippedInUse, 1);
  assert.equal(report!.manifestsRemoved, 0);
  assert.ok(existsSync(paths.fsmeta(y.manifestDigest)));
  await withLock(await b._open('write'), 'layer', y.diffIds[0]!, async () => {
    report = await Image.pruneLocal(b);
  });
  assert.equal(report!.manifestsRemoved, 1);
  assert.equal(report!.skippedInUse, 1, 'the layer whose lock is held');
  assert.ok(existsSync(paths.layer(y.diffIds[0]!)));
  const last = await Image.pruneLocal(b);
  assert.equal(last.layersRemoved, 1);
  void x;
});

test('remove leaves a layer whose lock is busy for prune', async (t) => {
  const { b, paths } = await backend(t);
  const x = await publishFakeImage(b, { refs: ['rm'], layers: ['r1', 'r2'] });
  let rep: Awaited<ReturnType<typeof Image.removeLocal>> | undefined;
  await withLock(await b._open('write'), 'layer', x.diffIds[0]!, async () => {
    rep = await Image.removeLocal(b, 'rm');
  });
  assert.deepEqual(rep!.deletedLayers, [x.diffIds[1]!]);
  assert.ok(existsSync(paths.layer(x.diffIds[0]!)));
  const p = await Image.pruneLocal(b);
  assert.deepEqual(p.removed.layers, [x.diffIds[0]!]);
});

test('B16: list() over 10,000 refs is one query in order, with no filesystem call once the backend is open', async (t) => {
  const { b } = await backend(t);
  await synthesizeIndex(b, 10_000, 1000, { files: false });
  await Image.listLocal(b); // warm
  const calls: string[] = [];
  const restore: (() => void)[] = [];
  const spy = (obj: Record<string, unknown>, names: string[], label: string) => {
    for (const n of names) {
      const orig = obj[n] as (...a: unknown[]) => unknown;
      if (typeof orig !== 'function') continue;
      obj[n] = function (this: unknown, ...a: unknown[]) {
        calls.push(`${label}.${n}`);
        return orig.apply(this, a);
      };
      restore.push(() => {
        obj[n] = orig;
      });
    }
  };
  const fsNames = [
    'statSync',
    'lstatSync',
    'readFileSync',
    'openSync',
    'readdirSync',
    'realpathSync',
    'existsSync',
    'accessSync',
    'stat',
    'lstat',
    'readdir',
    'open',
    'readFile',
  ];
  spy(fs as unknown as Record<string, unknown>, fsNames, 'fs');
  spy(
    fs.promises as unknown as Record<string, unknown>,
    ['stat', 'lstat', 'readdir', 'open', 'readFile', 'access', 'realpath'],
    'fs.promises',
  );
  syncBuiltinESMExports();
  let list: Awaited<ReturnType<typeof Image.listLocal>> | undefined;
  let spyWorks: string[] = [];
  try {
    list = await Image.listLocal(b);
    const seen = [...calls];
    await Image.diskUsageLocal(b); // does lstat: proves the spy sees our fs calls
    spyWorks = calls.slice(seen.length);
    calls.length = seen.length;
  } finally {
    for (const r of restore) r();
    syncBuiltinESMExports();
  }
  assert.deepEqual(calls, []);
  assert.ok(spyWorks.length > 0, 'the spy observes filesystem calls of the API');
  assert.equal(list.length, 10_000);
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!,
      c = list[i]!;
    assert.ok(
      a.createdAt > c.createdAt ||
        (a.createdAt.getTime() === c.createdAt.getTime() && a.canonicalReference < c.canonicalReference),
    );
  }
});

test('H12: prune of 10,000 unpinned synthesized refs completes and reports 10,000', async (t) => {
  const { dir, b } = await backend(t);
  const { manifests } = await synthesizeIndex(b, 10_000, 1000);
  const before = fileAlloc(dir);
  const r = await Image.pruneLocal(b);
  assert.equal(r.imageRefsRemoved, 10_000);
  assert.equal(r.manifestsRemoved, manifests.length);
  assert.equal(r.layersRemoved, 1001);
  let gone = 0;
  const after = fileAlloc(dir);
  for (const [p, bytes] of before) if (!after.has(p)) gone += bytes;
  assert.equal(r.bytesReclaimed, gone);
  assert.deepEqual(await Image.listLocal(b), []);
});

test('diskUsage: lstat-only accounting, reclaimable = dry-run bytes, and the invariant Σ unique + shared + unused + temp + orphans = total', async (t) => {
  const { b, db, paths } = await backend(t);
  const { A, B } = await scene(b, db);
  writeFileSync(paths.layer('sha256:' + '4'.repeat(64)), Buffer.alloc(4096, 1)); // orphan
  writeFileSync(join(paths.tmpDir, 'x.tmp'), Buffer.alloc(4096, 1));
  db.prepare(
    'INSERT INTO layer (diff_id, erofs_size_bytes, erofs_alloc_bytes, inodes, blocks, created_at, last_used_at) VALUES (?, 4096, 4096, 1, 1, 0, 0)',
  ).run(diffIdOf('unused'));
  writeFileSync(paths.layer(diffIdOf('unused')), Buffer.alloc(4096, 1));
  const du = await Image.diskUsageLocal(b);
  const dry = await Image.pruneLocal(b, { dryRun: true });
  assert.equal(du.reclaimableBytes, dry.bytesReclaimed);
  assert.equal(du.orphans.count, 1);
  assert.equal(du.temp.count, 1);
  assert.equal(du.images.length, 5);
  const a = du.images.find((i) => i.manifestDigest === A.manifestDigest)!;
  assert.equal(a.pinned, true);
  assert.deepEqual([...a.references].sort(), ['a1:latest', 'a2:latest']);
  assert.equal(a.sizeBytes, (await Image.getLocal(b, 'a1')).sizeBytes);
  assert.equal(du.images.find((i) => i.manifestDigest === B.manifestDigest)!.pinned, true);
  // Invariant
  const users = new Map<string, number>();
  for (const r of db
    .prepare('SELECT DISTINCT ml.manifest_id, l.diff_id FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id')
    .all() as { diff_id: string }[]) {
    users.set(r.diff_id, (users.get(r.diff_id) ?? 0) + 1);
  }
  let shared = 0;
  for (const [d, n] of users) if (n > 1) shared += allocOf(paths.layer(d));
  const unused = allocOf(paths.layer(diffIdOf('unused')));
  const sumUnique = du.images.reduce((s, i) => s + i.uniqueBytes!, 0);
  assert.equal(sumUnique + shared + unused + du.temp.bytes + du.orphans.bytes, du.totalBytes);
  for (const i of du.images) assert.equal(i.sharedBytes, i.sizeBytes! - i.uniqueBytes!);
});

test('abort: a prune rejects with ABORTED (cause = signal.reason), also while waiting for gc.lock; deleted items stay deleted', async (t) => {
  const { b, paths } = await backend(t);
  await publishFakeImage(b, { refs: ['ab'], layers: ['ab1'] });
  const ac = new AbortController();
  ac.abort('early');
  await assert.rejects(
    Image.pruneLocal(b, { signal: ac.signal }),
    (e: unknown) => (e as { code?: string }).code === 'ABORTED' && (e as Error).cause === 'early',
  );
  const ac2 = new AbortController();
  let p!: Promise<unknown>;
  await withLock(await b._open('write'), 'gc', null, async () => {
    p = Image.pruneLocal(b, { signal: ac2.signal });
    await new Promise((r) => setTimeout(r, 30));
    ac2.abort('late');
    await assert.rejects(
      p,
      (e: unknown) => (e as { code?: string }).code === 'ABORTED' && (e as Error).cause === 'late',
    );
  });
  assert.equal((await Image.listLocal(b)).length, 1, 'nothing was pruned');
  assert.ok(existsSync(paths.locksDir));
});

test('close() waits for running operations, then closes; a later call reopens', async (t) => {
  const { b } = await backend(t);
  await publishFakeImage(b, { refs: ['c1'], layers: ['c'] });
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const running = b._run(async () => {
    await gate;
    return Image.listLocal(b);
  });
  let closed = false;
  const closing = b.close().then(() => {
    closed = true;
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, false, 'close waits for the running operation');
  release();
  assert.equal((await running).length, 1);
  await closing;
  assert.equal(closed, true);
  assert.equal((await Image.listLocal(b)).length, 1);
});

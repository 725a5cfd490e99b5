/**
 * verify and verify --repair (docs/storage.md §10) on a real cache: images pulled from a real
 * registry (a private one, so the offline case can stop it) and one loaded from an archive. Every
 * bad input of issue 13 is planted by hand, found and named, then fixed or reported unfixable,
 * while a sandbox pins an image and holds one of its files open; nothing outside the cache is read
 * through a symlink or deleted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Image, Sandbox, type VerifyFinding } from '../../src/index.js';
import { ensureImages, ensureRegistry, run, tempDir } from '../helpers/env.js';
import { flipByte } from '../helpers/bytes.js';
import { freshHome, privateRegistry, rows } from '../helpers/pull-env.js';
import { cli } from '../helpers/msb-cli.js';

const fx = ensureImages();
const work = tempDir('msb-verify-');
test.after(() => work.cleanup());

/** The definition of docs/storage.md §10.1, written plainly (an independent recomputation). */
function chunkedSha256(path: string): string {
  const b = readFileSync(path);
  const outer = createHash('sha256');
  for (let o = 0; o < b.length; o += 1 << 20)
    outer.update(
      createHash('sha256')
        .update(b.subarray(o, o + (1 << 20)))
        .digest(),
    );
  return `msb-chunked-sha256:${outer.digest('hex')}`;
}

function flipInFile(path: string, offset: number): void {
  const b = readFileSync(path);
  flipByte(b, offset);
  writeFileSync(path, b);
}

/** A byte in a directory or data block: not read by the §5 structure checks, only by the digest. */
function dataOffset(layerPath: string): number {
  const b = readFileSync(layerPath);
  const meta = b.readUInt32LE(1024 + 0x28);
  assert.ok(meta >= 2, `${layerPath} has a data block`);
  return (meta - 1) * 4096 + 100;
}

const short = (f: VerifyFinding) => `${f.kind} ${f.artifact} ${f.item}`;

test('verify: a pulled cache is clean; bad inputs are found, named, repaired or reported unfixable', async (t) => {
  const reg = await privateRegistry(t);
  const { home, backend: b } = await freshHome(t);
  const R = (repo: string) => `${reg.host}/peers/${repo}`;
  const multi = await Image.pullLocal(b, R('multilayer'));
  const dup = await Image.pullLocal(b, R('edge-dup'));
  const busy = await Image.pullLocal(b, R('busybox'));
  // An image that exists only as a loaded archive: its own layer cannot be fetched again.
  const archive = join(work.dir, 'sparse.docker.tar');
  run('skopeo', ['copy', '-q', `oci:${fx.oci}:edge-sparse`, `docker-archive:${archive}:local/sparse:1`]);
  const [loaded] = await Image.loadLocal(b, archive);
  const store = await b._open('write');

  // 1. Clean: every recorded digest equals the definition recomputed from the file.
  const clean = await Image.verifyLocal(b);
  assert.equal(clean.ok, true, JSON.stringify(clean.findings));
  assert.deepEqual(
    clean.steps.map((s) => s.name),
    ['index', 'layers', 'images', 'orphans', 'temp'],
  );
  const layerRows = rows<{ diff_id: string; content_digest: string }>(
    home,
    'SELECT diff_id, content_digest FROM layer',
  );
  assert.ok(layerRows.length >= 6);
  for (const l of layerRows) assert.equal(l.content_digest, chunkedSha256(store.paths.layer(l.diff_id)), l.diff_id);
  for (const m of rows<{ digest: string; fsmeta_digest: string; vmdk_digest: string }>(
    home,
    'SELECT digest, fsmeta_digest, vmdk_digest FROM manifest',
  )) {
    assert.equal(m.fsmeta_digest, chunkedSha256(store.paths.fsmeta(m.digest)));
    assert.equal(m.vmdk_digest, chunkedSha256(store.paths.vmdk(m.digest)));
  }
  assert.equal(clean.counts.layers, layerRows.length);

  // A sandbox pins multilayer; a "VMM" holds one of its layer files open through the repair.
  await Sandbox.createLocal(b, 'verify-sb', { image: R('multilayer') });
  const base = busy.layers[0]!.diffId;
  const only = (r: typeof multi, not: string[]) => r.layers.map((l) => l.diffId).find((d) => !not.includes(d))!;
  const flipped = multi.layers
    .map((l) => l.diffId)
    .filter((d) => d !== base)
    .at(-1)!;
  const deleted = only(dup, [base, flipped]);
  const linked = multi.layers.map((l) => l.diffId).find((d) => ![base, flipped, deleted].includes(d))!;
  const pulledLayers = new Set([multi, dup, busy].flatMap((r) => r.layers.map((l) => l.diffId)));
  const archOnly = (await Image.inspectLocal(b, 'local/sparse:1')).layers
    .map((l) => l.diffId)
    .find((d) => !pulledLayers.has(d))!;
  assert.ok(flipped && deleted && linked && archOnly, 'four distinct layers to damage');
  const saved = new Map<string, Buffer>();
  for (const p of [
    store.paths.layer(flipped),
    store.paths.fsmeta(dup.manifestDigest),
    store.paths.vmdk(busy.manifestDigest),
  ])
    saved.set(p, readFileSync(p));

  // 2. Plant every bad input.
  const outside = join(work.dir, 'outside');
  run('mkdir', ['-p', outside]);
  const outsideCopy = join(outside, 'layer-copy.erofs');
  copyFileSync(store.paths.layer(linked), outsideCopy);
  const outsideBytes = readFileSync(outsideCopy);
  const flipAt = dataOffset(store.paths.layer(flipped));
  flipInFile(store.paths.layer(flipped), flipAt);
  const vmmFd = openSync(store.paths.layer(flipped), 'r');
  t.after(() => closeSync(vmmFd));
  truncateSync(store.paths.fsmeta(dup.manifestDigest), lstatSync(store.paths.fsmeta(dup.manifestDigest)).size - 4096);
  const vmPath = store.paths.vmdk(busy.manifestDigest);
  const vm = readFileSync(vmPath, 'utf8');
  const fsName = store.paths.fsmeta(busy.manifestDigest);
  const missingExtent = fsName.slice(0, -7) + (fsName.at(-7) === '0' ? '1' : '0') + '.erofs';
  writeFileSync(vmPath, vm.replace(fsName, missingExtent)); // same length, an extent that does not exist
  unlinkSync(store.paths.layer(deleted));
  unlinkSync(store.paths.layer(linked));
  symlinkSync(outsideCopy, store.paths.layer(linked));
  flipInFile(store.paths.layer(archOnly), dataOffset(store.paths.layer(archOnly)));
  const ghost = `sha256:${'7'.repeat(64)}`;
  const db = new Database(join(home, 'db', 'msb.db'));
  db.prepare(
    'INSERT INTO layer (diff_id, erofs_size_bytes, erofs_alloc_bytes, inodes, blocks, created_at, last_used_at) VALUES (?, 8192, 8192, 1, 2, 1, 1)',
  ).run(ghost);
  db.close();
  writeFileSync(join(store.paths.layersDir, 'notes.txt'), 'dropped here by hand');
  const orphan = join(store.paths.fsmetaDir, `sha256_${'e'.repeat(64)}.erofs`);
  writeFileSync(orphan, Buffer.alloc(4096, 1));
  const temp = join(store.paths.tmpDir, 'layer-sha256_' + 'f'.repeat(64) + '-1-abc.tmp');
  writeFileSync(temp, 'half a candidate');
  utimesSync(temp, new Date(Date.now() - 3 * 3600_000), new Date(Date.now() - 3 * 3600_000));

  // 3. Found and named: kind, path, expected, actual.
  const found = await Image.verifyLocal(b);
  assert.equal(found.ok, false);
  const byKey = new Map(found.findings.map((f) => [short(f), f]));
  const expectFinding = (key: string, fields: Partial<VerifyFinding>) => {
    const f = byKey.get(key);
    assert.ok(f, `finding ${key} in ${[...byKey.keys()].join('; ')}`);
    for (const [k, v] of Object.entries(fields)) assert.deepEqual(f[k as keyof VerifyFinding], v, `${key}: ${k}`);
  };
  const recorded = (d: string) =>
    rows<{ c: string }>(home, 'SELECT content_digest AS c FROM layer WHERE diff_id = ?', d)[0]!.c;
  expectFinding(`digest layer ${flipped}`, {
    path: store.paths.layer(flipped),
    expected: recorded(flipped),
    actual: chunkedSha256(store.paths.layer(flipped)),
  });
  expectFinding(`size fsmeta ${dup.manifestDigest}`, {
    expected: saved.get(store.paths.fsmeta(dup.manifestDigest))!.length,
    actual: saved.get(store.paths.fsmeta(dup.manifestDigest))!.length - 4096,
  });
  assert.match(byKey.get(`structure vmdk ${busy.manifestDigest}`)?.message ?? '', /path|extent/i);
  expectFinding(`missing layer ${deleted}`, { path: store.paths.layer(deleted), actual: 'absent' });
  expectFinding(`not-regular layer ${linked}`, { expected: 'regular file', actual: 'symbolic link' });
  expectFinding(`digest layer ${archOnly}`, {});
  expectFinding(`missing layer ${ghost}`, { expected: 8192 });
  expectFinding('foreign file layers/notes.txt', { actual: 'regular file' });
  expectFinding(`orphan file fsmeta/${orphan.slice(orphan.lastIndexOf('/') + 1)}`, { path: orphan });
  expectFinding(`temp temp ${temp.slice(temp.lastIndexOf('/') + 1)}`, { path: temp });
  assert.equal(found.findings.length, 10, found.findings.map(short).join('\n'));
  assert.equal(found.remaining.length, 10);
  const viaCli = await cli(['--home', home, 'image', 'verify', '--format', 'json']);
  assert.equal(viaCli.status, 1, viaCli.stderr);
  assert.equal((JSON.parse(viaCli.stdout) as { findings: unknown[] }).findings.length, 10);

  // 4. Repair while the pinned image's paths are watched: they never disappear.
  const watched = [
    store.paths.vmdk(multi.manifestDigest),
    store.paths.fsmeta(multi.manifestDigest),
    ...multi.artifacts.layers.map((l) => l.path),
  ];
  let gaps = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const p of watched) if (!existsSync(p)) gaps++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  const fixed = await Image.verifyLocal(b, [], { repair: true });
  watching = false;
  await watcher;
  assert.equal(gaps, 0, 'a path of the pinned image went missing during the repair');
  const outcome = new Map(fixed.findings.map((f) => [short(f), f.repair]));
  const expectOutcome = (key: string, action: string, result: string) =>
    assert.deepEqual(
      [outcome.get(key)?.action, outcome.get(key)?.result],
      [action, result],
      `${key}: ${JSON.stringify(outcome.get(key))}`,
    );
  expectOutcome(`digest layer ${flipped}`, 'refetch', 'fixed');
  expectOutcome(`missing layer ${deleted}`, 'refetch', 'fixed');
  expectOutcome(`not-regular layer ${linked}`, 'refetch', 'fixed');
  expectOutcome(`size fsmeta ${dup.manifestDigest}`, 'rebuild', 'fixed');
  expectOutcome(`structure vmdk ${busy.manifestDigest}`, 'rebuild', 'fixed');
  expectOutcome(`digest layer ${archOnly}`, 'none', 'unfixable');
  expectOutcome(`missing layer ${ghost}`, 'none', 'unfixable');
  expectOutcome('foreign file layers/notes.txt', 'remove', 'fixed');
  expectOutcome(`orphan file fsmeta/${orphan.slice(orphan.lastIndexOf('/') + 1)}`, 'remove', 'fixed');
  expectOutcome(`temp temp ${temp.slice(temp.lastIndexOf('/') + 1)}`, 'remove', 'fixed');
  assert.match(outcome.get(`digest layer ${archOnly}`)!.message!, /load the archive/);
  assert.deepEqual(fixed.remaining.map(short).sort(), [`digest layer ${archOnly}`, `missing layer ${ghost}`].sort());
  assert.equal(fixed.ok, false);
  assert.deepEqual([fixed.counts.fixed, fixed.counts.unfixable, fixed.counts.failed], [8, 2, 0]);

  // Repaired files are the originals, byte for byte; the open descriptor still reads the old inode.
  for (const [p, bytes] of saved) assert.ok(readFileSync(p).equals(bytes), `${p} restored`);
  assert.ok(lstatSync(store.paths.layer(linked)).isFile(), 'the symlink was replaced by a file');
  const old = Buffer.alloc(1);
  readSync(vmmFd, old, 0, 1, flipAt);
  assert.equal(old[0], saved.get(store.paths.layer(flipped))![flipAt]! ^ 0xff, 'rename, not rewrite in place');
  // Outside the cache: the symlink's target is untouched and was never deleted.
  assert.ok(readFileSync(outsideCopy).equals(outsideBytes));
  assert.ok(!existsSync(join(store.paths.layersDir, 'notes.txt')));
  assert.ok(lstatSync(outside).isDirectory(), 'the outside directory is kept');
  assert.equal(loaded?.reference, 'local/sparse:1');

  // 5. Offline: the registry is gone, a layer flips again: `failed`, with the registry's error.
  await reg.stop();
  flipInFile(store.paths.layer(flipped), flipAt);
  const offline = await Image.verifyLocal(b, [R('multilayer')], { repair: true });
  const f = offline.findings.find((x) => x.item === flipped)!;
  assert.equal(f.repair?.result, 'failed');
  assert.match(f.repair?.message ?? '', /fetching it again through .* failed/);
  await reg.start();
  const back = await Image.verifyLocal(b, [R('multilayer')], { repair: true });
  assert.equal(back.ok, true, JSON.stringify(back.remaining));
});

test('verify: scoped to REFs; digests of older rows are measured on first verify; a damaged index is unfixable', async (t) => {
  const reg = await privateRegistry(t);
  const { home, backend: b } = await freshHome(t);
  const busy = await Image.pullLocal(b, `${reg.host}/peers/busybox`);
  const multi = await Image.pullLocal(b, `${reg.host}/peers/multilayer`);
  const before = rows<{ diff_id: string; content_digest: string }>(home, 'SELECT diff_id, content_digest FROM layer');
  const m0 = rows<{ fsmeta_digest: string }>(
    home,
    'SELECT fsmeta_digest FROM manifest WHERE digest = ?',
    busy.manifestDigest,
  )[0]!;
  const db = new Database(join(home, 'db', 'msb.db'));
  db.exec('UPDATE layer SET content_digest = NULL; UPDATE manifest SET fsmeta_digest = NULL, vmdk_digest = NULL');
  db.close();
  const scoped = await Image.verifyLocal(b, `${reg.host}/peers/busybox`);
  assert.equal(scoped.ok, true);
  assert.deepEqual(scoped.scope, [`${reg.host}/peers/busybox:latest`]);
  assert.deepEqual(
    scoped.steps.map((s) => s.name),
    ['index', 'layers', 'images'],
  );
  assert.equal(scoped.counts.layers, busy.layers.length);
  assert.equal(scoped.counts.digestsRecorded, busy.layers.length + 2);
  const after = new Map(
    rows<{ diff_id: string; content_digest: string | null }>(home, 'SELECT diff_id, content_digest FROM layer').map(
      (r) => [r.diff_id, r.content_digest],
    ),
  );
  for (const r of before) {
    const inBusy = busy.layers.some((l) => l.diffId === r.diff_id);
    assert.equal(after.get(r.diff_id), inBusy ? r.content_digest : null, r.diff_id);
  }
  assert.equal(
    rows<{ fsmeta_digest: string }>(
      home,
      'SELECT fsmeta_digest FROM manifest WHERE digest = ?',
      busy.manifestDigest,
    )[0]!.fsmeta_digest,
    m0.fsmeta_digest,
  );
  await assert.rejects(Image.verifyLocal(b, 'nosuch/image:1'), { code: 'IMAGE_NOT_FOUND' });
  const all = await Image.verifyLocal(b);
  assert.equal(all.ok, true);
  assert.equal(all.counts.digestsRecorded, multi.layers.length - busy.layers.length + 2);

  // A manifest_layer row that names no layer: SQLite's foreign_key_check reports it.
  const raw = new Database(join(home, 'db', 'msb.db'));
  raw.pragma('foreign_keys = OFF');
  raw
    .prepare('INSERT INTO manifest_layer VALUES ((SELECT id FROM manifest LIMIT 1), 99, 424242, ?, ?, NULL)')
    .run(`sha256:${'1'.repeat(64)}`, 'application/vnd.oci.image.layer.v1.tar');
  raw.close();
  const damaged = await Image.verifyLocal(b, [], { repair: true });
  const idx = damaged.findings.filter((x) => x.kind === 'index');
  assert.equal(idx.length, 1, JSON.stringify(damaged.findings));
  assert.match(idx[0]!.message, /foreign key/);
  assert.equal(idx[0]!.repair?.result, 'unfixable');
  assert.equal(damaged.ok, false);
});

test('verify: digests of zstd and gzip layers (whichever thread converts them) are recorded at the pull and match the file', async (t) => {
  const reg = ensureRegistry('noauth');
  const { home, backend: b } = await freshHome(t);
  const zstd = await Image.pullLocal(b, `${reg.host}/peers/multilayer:zstd`);
  const gzip = await Image.pullLocal(b, `${reg.host}/peers/busybox:latest`);
  const store = await b._open('read');
  for (const d of [...zstd.layers, ...gzip.layers].map((l) => l.diffId)) {
    const [row] = rows<{ content_digest: string | null }>(
      home,
      'SELECT content_digest FROM layer WHERE diff_id = ?',
      d,
    );
    assert.equal(row?.content_digest, chunkedSha256(store!.paths.layer(d)), d);
  }
  for (const m of [zstd.manifestDigest, gzip.manifestDigest]) {
    const [row] = rows<{ fsmeta_digest: string; vmdk_digest: string }>(
      home,
      'SELECT fsmeta_digest, vmdk_digest FROM manifest WHERE digest = ?',
      m,
    );
    assert.equal(row?.fsmeta_digest, chunkedSha256(store!.paths.fsmeta(m)));
    assert.equal(row?.vmdk_digest, chunkedSha256(store!.paths.vmdk(m)));
  }
  const v = await Image.verifyLocal(b);
  assert.equal(v.ok, true);
  assert.equal(v.counts.digestsRecorded, 0, 'nothing left to measure: every digest was recorded at write');
});

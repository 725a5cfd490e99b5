/**
 * Docker users' habits in `msb` (issue 10 items 4–7; docs/cli.md §5): image IDs from the DIGEST
 * column, ambiguity (exit 2), `images -a/--digests/--filter/REPO[:TAG]/--format template`,
 * `rmi` of an ID with several references (exit 1 without -f), the pinned note, and the prune
 * report's kept images, `reference=REPO` and the skipped-items label.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Image, LocalBackend, Snapshot } from '../../src/index.js';
import { withLock } from '../../src/store/locks.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { cli, spawnMsb } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';

async function seeded(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  t.after(() => b.close());
  const old = await publishFakeImage(b, {
    refs: ['busybox:1.36', 'busybox:latest'],
    layers: ['bb'],
    now: Date.now() - 5 * 3600_000,
    config: { Env: [], Labels: { tier: 'base', team: 'core' } },
  });
  const mid = await publishFakeImage(b, {
    refs: ['ghcr.io/org/app:v1'],
    layers: ['bb', 'app'],
    now: Date.now() - 3 * 3600_000,
    config: { Labels: { tier: 'app' } },
  });
  const pinned = await publishFakeImage(b, { refs: ['pinned:1'], layers: ['pn'], now: Date.now() - 3600_000 });
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '4'.repeat(64),
    imageManifestDigest: pinned.manifestDigest,
    name: 'nightly',
  });
  return { dir, b, old, mid, pinned };
}

const refsOf = (stdout: string) => stdout.trimEnd().split('\n').filter(Boolean);

test('the 12-hex DIGEST column is an image ID: inspect, tag and rmi accept it; REPO@digest of an image pulled by tag works', async (t) => {
  const { dir, mid } = await seeded(t);
  const table = await cli(['--home', dir, 'images']);
  const id = /^ghcr\.io\/org\/app:v1\s+([0-9a-f]{12})\s/m.exec(table.stdout)![1]!;
  const r = spawnMsb(['--home', dir, 'image', 'inspect', id]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Reference:\s+ghcr\.io\/org\/app:v1$/m);
  const byRepoDigest = await cli([
    '--home',
    dir,
    'image',
    'inspect',
    '--format',
    'json',
    `ghcr.io/org/app@${mid.manifestDigest}`,
  ]);
  assert.equal(byRepoDigest.status, 0, byRepoDigest.stderr);
  assert.equal(JSON.parse(byRepoDigest.stdout)[0].handle.manifestDigest, mid.manifestDigest);
  assert.equal((await cli(['--home', dir, 'tag', id.slice(0, 6), 'app:copy'])).status, 0);
  assert.match((await cli(['--home', dir, 'images', '-q', 'app'])).stdout, /^app:copy$/m);
  const missing = await cli([
    '--home',
    dir,
    'image',
    'inspect',
    'ffffffffffff'.replace(/f/g, id[0] === 'f' ? 'e' : 'f'),
  ]);
  assert.equal(missing.status, 3);
});

test('an ambiguous ID exits 2 listing the candidates', async (t) => {
  const { dir, b, old } = await seeded(t);
  const store = await b._open('write');
  const hex = old.manifestDigest.slice(7);
  const twin = `sha256:${hex.slice(0, 5)}${'0'.repeat(59)}`;
  store.index.db
    .prepare(
      `INSERT INTO manifest (digest, media_type, raw, config_digest, layer_count, source, created_at)
       SELECT ?, media_type, raw, config_digest, layer_count, source, created_at FROM manifest WHERE digest = ?`,
    )
    .run(twin, old.manifestDigest);
  const r = spawnMsb(['--home', dir, 'image', 'inspect', hex.slice(0, 4)]);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /^msb: INVALID_ARGUMENT: image ID [0-9a-f]{4} is ambiguous: it is the start of sha256:[0-9a-f]{64}, sha256:[0-9a-f]{64}; give more digits\n$/,
  );
  assert.ok(r.stderr.includes(old.manifestDigest) && r.stderr.includes(twin));
});

test('rmi of an ID naming several references exits 1 listing them and untags nothing; -f untags all; untagging one tag of a pinned image notes its pins', async (t) => {
  const { dir, old, pinned } = await seeded(t);
  const id = old.manifestDigest.slice(7, 19);
  const r = await cli(['--home', dir, 'rmi', id]);
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr,
    `msb: IMAGE_REFERENCED: ${id} is referenced by busybox:1.36, busybox:latest\n` +
      'hint: use -f to untag them all, or remove one reference at a time (msb rmi NAME:TAG)\n',
  );
  assert.equal(refsOf((await cli(['--home', dir, 'images', '-q', 'busybox'])).stdout).length, 2);
  const f = await cli(['--home', dir, 'rmi', '-f', id]);
  assert.equal(f.status, 0, f.stderr);
  assert.match(f.stdout, /^Untagged: busybox:1\.36\nUntagged: busybox:latest\nDeleted: sha256:/);
  // A pinned image with two tags: untagging one is allowed, and the output says what keeps it.
  await cli(['--home', dir, 'tag', 'pinned:1', 'pinned:2']);
  const one = await cli(['--home', dir, 'rmi', 'pinned:2']);
  assert.equal(one.status, 0, one.stderr);
  assert.equal(one.stdout, 'Untagged: pinned:2\n');
  assert.match(one.stderr, /^msb: note: the image itself stays cached: pinned by snapshot 'nightly'; /);
  assert.ok(pinned.manifestDigest);
});

test('images: -a adds <none> rows, --digests shows full digests, REPO[:TAG] and --filter use docker semantics', async (t) => {
  const { dir, b, pinned } = await seeded(t);
  await Image.removeLocal(b, 'pinned:1', { force: true }); // untagged, kept by its snapshot
  const plain = await cli(['--home', dir, 'images']);
  assert.doesNotMatch(plain.stdout, /<none>/);
  const all = await cli(['--home', dir, 'images', '-a']);
  assert.match(all.stdout, new RegExp(`^<none>\\s+${pinned.manifestDigest.slice(7, 19)}\\s`, 'm'));
  assert.match((await cli(['--home', dir, 'images', '-aq'])).stdout, new RegExp(`^${pinned.manifestDigest}$`, 'm'));
  assert.match((await cli(['--home', dir, 'images', '--digests'])).stdout, /\ssha256:[0-9a-f]{64}\s/);
  const q = async (...args: string[]) => refsOf((await cli(['--home', dir, 'images', '-q', ...args])).stdout);
  assert.deepEqual(await q('busybox'), ['busybox:1.36', 'busybox:latest'], 'a name without a tag matches every tag');
  assert.deepEqual(await q('busybox:1.*'), ['busybox:1.36']);
  assert.deepEqual(await q('--filter', 'reference=ghcr.io/org/*'), ['ghcr.io/org/app:v1']);
  assert.deepEqual(await q('--filter', 'reference=*'), ['busybox:1.36', 'busybox:latest'], '* never crosses /');
  assert.deepEqual(await q('--filter', 'reference=busybox', '--filter', 'reference=ghcr.io/org/app'), [
    'ghcr.io/org/app:v1',
    'busybox:1.36',
    'busybox:latest',
  ]);
  assert.deepEqual(await q('--filter', 'dangling=true'), [pinned.manifestDigest]);
  assert.deepEqual(await q('--filter', 'dangling=false'), ['ghcr.io/org/app:v1', 'busybox:1.36', 'busybox:latest']);
  assert.deepEqual(await q('--filter', 'before=ghcr.io/org/app:v1'), ['busybox:1.36', 'busybox:latest']);
  assert.deepEqual(await q('--filter', 'since=busybox:latest'), ['ghcr.io/org/app:v1']);
  assert.deepEqual(await q('--filter', 'label=tier=base'), ['busybox:1.36', 'busybox:latest']);
  assert.deepEqual(await q('--filter', 'label=tier'), ['ghcr.io/org/app:v1', 'busybox:1.36', 'busybox:latest']);
  assert.deepEqual(await q('--filter', 'label=tier', '--filter', 'label=team=core'), [
    'busybox:1.36',
    'busybox:latest',
  ]);
  for (const bad of ['bogus=1', 'dangling=maybe', 'reference=[', 'reference']) {
    const r = await cli(['--home', dir, 'images', '--filter', bad]);
    assert.equal(r.status, 2, bad);
  }
});

test('images --format: json, a template with the JSON fields and docker names, and a table template', async (t) => {
  const { dir, b, mid } = await seeded(t);
  const j = await cli(['--home', dir, 'images', '--format', 'json', 'ghcr.io/org/app']);
  assert.equal(j.stdout, JSON.stringify([await Image.getLocal(b, 'ghcr.io/org/app:v1')]) + '\n');
  const tpl = await cli([
    '--home',
    dir,
    'images',
    '--format',
    '{{.Reference}} {{.Digest}} {{.LayerCount}}',
    'ghcr.io/org/app',
  ]);
  assert.equal(tpl.stdout, `ghcr.io/org/app:v1 ${mid.manifestDigest} 2\n`);
  const docker = await cli([
    '--home',
    dir,
    'images',
    '--format',
    '{{.Repository}}\\t{{.Tag}}\\t{{.ID}}',
    'busybox:1.36',
  ]);
  assert.equal(
    docker.stdout,
    `busybox\t1.36\t${(await Image.getLocal(b, 'busybox:1.36')).manifestDigest.slice(7, 19)}\n`,
  );
  const json1 = await cli(['--home', dir, 'images', '--format', '{{json .}}', 'ghcr.io/org/app']);
  assert.deepEqual(JSON.parse(json1.stdout), JSON.parse(JSON.stringify(await Image.getLocal(b, 'ghcr.io/org/app:v1'))));
  const tbl = await cli(['--home', dir, 'images', '--format', 'table {{.Repository}}\\t{{.Tag}}', 'busybox']);
  assert.equal(tbl.stdout, 'REPOSITORY   TAG\nbusybox      1.36\nbusybox      latest\n');
  const bad = await cli(['--home', dir, 'images', '--format', '{{.Nope}}']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown field \.Nope/);
});

test('prune: reference=REPO matches every tag (docker), the report lists pinned images kept and labels skipped items', async (t) => {
  const { dir, b, mid, pinned } = await seeded(t);
  const dry = await cli(['--home', dir, 'image', 'prune', '--dry-run', '--filter', 'reference=busybox']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^Would remove:\n {2}reference busybox:1\.36\n {2}reference busybox:latest\n/);
  const pinnedRef = await cli([
    '--home',
    dir,
    'image',
    'prune',
    '--dry-run',
    '--format',
    'json',
    '--filter',
    'reference=pinned',
  ]);
  const rep = JSON.parse(pinnedRef.stdout);
  assert.deepEqual(rep.removed.references, []);
  assert.deepEqual(rep.keptPinned, [
    { manifestDigest: pinned.manifestDigest, references: ['pinned:1'], pins: [{ kind: 'snapshot', name: 'nightly' }] },
  ]);
  // A moved tag leaves its old manifest without refs; a running operation holds that image's
  // lock: prune skips it and says why.
  const moved = await publishFakeImage(b, { refs: ['moving:1'], layers: ['m1'] });
  await publishFakeImage(b, { refs: ['moving:1'], layers: ['m2'] });
  const store = await b._open('write');
  const full = await withLock(store, 'image', moved.manifestDigest, () => cli(['--home', dir, 'image', 'prune', '-y']));
  assert.equal(full.status, 0, full.stderr);
  assert.match(full.stdout, /^Untagged: busybox:1\.36\n/);
  assert.ok(full.stdout.includes(`Deleted: ${mid.manifestDigest}\n`));
  assert.ok(!full.stdout.includes(`Deleted: ${moved.manifestDigest}\n`));
  assert.match(full.stdout, /^Skipped \(held by another running operation; the next prune retries them\): 1$/m);
  assert.match(
    full.stdout,
    /^Kept 1 pinned image\(s\):\n {2}pinned:1 \([0-9a-f]{12}\): pinned by snapshot 'nightly'$/m,
  );
});

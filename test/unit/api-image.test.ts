/**
 * The Image API over real SQLite and real files (docs/api.md §2, acceptance A1, A4, A6–A8, A10–A17,
 * A21, A22, A24, A26), with images published through publishImage by test/helpers/index-fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import {
  Image,
  ImageHandle,
  ImageInUseError,
  ImageReferencedError,
  ImageNotFoundError,
  InvalidReferenceError,
  LocalBackend,
  MsbError,
  Sandbox,
  Snapshot,
  InvalidArgumentError,
  PinNotFoundError,
} from '../../src/index.js';
import { publishImage } from '../../src/store/publish.js';
import { familiarOf } from '../../src/reference/reference.js';
import { parseReference } from '../../src/reference/reference.js';
import { allocOf, publishFakeImage } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';

async function home(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  const b = LocalBackend.lazy({ home: dir });
  t.after(async () => {
    await b.close();
    cleanup();
  });
  return { dir, b };
}

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (lstatSync(p).isDirectory()) walk(p);
      else out.push(p.slice(dir.length));
    }
  };
  walk(dir);
  return out.sort();
}

test('A1: a fresh home lists [] and creates nothing; get("python") → IMAGE_NOT_FOUND python:latest', async (t) => {
  const { dir, b } = await home(t);
  assert.deepEqual(await Image.listLocal(b), []);
  await assert.rejects(
    Image.getLocal(b, 'python'),
    (e: unknown) => e instanceof ImageNotFoundError && e.reference === 'python:latest',
  );
  await assert.rejects(Image.inspectLocal(b, 'python'), ImageNotFoundError);
  const du = await Image.diskUsageLocal(b);
  assert.equal(du.totalBytes, 0);
  assert.equal(du.reclaimableBytes, null);
  assert.equal(existsSync(dir) ? readdirSync(dir).length : 0, 0, 'nothing created');
});

test('every spelling of one reference resolves to one image with the familiar form', async (t) => {
  const { b } = await home(t);
  await publishFakeImage(b, { refs: ['python'], layers: ['py'] });
  const spellings = [
    'python',
    'python:latest',
    'docker.io/library/python:latest',
    'index.docker.io/library/python',
    'library/python',
  ];
  const handles = await Promise.all(spellings.map((s) => Image.getLocal(b, s)));
  for (const h of handles) assert.deepEqual(h.toJSON(), handles[0]!.toJSON());
  assert.equal(handles[0]!.reference, 'python:latest');
  assert.equal(handles[0]!.canonicalReference, 'docker.io/library/python:latest');
  assert.equal((await Image.listLocal(b)).length, 1);
  // Passing handle.reference back addresses the same image.
  assert.deepEqual((await Image.inspectLocal(b, handles[0]!.reference)).handle.toJSON(), handles[0]!.toJSON());
});

test('A4: malformed references are INVALID_REFERENCE, never not-found; a digest selector gives the newest ref', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['older:1'], layers: ['x'], now: 1000 });
  await publishFakeImage(b, { refs: ['newer:1'], layers: ['x'], now: 2000 });
  // (64 lowercase hex digits are a full image ID now: see api-image-ids.test.ts.)
  for (const bad of ['Python', 'Foo/bar', 'app@sha256:abc', '', 'a//b', '-app', 'app:tag:x', 'A'.repeat(64)]) {
    for (const call of [Image.getLocal, Image.inspectLocal, Image.removeLocal]) {
      await assert.rejects(
        call(b, bad),
        (e: unknown) => e instanceof InvalidReferenceError && (e as MsbError).code === 'INVALID_REFERENCE',
        bad,
      );
    }
  }
  const h = await Image.getLocal(b, img.manifestDigest);
  assert.equal(h.reference, 'newer:1');
  assert.equal((await Image.inspectLocal(b, img.manifestDigest)).handle.reference, 'newer:1');
  await assert.rejects(Image.getLocal(b, 'sha256:' + '0'.repeat(64)), ImageNotFoundError);
});

test('A6: sizeBytes = Σ st_blocks×512 of fsmeta + VMDK + distinct layer files', async (t) => {
  const { dir, b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['sized'], layers: ['s1', 's2', 's1'], layerBlocks: [3, 2, 3] });
  const store = await b._open('write');
  let expected = allocOf(store.paths.fsmeta(img.manifestDigest)) + allocOf(store.paths.vmdk(img.manifestDigest));
  for (const d of new Set(img.diffIds)) expected += allocOf(store.paths.layer(d));
  const h = await Image.getLocal(b, 'sized');
  assert.equal(h.sizeBytes, expected);
  assert.equal(h.layerCount, 3);
  void dir;
});

test('A7: createdAt is kept and lastUsedAt advances on a re-publish; get/inspect/list change neither', async (t) => {
  const { b } = await home(t);
  await publishFakeImage(b, { refs: ['t:1'], layers: ['a'], now: 1_000_000 });
  const h1 = await Image.getLocal(b, 't:1');
  await Image.inspectLocal(b, 't:1');
  await Image.listLocal(b);
  assert.deepEqual((await Image.getLocal(b, 't:1')).toJSON(), h1.toJSON());
  await publishFakeImage(b, { refs: ['t:1'], layers: ['a'], now: 2_000_000 });
  const h2 = await Image.getLocal(b, 't:1');
  assert.equal(h2.createdAt.getTime(), 1_000_000);
  assert.equal(h2.lastUsedAt.getTime(), 2_000_000);
});

test('A8: list is newest first, ties by canonical reference; two tags on one manifest give two handles', async (t) => {
  const { b } = await home(t);
  await publishFakeImage(b, { refs: ['a'], layers: ['1'], now: 1000 });
  await publishFakeImage(b, { refs: ['b'], layers: ['2'], now: 2000 });
  await publishFakeImage(b, { refs: ['c'], layers: ['3'], now: 3000 });
  assert.deepEqual(
    (await Image.listLocal(b)).map((h) => h.reference),
    ['c:latest', 'b:latest', 'a:latest'],
  );
  const two = await publishFakeImage(b, { refs: ['zz:1', 'ghcr.io/o/x:1', 'aa:1'], layers: ['4'], now: 4000 });
  const list = await Image.listLocal(b);
  assert.deepEqual(
    list.slice(0, 3).map((h) => h.canonicalReference),
    ['docker.io/library/aa:1', 'docker.io/library/zz:1', 'ghcr.io/o/x:1'],
  );
  assert.ok(list.slice(0, 3).every((h) => h.manifestDigest === two.manifestDigest));
  assert.ok(list.every((h) => h instanceof ImageHandle));
});

test('A10/A9: inspect maps config fields, and layers match the manifest descriptors', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, {
    refs: ['cfg'],
    layers: ['l0', 'l1', 'l2', 'l3', 'l4'],
    layerBlocks: [1, 2, 3, 1, 2],
    config: {
      Env: ['A=1', 'B=2'],
      Cmd: ['python3'],
      Entrypoint: [],
      WorkingDir: '',
      User: '',
      Labels: { 'org.example.feature': 'enabled' },
      StopSignal: 'SIGINT',
    },
  });
  const d = await Image.inspectLocal(b, 'cfg');
  assert.deepEqual(d.config, {
    digest: img.configDigest,
    env: ['A=1', 'B=2'],
    cmd: ['python3'],
    entrypoint: [],
    workingDir: null,
    user: null,
    labels: { 'org.example.feature': 'enabled' },
    stopSignal: 'SIGINT',
  });
  assert.equal(d.layers.length, 5);
  assert.equal(d.handle.layerCount, 5);
  const store = await b._open('read');
  d.layers.forEach((l, i) => {
    assert.equal(l.position, i);
    assert.equal(l.diffId, img.diffIds[i]);
    assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    assert.equal(l.compressedSizeBytes, 1000 + i);
    assert.equal(l.erofsSizeBytes, lstatSync(store!.paths.layer(l.diffId)).size);
  });
  const bare = await publishFakeImage(b, { refs: ['bare'], layers: ['b0'], config: {} });
  const c2 = (await Image.inspectLocal(b, 'bare')).config!;
  assert.deepEqual(c2, {
    digest: bare.configDigest,
    env: [],
    cmd: null,
    entrypoint: null,
    workingDir: null,
    user: null,
    labels: null,
    stopSignal: null,
  });
});

test('A11: artifact paths are absolute real paths in manifest order that exist; pins list a sandbox', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['art'], layers: ['x', 'y', 'x'] });
  const store = await b._open('write');
  // Sandbox.create's commit: pin written in the publish transaction (pull is elsewhere).
  const raw = store.index.db.prepare('SELECT raw FROM manifest WHERE digest = ?').get(img.manifestDigest) as {
    raw: Buffer;
  };
  const cfg = store.index.db.prepare('SELECT raw FROM config WHERE digest = ?').get(img.configDigest) as {
    raw: Buffer;
  };
  await publishImage(await b._open('write'), {
    references: [parseReference('art').canonical],
    manifest: {
      digest: img.manifestDigest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      raw: raw.raw,
      source: 'registry',
    },
    platform: { os: 'linux', architecture: 'amd64', variant: null },
    config: { digest: img.configDigest, raw: cfg.raw },
    layers: img.diffIds.map((d, i) => ({
      diffId: d,
      blobDigest: 'sha256:' + String(i).repeat(64),
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      compressedSizeBytes: 1,
    })),
    pin: { kind: 'sandbox', key: 'web', name: 'web', reference: parseReference('art').canonical },
  });
  const d = await Image.inspectLocal(b, 'art');
  const paths = [d.artifacts.vmdkPath, d.artifacts.fsmetaPath, ...d.artifacts.layers.map((l) => l.path)];
  for (const p of paths) {
    assert.ok(isAbsolute(p));
    assert.ok(existsSync(p), p);
  }
  assert.deepEqual(
    d.artifacts.layers.map((l) => l.diffId),
    img.diffIds,
  );
  assert.deepEqual(
    d.artifacts.layers.map((l) => l.position),
    [0, 1, 2],
  );
  assert.deepEqual(d.pins, [{ kind: 'sandbox', name: 'web' }]);
  const sb = await Sandbox.getLocal(b, 'web');
  assert.equal(sb.manifestDigest, img.manifestDigest);
  assert.equal(sb.reference, 'art:latest');
  assert.deepEqual(sb.rootfs, d.artifacts);
  assert.deepEqual(sb.platform, { os: 'linux', architecture: 'amd64', variant: null });
});

test('A12/A15: remove of an unknown ref is IMAGE_NOT_FOUND; "python" removes docker.io/library/python:latest; untagging one of two deletes no file', async (t) => {
  const { dir, b } = await home(t);
  await assert.rejects(Image.removeLocal(b, 'nope:1'), ImageNotFoundError);
  await publishFakeImage(b, { refs: ['python', 'python:3'], layers: ['p'] });
  const before = files(dir);
  const r = await Image.removeLocal(b, 'python');
  assert.deepEqual(r, {
    untagged: ['python:latest'],
    deletedManifests: [],
    deletedLayers: [],
    bytesReclaimed: null,
    pinnedBy: [],
  });
  assert.equal((await Image.getLocal(b, 'python:3')).reference, 'python:3');
  assert.deepEqual(files(dir), before);
  await assert.rejects(Image.removeLocal(b, 'docker.io/library/python:latest'), ImageNotFoundError);
});

test('A13: a manifest pinned by sandbox web and snapshot nightly: remove without force → IMAGE_IN_USE naming both; untagging one of two is allowed', async (t) => {
  const { dir, b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['pinned:1', 'pinned:2'], layers: ['q'] });
  const store = await b._open('write');
  store.index.db.prepare("INSERT INTO pin VALUES ('sandbox', 'web', 'web', ?, NULL, 1)").run(img.manifestDigest);
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '5'.repeat(64),
    imageManifestDigest: img.manifestDigest,
    name: 'nightly',
  });
  const r = await Image.removeLocal(b, 'pinned:1');
  assert.deepEqual(r.untagged, ['pinned:1']);
  const rows = () => store.index.db.prepare('SELECT reference FROM image_ref').all();
  const before = { files: files(dir), rows: rows() };
  await assert.rejects(Image.removeLocal(b, 'pinned:2'), (e: unknown) => {
    assert.ok(e instanceof ImageInUseError);
    assert.equal(e.code, 'IMAGE_IN_USE');
    assert.equal(e.manifestDigest, img.manifestDigest);
    assert.deepEqual(e.pins, [
      { kind: 'sandbox', name: 'web' },
      { kind: 'snapshot', name: 'nightly' },
    ]);
    assert.match(e.message, /sandbox 'web', snapshot 'nightly'/);
    return true;
  });
  await assert.rejects(Image.removeLocal(b, img.manifestDigest), ImageInUseError);
  assert.deepEqual({ files: files(dir), rows: rows() }, before);
});

test('A14: force-removing the last tag of a pinned image keeps manifest and files; after unpinning, prune removes everything', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['keep'], layers: ['k1', 'k2'] });
  const store = await b._open('write');
  store.index.db
    .prepare("INSERT INTO pin VALUES ('sandbox', 'web', 'web', ?, ?, 1)")
    .run(img.manifestDigest, 'docker.io/library/keep:latest');
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '6'.repeat(64),
    imageManifestDigest: img.manifestDigest,
    name: 'nightly',
  });
  const r = await Image.removeLocal(b, 'keep', true);
  assert.deepEqual(r, {
    untagged: ['keep:latest'],
    deletedManifests: [],
    deletedLayers: [],
    bytesReclaimed: null,
    pinnedBy: [
      { kind: 'sandbox', name: 'web' },
      { kind: 'snapshot', name: 'nightly' },
    ],
  });
  assert.deepEqual(await Image.listLocal(b), []);
  const artifacts = [
    store.paths.fsmeta(img.manifestDigest),
    store.paths.vmdk(img.manifestDigest),
    ...img.diffIds.map((d) => store.paths.layer(d)),
  ];
  for (const p of artifacts) assert.ok(existsSync(p));
  assert.ok(store.index.db.prepare('SELECT 1 FROM manifest WHERE digest = ?').get(img.manifestDigest));
  const sb = await Sandbox.getLocal(b, 'web');
  for (const p of [sb.rootfs.vmdkPath, sb.rootfs.fsmetaPath, ...sb.rootfs.layers.map((l) => l.path)])
    assert.ok(existsSync(p));
  const p0 = await Image.pruneLocal(b);
  assert.equal(p0.manifestsRemoved, 0, 'pinned manifest kept by prune');
  await Sandbox.removeLocal(b, 'web');
  await Snapshot.removeLocal(b, 'nightly');
  const p1 = await Image.pruneLocal(b);
  assert.equal(p1.manifestsRemoved, 1);
  assert.equal(p1.layersRemoved, 2);
  for (const p of artifacts) assert.equal(existsSync(p), false);
  assert.equal((store.index.db.prepare('SELECT COUNT(*) AS n FROM config').get() as { n: number }).n, 0);
});

test('A16: removing the last tag of a 5-layer image deletes its fsmeta, VMDK and the layers only it used', async (t) => {
  const { b } = await home(t);
  const busybox = await publishFakeImage(b, { refs: ['busybox'], layers: ['L1'] });
  const multi = await publishFakeImage(b, {
    refs: ['multilayer'],
    layers: ['L1', 'L2', 'L3', 'L4', 'L5'],
    layerBlocks: [1, 2, 3, 4, 5],
  });
  const store = await b._open('write');
  const doomed = [
    store.paths.fsmeta(multi.manifestDigest),
    store.paths.vmdk(multi.manifestDigest),
    ...multi.diffIds.slice(1).map((d) => store.paths.layer(d)),
  ];
  const bytes = doomed.reduce((s, p) => s + allocOf(p), 0);
  const r = await Image.removeLocal(b, 'multilayer');
  assert.deepEqual(r, {
    untagged: ['multilayer:latest'],
    deletedManifests: [multi.manifestDigest],
    deletedLayers: [...multi.diffIds.slice(1)].sort(),
    bytesReclaimed: bytes,
    pinnedBy: [],
  });
  for (const p of doomed) assert.equal(existsSync(p), false, p);
  assert.ok(existsSync(store.paths.layer(busybox.diffIds[0]!)), 'shared L1 kept');
  assert.equal((await Image.getLocal(b, 'busybox')).manifestDigest, busybox.manifestDigest);
});

test('A17: remove("sha256:<m>") of a manifest with two tags needs force, then untags both and deletes the manifest; a refless unpinned manifest is removable by digest', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['two:a', 'two:b'], layers: ['t'] });
  await assert.rejects(Image.removeLocal(b, img.manifestDigest), (e: unknown) => {
    assert.ok(e instanceof ImageReferencedError);
    assert.equal(e.code, 'IMAGE_REFERENCED');
    assert.deepEqual(e.references, ['two:a', 'two:b']);
    assert.match(e.message, /referenced by two:a, two:b; pass \{ force: true \} to untag them all$/);
    return true;
  });
  assert.equal((await Image.listLocal(b)).length, 2, 'nothing untagged');
  const r = await Image.removeLocal(b, img.manifestDigest, { force: true });
  assert.deepEqual([...r.untagged].sort(), ['two:a', 'two:b']);
  assert.deepEqual(r.deletedManifests, [img.manifestDigest]);
  const other = await publishFakeImage(b, { refs: ['moving'], layers: ['m1'] });
  await publishFakeImage(b, { refs: ['moving'], layers: ['m2'] }); // the tag moves: `other` has no ref now
  const r2 = await Image.removeLocal(b, other.manifestDigest);
  assert.deepEqual(r2.untagged, []);
  assert.deepEqual(r2.deletedManifests, [other.manifestDigest]);
});

test('A18: a sandbox pins a digest: after its tag moves and is removed, prune keeps the pinned manifest', async (t) => {
  const { b } = await home(t);
  const m1 = await publishFakeImage(b, { refs: ['t'], layers: ['v1'] });
  const store = await b._open('write');
  store.index.db
    .prepare("INSERT INTO pin VALUES ('sandbox', 's', 's', ?, 'docker.io/library/t:latest', 1)")
    .run(m1.manifestDigest);
  const m2 = await publishFakeImage(b, { refs: ['t'], layers: ['v2'] });
  assert.equal((await Image.getLocal(b, 't')).manifestDigest, m2.manifestDigest);
  await Image.removeLocal(b, 't');
  const p = await Image.pruneLocal(b);
  assert.deepEqual(p.removed.manifests, []);
  assert.ok(store.index.db.prepare('SELECT 1 FROM manifest WHERE digest = ?').get(m1.manifestDigest));
  assert.ok(existsSync(store.paths.fsmeta(m1.manifestDigest)));
});

test('A21: two LocalBackends on two homes share nothing', async (t) => {
  const one = await home(t);
  const two = await home(t);
  await publishFakeImage(one.b, { refs: ['only-in-one'], layers: ['o'] });
  assert.deepEqual(await Image.listLocal(two.b), []);
  await publishFakeImage(two.b, { refs: ['only-in-two'], layers: ['o'] });
  const r = await Image.pruneLocal(two.b);
  assert.equal(r.imageRefsRemoved, 1);
  assert.deepEqual(
    (await Image.listLocal(one.b)).map((h) => h.reference),
    ['only-in-one:latest'],
  );
});

test('A22: lazy() creates nothing before its first call; builder().build() creates a migrated db', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const h = join(dir, 'h');
  const lazy = LocalBackend.lazy({ home: h });
  assert.equal(lazy.home, h);
  assert.equal(lazy.kind, 'local');
  assert.equal(existsSync(h), false);
  const built = await LocalBackend.builder().home(h).build();
  assert.ok(existsSync(join(h, 'db', 'msb.db')));
  const s = await built._open('read');
  assert.equal((s!.index.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v, 2);
  assert.equal(s!.cacheDir, join(h, 'cache'));
  await built.close();
  await lazy.close();
});

test('A23 (index part): sandbox names are validated; unknown pins are PIN_NOT_FOUND', async (t) => {
  const { b } = await home(t);
  await assert.rejects(Sandbox.createLocal(b, 'a/b', { image: 'x' }), InvalidArgumentError);
  await assert.rejects(Sandbox.createLocal(b, '', { image: 'x' }), InvalidArgumentError);
  await assert.rejects(
    Sandbox.getLocal(b, 'zzz'),
    (e: unknown) => e instanceof PinNotFoundError && e.code === 'PIN_NOT_FOUND' && e.kind === 'sandbox',
  );
  await assert.rejects(Sandbox.removeLocal(b, 'zzz'), PinNotFoundError);
  await assert.rejects(Snapshot.removeLocal(b, 'zzz'), PinNotFoundError);
  assert.deepEqual(await Sandbox.listLocal(b), []);
});

test('A24: Snapshot.index of an uncached manifest succeeds; prune keeps it once pulled; names are unique', async (t) => {
  const { b } = await home(t);
  const later = await publishFakeImage(b, { refs: ['snap-src'], layers: ['s'] });
  await Image.removeLocal(b, 'snap-src');
  await Image.pruneLocal(b);
  const s = await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '7'.repeat(64),
    imageManifestDigest: later.manifestDigest,
    name: 'nightly',
    reference: 'snap-src',
  });
  assert.deepEqual(
    { ...s, createdAt: 0 },
    {
      digest: 'sha256:' + '7'.repeat(64),
      name: 'nightly',
      imageManifestDigest: later.manifestDigest,
      reference: 'snap-src:latest',
      createdAt: 0,
    },
  );
  await publishFakeImage(b, { refs: ['snap-src'], layers: ['s'] });
  const r = await Image.pruneLocal(b);
  assert.equal(r.manifestsRemoved, 0);
  assert.equal(r.imageRefsRemoved, 0, 'a ref of a pinned manifest is not a prune candidate');
  await assert.rejects(
    Snapshot.indexLocal(b, {
      digest: 'sha256:' + '8'.repeat(64),
      imageManifestDigest: later.manifestDigest,
      name: 'nightly',
    }),
    InvalidArgumentError,
  );
  await assert.rejects(
    Snapshot.indexLocal(b, { digest: 'sha256:bad', imageManifestDigest: later.manifestDigest }),
    InvalidArgumentError,
  );
  // upsert by digest keeps one row
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '7'.repeat(64),
    imageManifestDigest: later.manifestDigest,
    name: 'renamed',
  });
  assert.deepEqual(
    (await Snapshot.listLocal(b)).map((x) => x.name),
    ['renamed'],
  );
  await Snapshot.removeLocal(b, 'sha256:' + '7'.repeat(64));
  assert.deepEqual(await Snapshot.listLocal(b), []);
});

test('tag: target names the source manifest; re-pointing keeps createdAt; a mismatching target digest is refused', async (t) => {
  const { b } = await home(t);
  const a = await publishFakeImage(b, { refs: ['src:1'], layers: ['a'] });
  const bimg = await publishFakeImage(b, { refs: ['other:1'], layers: ['b'] });
  const h = await Image.tagLocal(b, 'src:1', 'myorg/app:v1');
  assert.equal(h.reference, 'myorg/app:v1');
  assert.equal(h.manifestDigest, a.manifestDigest);
  const created = h.createdAt.getTime();
  await new Promise((r) => setTimeout(r, 5));
  const h2 = await Image.tagLocal(b, bimg.manifestDigest, 'myorg/app:v1');
  assert.equal(h2.manifestDigest, bimg.manifestDigest);
  assert.equal(h2.createdAt.getTime(), created);
  await assert.rejects(Image.tagLocal(b, 'nope', 'x'), ImageNotFoundError);
  await assert.rejects(Image.tagLocal(b, 'src:1', 'Bad'), InvalidReferenceError);
  await assert.rejects(Image.tagLocal(b, 'src:1', `x@${bimg.manifestDigest}`), InvalidArgumentError);
});

test('A26: every rejection is an MsbError with a documented code', async (t) => {
  const { b } = await home(t);
  const codes = new Set([
    'IMAGE_NOT_FOUND',
    'IMAGE_IN_USE',
    'UNSUPPORTED',
    'INVALID_REFERENCE',
    'INVALID_ARGUMENT',
    'NOT_CACHED',
    'PLATFORM_NOT_FOUND',
    'DIGEST_MISMATCH',
    'MANIFEST_INVALID',
    'CONFIG_INVALID',
    'LAYER_INVALID',
    'REGISTRY_AUTH',
    'REGISTRY',
    'NETWORK',
    'ARCHIVE_INVALID',
    'CACHE_CORRUPT',
    'LIMIT_EXCEEDED',
    'ABORTED',
    'SETTINGS_INVALID',
    'IO',
    'DATABASE',
    'PIN_NOT_FOUND',
  ]);
  const calls: (() => Promise<unknown>)[] = [
    () => Image.getLocal(b, 'x'),
    () => Image.getLocal(b, 'X'),
    () => Image.removeLocal(b, 'x'),
    () => Image.pruneLocal(b, { unusedFor: 'soon' }),
    () => Image.pruneLocal(b, { filter: { reference: [] } }),
    () => Image.loadLocal(b, '/nonexistent'),
    () => Image.saveLocal(b, 'x', '/tmp/x'),
    () => Sandbox.getLocal(b, 'x'),
    () => Snapshot.indexLocal(b, { digest: 'x', imageManifestDigest: 'y' }),
    () => Image.tagLocal(b, 'a', 'b'),
  ];
  for (const c of calls) {
    await assert.rejects(
      c(),
      (e: unknown) => e instanceof MsbError && codes.has(e.code) && String(e).startsWith(`${e.code}: `),
    );
  }
});

test('familiarOf (fast path over stored canonical refs) agrees with the reference parser', () => {
  const inputs = [
    'python',
    'python:3.12',
    'library/python',
    'myorg/app',
    'docker.io/my.org/app',
    'ghcr.io/org/app:v1',
    'localhost:5000/app',
    'localhost/app',
    'localhost',
    'example.com',
    '127.0.0.1:5000/peers/busybox',
    '[::1]:5000/app:v2',
    'a/b/c/d',
    `python@sha256:${'a'.repeat(64)}`,
    `python:3.12@sha256:${'a'.repeat(64)}`,
    `library/sha256:${'a'.repeat(64)}`,
    `sha384:${'b'.repeat(96)}`,
    'docker.io/library/a/b',
    'docker.io/localhost/x',
    'library/library',
  ];
  for (const i of inputs) {
    const p = parseReference(i);
    assert.equal(familiarOf(p.canonical), p.familiar, i);
  }
});

/**
 * Property: for random caches (shared layers, several tags, pins, leases, refless manifests, temp
 * files, orphans, hard links), `prune({dryRun:true})` predicts the real prune exactly, the real
 * prune's bytesReclaimed equals the allocated bytes of the files that disappeared, nothing pinned
 * or leased loses a file, and a second prune finds nothing. The same for the size budget's
 * eviction (docs/storage.md §11): its dry run predicts it, it evicts least recently used images
 * first, never a pinned or leased one, and it reaches the low mark whenever what is not held
 * suffices. Real SQLite and real files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { linkSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, LocalBackend, type ImagePruneReport } from '../../src/index.js';
import { createLease } from '../../src/store/lease.js';
import { upsertLayerRow } from '../../src/store/publish.js';
import { publishFakeImage, fileAlloc } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';
import { parseReference } from '../../src/reference/reference.js';

interface SceneShape {
  /** how often an image is pinned, and (separately) leased */
  held: fc.Arbitrary<boolean>;
  images: { minLength: number; maxLength: number };
  /** tag names to draw from, and how many tags an image has at least */
  tags: string[];
  minTags: number;
}

const imageArb = (o: SceneShape) =>
  fc.record({
    tags: fc.uniqueArray(fc.constantFrom(...o.tags), { minLength: o.minTags, maxLength: 2 }),
    layers: fc.array(fc.constantFrom('L0', 'L1', 'L2', 'L3', 'L4', 'L5'), { minLength: 1, maxLength: 3 }),
    pinned: o.held,
    leased: o.held,
    ageHours: fc.integer({ min: 0, max: 5 }),
  });

const sceneArbOf = (o: SceneShape) =>
  fc.record({
    images: fc.array(imageArb(o), o.images),
    temps: fc.array(fc.record({ ageMin: fc.integer({ min: 0, max: 180 }), bytes: fc.integer({ min: 0, max: 9000 }) }), {
      maxLength: 3,
    }),
    orphans: fc.integer({ min: 0, max: 2 }),
    /** layer rows no manifest uses yet (a pull between its layer commit and its image commit) */
    dangling: fc.array(fc.boolean(), { maxLength: 2 }),
    hardlinkFirstLayer: fc.boolean(),
    restrict: fc.constantFrom('none', 'unusedFor', 'filter'),
  });

const sceneArb = sceneArbOf({
  held: fc.boolean(),
  images: { minLength: 0, maxLength: 5 },
  tags: ['a', 'b', 'c', 'd', 'e', 'f'],
  minTags: 0,
});
/**
 * Eviction must have images nothing holds, to evict some and keep others: more images, mostly
 * tagged, fewer tags moved between them, rarer pins and leases.
 */
const budgetSceneArb = sceneArbOf({
  held: fc.constantFrom(false, false, false, true),
  images: { minLength: 3, maxLength: 7 },
  tags: [...'abcdefghijkl'],
  minTags: 1,
});

type Scene = typeof sceneArb extends fc.Arbitrary<infer T> ? T : never;

/** Publishes the scene's images, pins, leases, temp files, dangling rows, orphans and hard links. */
async function buildScene(b: LocalBackend, dir: string, scene: Scene) {
  const store = await b._open('write');
  const lease = await createLease(await b._open('write'), 'pull');
  const protectedFiles: string[] = [];
  const leasedDigests = new Set<string>();
  let salt = 0;
  for (const img of scene.images) {
    const refs = img.tags.map((t) => `img-${t}`);
    const pub = await publishFakeImage(b, {
      refs,
      layers: img.layers,
      salt: String(salt++),
      now: Date.now() - img.ageHours * 3600_000,
    });
    for (const r of pub.canonical)
      store.index.db
        .prepare('UPDATE image_ref SET last_used_at = ? WHERE reference = ?')
        .run(Date.now() - img.ageHours * 3600_000, r);
    if (img.pinned)
      store.index.db
        .prepare("INSERT OR REPLACE INTO pin VALUES ('sandbox', ?, ?, ?, NULL, 1)")
        .run(`s${salt}`, `s${salt}`, pub.manifestDigest);
    if (img.leased) leasedDigests.add(pub.manifestDigest);
    if (img.leased)
      await lease.addItems([
        { kind: 'manifest', value: pub.manifestDigest },
        ...pub.diffIds.map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
    if (img.pinned || img.leased) {
      protectedFiles.push(
        store.paths.fsmeta(pub.manifestDigest),
        store.paths.vmdk(pub.manifestDigest),
        ...pub.diffIds.map((d) => store.paths.layer(d)),
      );
    }
  }
  scene.temps.forEach((t, i) => {
    const p = join(store.paths.tmpDir, `layer-sha256_${String(i).repeat(64)}-1-x.tmp`);
    writeFileSync(p, Buffer.alloc(t.bytes, 1));
    const d = new Date(Date.now() - t.ageMin * 60_000);
    utimesSync(p, d, d);
  });
  for (let i = 0; i < scene.dangling.length; i++) {
    const d =
      'sha256:' +
      String(i + 1)
        .repeat(64)
        .slice(0, 63) +
      'd';
    writeFileSync(store.paths.layer(d), Buffer.alloc(8192, 4));
    await upsertLayerRow(await b._open('write'), { diffId: d, erofsSizeBytes: 8192, inodes: 1, blocks: 2 });
    if (scene.dangling[i]) {
      await lease.addItem('layer', d);
      protectedFiles.push(store.paths.layer(d));
    }
  }
  for (let i = 0; i < scene.orphans; i++)
    writeFileSync(store.paths.layer('sha256:' + String(i + 5).repeat(64)), Buffer.alloc(4096 * (i + 1), 2));
  if (scene.hardlinkFirstLayer) {
    const first = readdirSync(store.paths.layersDir)[0];
    if (first) linkSync(join(store.paths.layersDir, first), join(dir, 'outside-link'));
  }
  return { store, lease, protectedFiles, leasedDigests };
}

const comparable = (r: ImagePruneReport) => {
  const { dryRun: _d, errors: _e, ...rest } = r;
  return rest;
};

test('property: dry run = real run, byte-exact reclaim, roots keep their files, prune is idempotent', async () => {
  await fc.assert(
    fc.asyncProperty(sceneArb, async (scene) => {
      const { dir, cleanup } = tempDir();
      const b = await LocalBackend.builder().home(dir).build();
      try {
        const { store, lease, protectedFiles } = await buildScene(b, dir, scene);
        const opts =
          scene.restrict === 'unusedFor'
            ? { unusedFor: '2h' }
            : scene.restrict === 'filter'
              ? { filter: { reference: 'img-[ab]*'.replace('[ab]', '?') } }
              : {};
        const before = fileAlloc(store.cacheDir, { reclaimable: true });
        const dry = await Image.pruneLocal(b, { ...opts, dryRun: true });
        assert.deepEqual(fileAlloc(store.cacheDir, { reclaimable: true }), before);
        const real = await Image.pruneLocal(b, opts);
        assert.deepEqual(real.errors, []);
        assert.deepEqual(comparable(dry), comparable(real));
        const after = fileAlloc(store.cacheDir, { reclaimable: true });
        let gone = 0;
        let goneFiles = 0;
        for (const [p, bytes] of before)
          if (!after.has(p)) {
            gone += bytes;
            goneFiles++;
          }
        assert.equal(real.bytesReclaimed, goneFiles === 0 ? null : gone);
        for (const p of protectedFiles) assert.ok(after.has(p.slice(store.cacheDir.length)), `protected ${p} kept`);
        const again = await Image.pruneLocal(b, opts);
        assert.equal(
          again.imageRefsRemoved +
            again.manifestsRemoved +
            again.layersRemoved +
            again.tempRemoved +
            again.orphansRemoved,
          0,
        );
        assert.equal(again.bytesReclaimed, null);
        await lease.release();
      } finally {
        await b.close();
        cleanup();
      }
    }),
    { numRuns: 30 },
  );
});

test('property: budget eviction — dry run = real run, LRU order, roots kept, under the low mark when it can be', async () => {
  let orderedRuns = 0;
  await fc.assert(
    fc.asyncProperty(budgetSceneArb, fc.integer({ min: 0, max: 60 }), async (scene, percent) => {
      const { dir, cleanup } = tempDir();
      const first = await LocalBackend.builder().home(dir).build();
      let b: LocalBackend | null = null;
      try {
        const { store, lease, protectedFiles, leasedDigests } = await buildScene(first, dir, scene);
        const total = (await Image.diskUsageLocal(first)).totalBytes;
        const before = fileAlloc(store.cacheDir, { reclaimable: true });
        // The index alone outweighs these small images: the budget asks for `percent` of the
        // image files (not of the whole cache) to go, so some runs evict a few images and keep others.
        const imageFiles = [...before]
          .filter(([p]) => /^\/(layers|fsmeta|vmdk)\//.test(p))
          .reduce((n, [, x]) => n + x, 0);
        const maxBytes = Math.max(1, total - Math.floor((imageFiles * percent) / 100));
        b = await LocalBackend.builder()
          .home(dir)
          .settings({ cache: { maxBytes, highWatermark: null, lowWatermark: null } })
          .build();
        const lastUse = new Map(
          (
            store.index.db
              .prepare(
                'SELECT m.digest, MAX(r.last_used_at) AS t FROM image_ref r JOIN manifest m ON m.id = r.manifest_id GROUP BY m.digest',
              )
              .all() as { digest: string; t: number }[]
          ).map((r) => [r.digest, r.t]),
        );
        const refsBefore = new Map(
          (
            store.index.db
              .prepare('SELECT r.reference, m.digest FROM image_ref r JOIN manifest m ON m.id = r.manifest_id')
              .all() as { reference: string; digest: string }[]
          ).map((r) => [r.reference, r.digest]),
        );
        const dry = await Image.pruneLocal(b, { budget: true, dryRun: true });
        assert.deepEqual(fileAlloc(store.cacheDir, { reclaimable: true }), before);
        const real = await Image.pruneLocal(b, { budget: true });
        assert.deepEqual(real.errors, []);
        assert.deepEqual(comparable(dry), comparable(real));
        const budget = real.budget!;
        assert.equal(budget.configured, true);
        assert.equal(budget.cacheBytes, total);
        const after = fileAlloc(store.cacheDir, { reclaimable: true });
        let gone = 0;
        let goneFiles = 0;
        for (const [p, bytes] of before)
          if (!after.has(p)) {
            gone += bytes;
            goneFiles++;
          }
        assert.equal(real.bytesReclaimed, goneFiles === 0 ? null : gone);
        for (const p of protectedFiles) assert.ok(after.has(p.slice(store.cacheDir.length)), `protected ${p} kept`);
        if (total <= maxBytes) assert.deepEqual(real.removed.references, []);
        // LRU: every evicted image was used no later than every image that stays and could have gone.
        const held = new Set(
          (store.index.db.prepare('SELECT manifest_digest AS d FROM pin').all() as { d: string }[]).map((r) => r.d),
        );
        const evicted = new Set(real.removed.references.map((r) => refsBefore.get(parseReference(r).canonical)!));
        const kept = [...lastUse.keys()].filter((d) => !evicted.has(d) && !held.has(d) && !leasedDigests.has(d));
        for (const e of evicted) for (const k of kept) assert.ok(lastUse.get(e)! <= lastUse.get(k)!, 'LRU order');
        // Runs where the order mattered: an evicted and a kept candidate with different last uses.
        if ([...evicted].some((e) => kept.some((k) => lastUse.get(e) !== lastUse.get(k)))) orderedRuns++;
        if (budget.enough && budget.toFreeBytes > 0)
          assert.ok((await Image.diskUsageLocal(b)).totalBytes <= budget.lowMarkBytes!, 'under the low mark');
        if (!budget.enough)
          assert.deepEqual(kept, [], 'short of the budget only once every image nothing holds is gone');
        await lease.release();
      } finally {
        await b?.close();
        await first.close();
        cleanup();
      }
    }),
    { numRuns: 30 },
  );
  assert.ok(orderedRuns >= 3, `only ${orderedRuns} of 30 runs evicted one image and kept another`);
});

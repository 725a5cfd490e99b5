/**
 * Property: for random caches (shared layers, several tags, pins, leases, refless manifests, temp
 * files, orphans, hard links), `prune({dryRun:true})` predicts the real prune exactly, the real
 * prune's bytesReclaimed equals the allocated bytes of the files that disappeared, nothing pinned
 * or leased loses a file, and a second prune finds nothing. Real SQLite and real files.
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

const imageArb = fc.record({
  tags: fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 0, maxLength: 2 }),
  layers: fc.array(fc.constantFrom('L0', 'L1', 'L2', 'L3', 'L4', 'L5'), { minLength: 1, maxLength: 3 }),
  pinned: fc.boolean(),
  leased: fc.boolean(),
  ageHours: fc.integer({ min: 0, max: 5 }),
});

const sceneArb = fc.record({
  images: fc.array(imageArb, { minLength: 0, maxLength: 5 }),
  temps: fc.array(fc.record({ ageMin: fc.integer({ min: 0, max: 180 }), bytes: fc.integer({ min: 0, max: 9000 }) }), {
    maxLength: 3,
  }),
  orphans: fc.integer({ min: 0, max: 2 }),
  /** layer rows no manifest uses yet (a pull between its layer commit and its image commit) */
  dangling: fc.array(fc.boolean(), { maxLength: 2 }),
  hardlinkFirstLayer: fc.boolean(),
  restrict: fc.constantFrom('none', 'unusedFor', 'filter'),
});

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
        const store = await b._open('write');
        const lease = await createLease(await b._open('write'), 'pull');
        const protectedFiles: string[] = [];
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

/**
 * A damaged index (issue 9 items 6, 9, 10; docs/storage.md §3.3–§3.4):
 *
 * - rows that disagree with the stored manifest: every kind of damage × (save refuses with
 *   CACHE_CORRUPT, `pull --policy never` repairs offline and the artifacts match the true layer
 *   list); stored bytes that cannot be trusted fail both;
 * - digests in index rows that are not digests: prune (real and dry run) records each one as that
 *   item's error and carries on, and never touches a path built from one;
 * - an empty index file while the cache belongs to an index: refused with a recovery hint in every
 *   mode, nothing created; the hint works.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import type { PullEvent } from '../../src/api/types.js';
import { tempDir } from '../helpers/env.js';
import { indexProblems, rows } from '../helpers/pull-env.js';
import { runCliBatch } from '../helpers/cli-batch.js';
import { assertCliFailure, dockerArchive, layerTar, msbRejection, sha } from '../helpers/archives.js';

const work = tempDir('msb-index-damage-');
const planted: string[] = [];
after(() => {
  for (const p of planted) rmSync(p, { force: true });
  work.cleanup();
});

function sql(home: string, statement: string, ...params: unknown[]): void {
  const db = new Database(join(home, 'db', 'msb.db'));
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare(statement).run(...params);
  } finally {
    db.close();
  }
}

/** An archive of `names.length` images, each with `layers` distinct layers. */
function archive(names: string[], layers = 3): Buffer {
  return dockerArchive(
    names.map((name, i) => ({
      repoTags: [name],
      layers: Array.from({ length: layers }, (_, j) => ({
        name: `${i}-${j}/layer.tar`,
        tar: layerTar(`f${j}.txt`, `${name} layer ${j}\n`),
      })),
    })),
  );
}

async function loaded(name: string, names: string[], layers = 3) {
  const home = join(work.dir, name);
  const backend = await LocalBackend.builder().home(home).build();
  await Image.loadLocal(backend, Readable.from([archive(names, layers)]));
  return { home, backend };
}

const MID = (home: string) =>
  rows<{ id: number }>(home, "SELECT manifest_id AS id FROM image_ref WHERE reference = 'docker.io/rel/three:1'")[0]!
    .id;

/** Damage kinds: each leaves rows that disagree with the stored manifest of rel/three:1. */
const DAMAGE: [string, (home: string, m: number) => void][] = [
  ['a middle row deleted', (h, m) => sql(h, 'DELETE FROM manifest_layer WHERE manifest_id = ? AND position = 1', m)],
  ['the last row deleted', (h, m) => sql(h, 'DELETE FROM manifest_layer WHERE manifest_id = ? AND position = 2', m)],
  [
    'a row added',
    (h, m) =>
      sql(
        h,
        `INSERT INTO manifest_layer (manifest_id, position, layer_id, blob_digest, media_type, compressed_size_bytes)
         SELECT manifest_id, 3, layer_id, blob_digest, media_type, compressed_size_bytes FROM manifest_layer
         WHERE manifest_id = ? AND position = 0`,
        m,
      ),
  ],
  [
    'two rows swapped',
    (h, m) => {
      sql(h, 'UPDATE manifest_layer SET position = 9 WHERE manifest_id = ? AND position = 0', m);
      sql(h, 'UPDATE manifest_layer SET position = 0 WHERE manifest_id = ? AND position = 2', m);
      sql(h, 'UPDATE manifest_layer SET position = 2 WHERE manifest_id = ? AND position = 9', m);
    },
  ],
  [
    'a blob digest changed',
    (h, m) =>
      sql(h, 'UPDATE manifest_layer SET blob_digest = ? WHERE manifest_id = ? AND position = 1', sha('other'), m),
  ],
  [
    'a row pointing at another layer (diff_id)',
    (h, m) =>
      sql(
        h,
        `UPDATE manifest_layer SET layer_id = (SELECT ml.layer_id FROM manifest_layer ml JOIN image_ref r
         ON r.manifest_id = ml.manifest_id WHERE r.reference = 'docker.io/rel/other:1' AND ml.position = 0)
         WHERE manifest_id = ? AND position = 1`,
        m,
      ),
  ],
  ['layer_count changed', (h, m) => sql(h, 'UPDATE manifest SET layer_count = 2 WHERE id = ?', m)],
  [
    'a gap in the positions',
    (h, m) => sql(h, 'UPDATE manifest_layer SET position = 7 WHERE manifest_id = ? AND position = 2', m),
  ],
];

test(`index rows vs the stored manifest: ${DAMAGE.length} damages × (save refuses, pull --policy never repairs offline)`, async () => {
  const H = await loaded('rows', ['rel/three:1', 'rel/other:1']);
  const truth = rows<{ d: string }>(
    H.home,
    `SELECT l.diff_id AS d FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id JOIN image_ref r
     ON r.manifest_id = ml.manifest_id WHERE r.reference = 'docker.io/rel/three:1' ORDER BY ml.position`,
  ).map((r) => r.d);
  assert.equal(truth.length, 3);
  for (const [what, damage] of DAMAGE) {
    damage(H.home, MID(H.home));
    const out = join(work.dir, 'out.tar');
    rmSync(out, { force: true });
    const e = await msbRejection(Image.saveLocal(H.backend, 'rel/three:1', out), what);
    assert.equal(e.code, 'CACHE_CORRUPT', `${what}: ${e.message}`);
    assert.match(String((e.details as { hint?: string }).hint), /msb pull --policy never/, what);
    assert.equal(existsSync(out), false, `${what}: an archive was written`);
    const warnings: string[] = [];
    const r = await Image.pullLocal(H.backend, 'rel/three:1', {
      policy: 'never',
      onProgress: (ev: PullEvent) => {
        if (ev.type === 'warning') warnings.push(ev.code);
      },
    });
    assert.ok(warnings.includes('CACHE_CORRUPT'), `${what}: warnings ${warnings.join(',')}`);
    assert.deepEqual(
      r.layers.map((l) => l.diffId),
      truth,
      what,
    );
    assert.deepEqual(await indexProblems(H.home), [], what);
    const saved = await Image.saveLocal(H.backend, 'rel/three:1', out);
    assert.deepEqual(saved.images[0]!.diffIds, truth, `${what}: the saved image`);
    // Repaired: the next pull is a plain cache hit.
    const again = await Image.pullLocal(H.backend, 'rel/three:1', { policy: 'never' });
    assert.equal(again.cached, true, what);
  }
  await H.backend.close();
});

test('stored bytes that cannot be trusted (manifest or config altered) → CACHE_CORRUPT for pull and save', async () => {
  const H = await loaded('bytes', ['rel/three:1']);
  const m = MID(H.home);
  for (const [what, damage, undo] of [
    [
      'the manifest bytes',
      () => sql(H.home, "UPDATE manifest SET raw = CAST(raw || ' ' AS BLOB) WHERE id = ?", m),
      () => sql(H.home, 'UPDATE manifest SET raw = substr(raw, 1, length(raw) - 1) WHERE id = ?', m),
    ],
    [
      'the config bytes',
      () => sql(H.home, "UPDATE config SET raw = CAST(raw || ' ' AS BLOB)"),
      () => sql(H.home, 'UPDATE config SET raw = substr(raw, 1, length(raw) - 1)'),
    ],
  ] as const) {
    damage();
    for (const [op, p] of [
      ['pull', Image.pullLocal(H.backend, 'rel/three:1', { policy: 'never' })],
      ['save', Image.saveLocal(H.backend, 'rel/three:1', join(work.dir, 'bytes.tar'))],
    ] as const) {
      const e = await msbRejection(p, `${what} (${op})`);
      assert.equal(e.code, 'CACHE_CORRUPT', `${what} (${op}): ${e.message}`);
    }
    undo();
    assert.equal((await Image.pullLocal(H.backend, 'rel/three:1', { policy: 'never' })).cached, true, what);
  }
  await H.backend.close();
});

test('the issue repro through the real CLI: a deleted row → save refuses, pull --policy never repairs, save works', async () => {
  const H = await loaded('cli', ['rel/three:1']);
  await H.backend.close();
  sql(H.home, 'DELETE FROM manifest_layer WHERE position = 1');
  const env = { MSB_HOME: H.home };
  const out = join(work.dir, 'cli.tar');
  const b = await runCliBatch([
    { args: ['save', '-o', out, 'rel/three:1'], env },
    { args: ['pull', '--policy', 'never', 'rel/three:1'], env },
    { args: ['save', '-o', out, 'rel/three:1'], env },
  ]);
  assert.equal(b.exit, 0, b.stderr);
  assertCliFailure(b.results[0]!, 'CACHE_CORRUPT', 'save of a damaged image');
  assert.equal(b.results[1]!.status, 0, b.results[1]!.stderr);
  assert.match(
    b.results[1]!.stderr,
    /warning: the index rows of sha256:[0-9a-f]{64} list 2 layers; its manifest has 3/,
  );
  assert.equal(b.results[2]!.status, 0, b.results[2]!.stderr);
  assert.equal(rows<{ n: number }>(H.home, 'SELECT COUNT(*) AS n FROM manifest_layer')[0]!.n, 3);
});

/** Digests a damaged index may hold; each becomes one prune item error. */
const BAD_DIGESTS: [string, 'manifest' | 'layer', string][] = [
  ['a path-traversal manifest digest', 'manifest', `../../../../victim-${process.pid}:x`],
  ['an empty manifest digest', 'manifest', ''],
  ['a short manifest digest', 'manifest', `sha256:${'a'.repeat(63)}`],
  ['an upper-case diff_id', 'layer', `sha256:${'A'.repeat(64)}`],
  ['a path-traversal diff_id', 'layer', '../victim:y'],
];

async function damagedHome(name: string) {
  const names = BAD_DIGESTS.map((_, i) => `rel/d${i}:1`);
  const H = await loaded(name, names, 1);
  BAD_DIGESTS.forEach(([, kind, bad], i) => {
    const ref = `docker.io/rel/d${i}:1`;
    if (kind === 'manifest')
      sql(
        H.home,
        'UPDATE manifest SET digest = ? WHERE id = (SELECT manifest_id FROM image_ref WHERE reference = ?)',
        bad,
        ref,
      );
    else
      sql(
        H.home,
        `UPDATE layer SET diff_id = ? WHERE id = (SELECT ml.layer_id FROM manifest_layer ml JOIN image_ref r
         ON r.manifest_id = ml.manifest_id WHERE r.reference = ?)`,
        bad,
        ref,
      );
  });
  // Files where a path built from a bad digest would point: they must survive.
  const victims = [
    ...new Set(
      ['fsmeta', 'vmdk', 'layers'].flatMap((d) =>
        BAD_DIGESTS.filter(([, , bad]) => bad.includes('..')).flatMap(([, , bad]) =>
          ['.erofs', '.vmdk'].map((ext) => resolve(H.home, 'cache', d, `${bad.replace(':', '_')}${ext}`)),
        ),
      ),
    ),
  ];
  for (const v of victims) {
    mkdirSync(dirname(v), { recursive: true });
    writeFileSync(v, 'victim');
    planted.push(v);
  }
  return { ...H, victims };
}

test(`prune with ${BAD_DIGESTS.length} kinds of invalid digest in index rows: each is an item error, the prune carries on (API dry run and real)`, async () => {
  const H = await damagedHome('prune');
  for (const dryRun of [true, false]) {
    const r = await Image.pruneLocal(H.backend, { dryRun });
    const bad = r.errors.filter((e) => e.code === 'CACHE_CORRUPT').map((e) => e.item);
    for (const [what, , digest] of BAD_DIGESTS)
      assert.ok(bad.includes(digest), `${what} (dryRun ${dryRun}): ${JSON.stringify(r.errors)}`);
    assert.equal(r.imageRefsRemoved, BAD_DIGESTS.length, `dryRun ${dryRun}`);
    // The two images whose own digests are fine lose their manifests, fsmeta and VMDK.
    assert.equal(r.fsmetaRemoved, 2, `dryRun ${dryRun}`);
  }
  for (const v of H.victims) assert.ok(existsSync(v), `${v} was touched`);
  await H.backend.close();
});

test('msb image prune -y on the same damage (real CLI): exit 1 with one line per damaged item, everything else pruned', async () => {
  const H = await damagedHome('prune-cli');
  await H.backend.close();
  const b = await runCliBatch([{ args: ['image', 'prune', '-y'], env: { MSB_HOME: H.home } }]);
  assert.equal(b.exit, 0, b.stderr);
  const r = b.results[0]!;
  assert.equal(r.status, 1, r.stderr);
  const errLines = r.stderr.trimEnd().split('\n');
  assert.equal(errLines.length, BAD_DIGESTS.length, r.stderr);
  for (const l of errLines) assert.match(l, /^msb: error: (manifest|layer) .*CACHE_CORRUPT: /);
  assert.match(r.stdout, /References removed: 5/);
  assert.equal(rows<{ n: number }>(H.home, 'SELECT COUNT(*) AS n FROM image_ref')[0]!.n, 0);
  for (const v of H.victims) assert.ok(existsSync(v), `${v} was touched`);
});

test('an empty index whose cache belongs to an index: refused in every mode with a hint that works; a new home still starts', async () => {
  const kinds: [string, (home: string) => void][] = [
    ['0 bytes', (h) => writeFileSync(join(h, 'db', 'msb.db'), '')],
    [
      'a database with no table',
      (h) => {
        writeFileSync(join(h, 'db', 'msb.db'), '');
        const db = new Database(join(h, 'db', 'msb.db'));
        db.exec('CREATE TABLE t (x); DROP TABLE t;');
        db.close();
      },
    ],
  ];
  for (const [what, empty] of kinds) {
    const H = await loaded(`empty-${what.replace(/\W+/g, '-')}`, ['rel/e:1'], 1);
    await H.backend.close();
    for (const f of ['msb.db-wal', 'msb.db-shm']) rmSync(join(H.home, 'db', f), { force: true });
    empty(H.home);
    const size = statSync(join(H.home, 'db', 'msb.db')).size;
    const env = { MSB_HOME: H.home };
    const archivePath = join(work.dir, 'e.tar');
    writeFileSync(archivePath, archive(['rel/e:1'], 1));
    const b = await runCliBatch([
      { args: ['images'], env },
      { args: ['load', '-i', archivePath], env },
      { args: ['image', 'inspect', 'rel/e:1'], env },
    ]);
    assert.equal(b.exit, 0, b.stderr);
    for (const r of b.results) {
      assertCliFailure(r, 'DATABASE', what);
      assert.match(
        r.stderr,
        /is empty, but the cache .* was filled for an index: the index was lost or truncated/,
        what,
      );
      assert.match(r.stderr, /hint: restore .*msb\.db from a backup; or start over/, what);
    }
    assert.equal(statSync(join(H.home, 'db', 'msb.db')).size, size, `${what}: the empty index was written`);
    // The hint: move the cache aside, and the home works again.
    renameSync(join(H.home, 'cache'), join(H.home, 'cache.old'));
    const again = await runCliBatch([
      { args: ['load', '-i', archivePath], env },
      { args: ['images', '-q'], env },
    ]);
    assert.equal(again.results[0]!.status, 0, again.results[0]!.stderr);
    assert.equal(again.results[1]!.stdout, 'rel/e:1\n');
  }
});

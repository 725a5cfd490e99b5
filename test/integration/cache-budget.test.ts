/**
 * The size budget (docs/storage.md §11) on a real cache: images pulled from the real registry, a
 * sandbox pin, real SQLite and files. After a pull the least recently used image nothing holds is
 * evicted, never the pinned one nor the one just pulled; a budget pinned data alone exceeds gives a
 * warning event and a report field, not a failed pull; `msb image df` and `msb image prune --budget`
 * show it; eviction racing a pull of the same image and a `Sandbox.create` leaves no half-evicted
 * image and nothing in use removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Image, LocalBackend, Sandbox, type PullEvent } from '../../src/index.js';
import { ensureRegistry } from '../helpers/env.js';
import { freshHome, rows } from '../helpers/pull-env.js';
import { cli } from '../helpers/msb-cli.js';

const reg = ensureRegistry('noauth');
const R = (repo: string) => `${reg.host}/peers/${repo}:latest`;

async function withBudget(home: string, maxBytes: number): Promise<LocalBackend> {
  return LocalBackend.builder()
    .home(home)
    .settings({ cache: { maxBytes, highWatermark: null, lowWatermark: null } })
    .build();
}

const refsIn = (home: string) =>
  rows<{ reference: string }>(home, 'SELECT reference FROM image_ref ORDER BY reference').map((r) => r.reference);

/** Every file an image's rows name exists (the image is whole). */
async function filesOf(b: LocalBackend, manifestDigest: string): Promise<string[]> {
  const store = await b._open('read');
  const layers = store!.index.db
    .prepare(
      'SELECT l.diff_id AS d FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id JOIN manifest m ON m.id = ml.manifest_id WHERE m.digest = ?',
    )
    .all(manifestDigest) as { d: string }[];
  return [
    store!.paths.fsmeta(manifestDigest),
    store!.paths.vmdk(manifestDigest),
    ...layers.map((l) => store!.paths.layer(l.d)),
  ];
}

test('budget: a pull evicts the least recently used free image, keeps the pinned and the new one; pinned data over the budget warns', async (t) => {
  const { home, backend: b0 } = await freshHome(t);
  const pinned = await Sandbox.createLocal(b0, 'keep', { image: R('busybox') });
  await sleep(5);
  const older = await Image.pullLocal(b0, R('multilayer'));
  await sleep(5);
  const newer = await Image.pullLocal(b0, R('edge-dup'));
  const total = (await Image.diskUsageLocal(b0)).totalBytes;

  // A budget of what is there now: the next pull puts the cache over it.
  const b1 = await withBudget(home, total);
  t.after(() => b1.close());
  const events: PullEvent[] = [];
  const added = await Image.pullLocal(b1, R('edge-sparse'), { onProgress: (e) => events.push(e) });
  assert.deepEqual(
    events.filter((e) => e.type === 'warning'),
    [],
  );
  const after = refsIn(home);
  assert.ok(!after.includes(R('multilayer')), `the least recently used free image is evicted: ${after}`);
  assert.ok(after.includes(R('busybox')) && after.includes(R('edge-sparse')), `pinned and new kept: ${after}`);
  for (const p of [...(await filesOf(b1, pinned.manifestDigest)), ...(await filesOf(b1, added.manifestDigest))])
    assert.ok(existsSync(p), `${p} kept`);
  assert.ok(!existsSync((await b1._open('read'))!.paths.fsmeta(older.manifestDigest)), 'evicted fsmeta removed');
  const du = await Image.diskUsageLocal(b1);
  assert.ok(du.totalBytes <= total, `${du.totalBytes} ≤ ${total}`);
  assert.equal(du.budget?.configured, true);
  assert.equal(du.budget?.overBytes, 0);
  assert.equal((await Image.verifyLocal(b1)).ok, true, 'eviction leaves no half image');

  // A budget the pinned image alone exceeds: the pull succeeds with a warning; every free image goes.
  const b2 = await withBudget(home, 1);
  t.after(() => b2.close());
  const ev2: PullEvent[] = [];
  const last = await Image.pullLocal(b2, R('edge-uncompressed'), { onProgress: (e) => ev2.push(e) });
  const warnings = ev2.filter((e) => e.type === 'warning').map((e) => (e as { code: string }).code);
  assert.deepEqual(warnings, ['BUDGET_EXCEEDED']);
  assert.deepEqual(refsIn(home), [R('busybox'), R('edge-uncompressed')].sort());
  for (const p of await filesOf(b2, last.manifestDigest)) assert.ok(existsSync(p), `${p} of the pull kept`);
  assert.ok(newer.manifestDigest);

  // The CLI reads the budget from config.json: df shows it, prune --budget evicts what the pull held.
  writeFileSync(join(home, 'config.json'), JSON.stringify({ cache: { max_bytes: 1 } }));
  const df = await cli(['--home', home, 'image', 'df']);
  assert.equal(df.status, 0, df.stderr);
  assert.match(df.stdout, /^Budget: max 1 ?B; cache .* over the high mark \(.* to free\)$/m);
  const dry = await cli(['--home', home, 'image', 'prune', '--budget', '--dry-run']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`^Would evict: ${reg.host.replace(/\./g, '\\.')}/peers/edge-uncompressed`, 'm'));
  assert.match(dry.stderr, /warning: images in use hold .*; the cache stays over its budget/);
  assert.deepEqual(refsIn(home), [R('busybox'), R('edge-uncompressed')].sort(), 'the dry run removes nothing');
  const real = await cli(['--home', home, 'image', 'prune', '--budget', '--format', 'json']);
  assert.equal(real.status, 0, real.stderr);
  const report = JSON.parse(real.stdout) as { budget: { enough: boolean; pinnedBytes: number; evicted: string[] } };
  assert.equal(report.budget.enough, false);
  assert.ok(report.budget.pinnedBytes > 0);
  assert.equal(report.budget.evicted.length, 1);
  assert.deepEqual(refsIn(home), [R('busybox')]);
  for (const p of await filesOf(b2, pinned.manifestDigest)) assert.ok(existsSync(p), `${p} of the pinned image kept`);
});

test('budget: eviction racing pulls of the same image and Sandbox.create removes nothing in use', async (t) => {
  const { home, backend: b0 } = await freshHome(t);
  await Image.pullLocal(b0, R('busybox'));
  await Image.pullLocal(b0, R('multilayer'));
  // Every budget run wants everything gone that nothing holds.
  const b = await withBudget(home, 1);
  t.after(() => b.close());
  for (let round = 0; round < 4; round++) {
    const image = round % 2 === 0 ? R('multilayer') : R('busybox');
    // Budget evictions back to back for as long as the pull and the create run.
    let running = true;
    let evictions = 0;
    const evictor = (async () => {
      while (running) {
        await Image.pruneLocal(b, { budget: true });
        evictions++;
      }
    })();
    const [pulled, box] = await Promise.all([
      Image.pullLocal(b, image),
      Sandbox.createLocal(b, `s${round}`, { image }),
    ]).finally(() => {
      running = false;
    });
    await evictor;
    assert.ok(evictions > 1, `round ${round}: ${evictions} evictions ran alongside`);
    assert.equal(pulled.manifestDigest, box.manifestDigest);
    // The sandbox's pin holds its image: every file is there after every eviction has finished.
    await Image.pruneLocal(b, { budget: true });
    assert.deepEqual(
      refsIn(home),
      [image],
      `round ${round}: the pinned image keeps its reference, the rest is evicted`,
    );
    for (const p of await filesOf(b, box.manifestDigest)) assert.ok(existsSync(p), `round ${round}: ${p} kept`);
    const v = await Image.verifyLocal(b);
    assert.deepEqual(v.remaining, [], `round ${round}: no half-evicted image`);
    await Sandbox.removeLocal(b, `s${round}`);
  }
  // With no pin left, the budget evicts everything.
  const r = await Image.pruneLocal(b, { budget: true });
  assert.equal(r.budget?.enough, true);
  assert.deepEqual(refsIn(home), []);
});

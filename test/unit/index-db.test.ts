/**
 * The SQLite index (docs/storage.md §3): schema v1 on a fresh open, idempotent reopen, refusal of
 * newer/foreign/corrupt databases WITHOUT writing to them (B3), and asynchronous waiting on a
 * database another process holds (H9).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { DatabaseError, Image, LocalBackend, type MsbError } from '../../src/index.js';
import { openIndex } from '../../src/catalog/db.js';
import { LATEST_SCHEMA_VERSION, MIGRATION_1_NAME } from '../../src/catalog/migrations.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';

const require = createRequire(import.meta.url);
const BETTER_SQLITE3 = require.resolve('better-sqlite3');

function sqlite(path: string, sql: string): string {
  return execFileSync('sqlite3', [path, sql], { encoding: 'utf8' });
}

test('a fresh open creates schema v1 (WAL, index_info) and a reopen changes nothing', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  await b.close();
  const db = join(dir, 'db', 'msb.db');
  const schema1 = sqlite(db, 'SELECT type, name, sql FROM sqlite_master ORDER BY name');
  for (const table of [
    'schema_migrations',
    'index_info',
    'config',
    'manifest',
    'layer',
    'manifest_layer',
    'image_ref',
    'pin',
    'lease',
    'lease_item',
  ]) {
    assert.match(schema1, new RegExp(`table\\|${table}\\|`), table);
  }
  assert.equal(sqlite(db, 'PRAGMA journal_mode').trim(), 'wal');
  assert.equal(sqlite(db, 'PRAGMA user_version').trim(), String(LATEST_SCHEMA_VERSION));
  const mig1 = sqlite(db, 'SELECT version, name FROM schema_migrations');
  assert.equal(mig1.trim(), `1|${MIGRATION_1_NAME}\n2|msb-image/artifact-digests`);
  const info1 = sqlite(db, 'SELECT index_id, created_at FROM index_info');
  assert.match(info1, /^[0-9a-f]{32}\|\d+$/m);
  const marker = JSON.parse(readFileSync(join(dir, 'cache', 'msb-cache.json'), 'utf8'));
  assert.deepEqual(marker, { format: 'msb-image/1', indexId: info1.split('|')[0] });

  const b2 = await LocalBackend.builder().home(dir).build();
  assert.deepEqual(await Image.listLocal(b2), []);
  await b2.close();
  assert.equal(sqlite(db, 'SELECT type, name, sql FROM sqlite_master ORDER BY name'), schema1);
  assert.equal(sqlite(db, 'SELECT version, name FROM schema_migrations').trim(), mig1.trim());
  assert.equal(sqlite(db, 'SELECT index_id, created_at FROM index_info'), info1);
  assert.ok(existsSync(join(dir, 'db', 'migrate.lock')));
});

function snapshotFile(p: string): Buffer {
  return readFileSync(p);
}

async function expectRefused(t: { after(fn: () => void): void }, setup: (db: string) => void, pattern: RegExp) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'db'), { recursive: true });
  const db = join(dir, 'db', 'msb.db');
  setup(db);
  const before = snapshotFile(db);
  const mtime = statSync(db).mtimeMs;
  for (const call of [
    () => LocalBackend.builder().home(dir).build(),
    () => Image.listLocal(LocalBackend.lazy({ home: dir })),
    () => Image.pruneLocal(LocalBackend.lazy({ home: dir })),
  ]) {
    await assert.rejects(call(), (err: unknown) => {
      assert.ok(err instanceof DatabaseError, String(err));
      assert.equal((err as MsbError).code, 'DATABASE');
      assert.match((err as Error).message, pattern);
      return true;
    });
  }
  assert.deepEqual(snapshotFile(db), before, 'database bytes unchanged');
  assert.equal(statSync(db).mtimeMs, mtime);
  assert.equal(existsSync(db + '-wal'), false, 'no -wal created');
  assert.equal(existsSync(db + '-journal'), false, 'no journal left');
  return { dir, db };
}

test('B3: a schema newer than this program is refused, and nothing is written to it', async (t) => {
  await expectRefused(
    t,
    (db) =>
      sqlite(
        db,
        `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
    INSERT INTO schema_migrations VALUES (1, '${MIGRATION_1_NAME}', 1), (99, 'from-the-future', 2); PRAGMA user_version = 99;`,
      ),
    /index schema v99 is newer than this msb \(v2\)/,
  );
});

test('B3: a newer schema whose only row is version 99 is reported as newer too', async (t) => {
  await expectRefused(
    t,
    (db) =>
      sqlite(
        db,
        `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
    INSERT INTO schema_migrations VALUES (99, 'x', 2);`,
      ),
    /newer than this msb/,
  );
});

test('B3: a foreign database (manifest + seaql_migrations, no schema_migrations) is refused naming the path and MSB_HOME', async (t) => {
  const { db } = await expectRefused(
    t,
    (p) =>
      sqlite(
        p,
        `CREATE TABLE seaql_migrations (version TEXT PRIMARY KEY, applied_at INTEGER);
    CREATE TABLE manifest (id INTEGER PRIMARY KEY, digest TEXT); INSERT INTO manifest VALUES (1, 'x');`,
      ),
    /is not an msb-image index; set MSB_HOME/,
  );
  void db;
});

test('a corrupt database file is a DatabaseError, never a crash, and is not overwritten', async (t) => {
  await expectRefused(
    t,
    (p) => writeFileSync(p, Buffer.concat([Buffer.from('definitely not sqlite'), Buffer.alloc(5000, 7)])),
    /msb\.db/,
  );
});

test('an empty home answers reads without creating anything; the first write creates db, marker and dirs', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const home = join(dir, 'home');
  const b = LocalBackend.lazy({ home });
  assert.deepEqual(await Image.listLocal(b), []);
  assert.equal(existsSync(home), false);
  const db = await openIndex(home, { create: false });
  assert.equal(db, null);
  assert.equal(existsSync(home), false);
  await publishFakeImage(b, { refs: ['x'], layers: ['l'] });
  for (const p of [
    'db/msb.db',
    'db/migrate.lock',
    'cache/msb-cache.json',
    'cache/layers',
    'cache/fsmeta',
    'cache/vmdk',
    'cache/tmp',
    'cache/locks',
  ]) {
    assert.ok(existsSync(join(home, p)), p);
  }
  await b.close();
});

/** A child process holding BEGIN IMMEDIATE (the SQLite write lock) for `ms`. */
function holdWriteLock(dbPath: string, ms: number): Promise<{ done: Promise<void> }> {
  const script = `
    const D = require(${JSON.stringify(BETTER_SQLITE3)});
    const db = new D(${JSON.stringify(dbPath)});
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO index_info (id, index_id, created_at) SELECT 2, 'x', 0 WHERE 0").run();
    process.stdout.write('locked\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms});
    db.exec('COMMIT'); db.close();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const done = new Promise<void>((resolve, reject) =>
    child.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`holder exited ${c}`)))),
  );
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      if (String(d).includes('locked')) resolve({ done });
    });
    child.on('error', reject);
  });
}

test('H9: while another process holds a write transaction, our write waits asynchronously and then succeeds', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  t.after(() => b.close());
  await publishFakeImage(b, { refs: ['src:1'], layers: ['a'] });
  const holder = await holdWriteLock(join(dir, 'db', 'msb.db'), 1500);
  let turns = 0;
  let spinning = true;
  const spin = () => {
    if (!spinning) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const h = await Image.tagLocal(b, 'src:1', 'dst:1');
  spinning = false;
  await holder.done;
  assert.equal(h.reference, 'dst:1');
  assert.ok(turns >= 50, `event loop turned ${turns} times during the wait`);
  assert.deepEqual((await Image.listLocal(b)).map((x) => x.reference).sort(), ['dst:1', 'src:1']);
});

test('H9: a prune waits asynchronously for gc.lock held by another process', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  t.after(() => b.close());
  await publishFakeImage(b, { refs: ['gone:1'], layers: ['g'] });
  const lock = join(dir, 'cache', 'locks', 'gc.lock');
  const child = spawn('flock', [lock, '-c', 'echo locked; sleep 1.5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((res) => child.on('exit', res));
  await new Promise<void>((r) => child.stdout.on('data', () => r()));
  let turns = 0;
  let spinning = true;
  const spin = () => {
    if (!spinning) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const r = await Image.pruneLocal(b);
  spinning = false;
  assert.equal(r.imageRefsRemoved, 1);
  assert.ok(turns >= 50, `event loop turned ${turns} times`);
  await exited;
});

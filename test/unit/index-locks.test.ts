/**
 * Striped flock locks (docs/storage.md §6.1) and leases (§6.2): stripes, in-process queueing, try-lock,
 * cross-process exclusion, release on process death (H4), abortable waits, O_NOFOLLOW, lease
 * items as GC roots and stale-lease reaping (H7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { AbortedError, Image, IoError, LocalBackend } from '../../src/index.js';
import { acquireFileLock, LOCK_BUSY } from '../../src/util/flock.js';
import { withLock } from '../../src/store/locks.js';
import { lockPath, partPath } from '../../src/store/paths.js';
import {
  createLease,
  deleteStaleLeases,
  isLeaseStale,
  processStartTime,
  thisHost,
  type LeaseRow,
} from '../../src/store/lease.js';
import { diffIdOf, publishFakeImage } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';

test('lock names: locks/<kind>-<first 3 hex of the key digest>.lock, and gc.lock', () => {
  const d = 'sha256:abc' + '0'.repeat(61);
  assert.equal(lockPath('/c', 'layer', d), '/c/locks/layer-abc.lock');
  assert.equal(lockPath('/c', 'image', d), '/c/locks/image-abc.lock');
  const ref = 'docker.io/library/python:latest';
  assert.equal(
    lockPath('/c', 'ref', ref),
    `/c/locks/ref-${createHash('sha256').update(ref).digest('hex').slice(0, 3)}.lock`,
  );
  assert.equal(lockPath('/c', 'gc'), '/c/locks/gc.lock');
  assert.throws(() => lockPath('/c', 'layer', 'sha256:../../etc'));
  assert.throws(() => partPath('/c', 'sha256:XYZ'));
});

test('in one process, waiters on one stripe run one after another; tryOnly sees the lock busy', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  t.after(() => b.close());
  const d1 = 'sha256:abc' + '1'.repeat(61);
  const d2 = 'sha256:abc' + '2'.repeat(61); // same stripe "abc"
  const order: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const first = withLock(await b._open('write'), 'layer', d1, async () => {
    order.push('1 start');
    await gate;
    order.push('1 end');
  });
  await new Promise((r) => setImmediate(r));
  const busy = await withLock(await b._open('write'), 'layer', d2, () => 'ran', { tryOnly: true });
  assert.equal(busy, LOCK_BUSY);
  const second = withLock(await b._open('write'), 'layer', d2, async () => {
    order.push('2');
  });
  await new Promise((r) => setTimeout(r, 30));
  release();
  await Promise.all([first, second]);
  assert.deepEqual(order, ['1 start', '1 end', '2']);
  assert.equal(await withLock(await b._open('write'), 'layer', d2, () => 'free', { tryOnly: true }), 'free');
});

/**
 * flock(1) holding `path` while its shell sleeps. The shell inherits the locked descriptor, so
 * "the process dies" means the whole process group: `kill()` signals the group.
 */
function holdFlock(path: string, seconds: number) {
  const child = spawn('flock', [path, '-c', `echo locked; sleep ${seconds}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const locked = new Promise<void>((r) => child.stdout.on('data', () => r()));
  const kill = () => process.kill(-child.pid!, 'SIGKILL');
  return { child, exited, locked, kill };
}

test('H4: a lock held by another process excludes us; when that process is killed we get it at once', {
  timeout: 120_000,
}, async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'locks'));
  const p = join(dir, 'locks', 'layer-abc.lock');
  const h = holdFlock(p, 3600);
  await h.locked;
  assert.equal(await acquireFileLock(p, { tryOnly: true }), LOCK_BUSY);
  const waiting = acquireFileLock(p);
  let got = false;
  void waiting.then(() => {
    got = true;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got, false);
  h.kill();
  await h.exited;
  // The holder would sleep for an hour: only its death can free the lock (the test's timeout
  // turns "never" into a failure).
  const lock = await waiting;
  lock.release();
});

test('a lock wait honours AbortSignal', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'locks'));
  const p = join(dir, 'locks', 'gc.lock');
  const h = holdFlock(p, 60);
  t.after(() => {
    h.kill();
  });
  await h.locked;
  const ac = new AbortController();
  const waiting = acquireFileLock(p, { signal: ac.signal });
  setTimeout(() => ac.abort('stop'), 50);
  await assert.rejects(waiting, (e: unknown) => e instanceof AbortedError && (e as Error).cause === 'stop');
});

test('lock files are opened O_NOFOLLOW: a symlink in locks/ is refused, never followed', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  mkdirSync(join(dir, 'locks'));
  writeFileSync(join(dir, 'target'), '');
  symlinkSync(join(dir, 'target'), join(dir, 'locks', 'gc.lock'));
  await assert.rejects(
    acquireFileLock(join(dir, 'locks', 'gc.lock')),
    (e: unknown) => e instanceof IoError && (e as IoError).errno === 'ELOOP',
  );
});

test('a lease names what it protects: prune keeps a leased manifest and layer, then reclaims them after release', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  t.after(() => b.close());
  const img = await publishFakeImage(b, { refs: ['leased:1'], layers: ['la', 'lb'] });
  const lease = await createLease(await b._open('write'), 'pull');
  await lease.addItems([
    { kind: 'manifest', value: img.manifestDigest },
    { kind: 'layer', value: img.diffIds[0]! },
  ]);
  const r1 = await Image.pruneLocal(b);
  assert.equal(r1.imageRefsRemoved, 0, 'a ref of a leased manifest is not a candidate');
  assert.equal(r1.manifestsRemoved, 0);
  assert.equal(r1.layersRemoved, 0);
  await lease.release();
  const r2 = await Image.pruneLocal(b);
  assert.equal(r2.imageRefsRemoved, 1);
  assert.equal(r2.manifestsRemoved, 1);
  assert.deepEqual(r2.removed.layers, [...img.diffIds].sort());
});

test('lease staleness: expired, or same host+boot with a dead pid or a reused pid', () => {
  const host = thisHost();
  const now = Date.now();
  const row = (o: Partial<LeaseRow>): LeaseRow => ({
    id: 'x',
    operation: 'pull',
    hostname: host.hostname,
    boot_id: host.bootId,
    pid: process.pid,
    pid_start: processStartTime(process.pid),
    created_at: now,
    expires_at: now + 60_000,
    ...o,
  });
  assert.equal(isLeaseStale(row({}), now, host), false);
  assert.equal(isLeaseStale(row({ expires_at: now - 1 }), now, host), true);
  const probe = { running: () => false, startTime: () => null };
  assert.equal(isLeaseStale(row({ pid: 999999 }), now, host, probe), true);
  assert.equal(isLeaseStale(row({ pid_start: 'not-the-start' }), now, host), true, 'pid reused');
  assert.equal(
    isLeaseStale(row({ hostname: 'other-host', pid: 999999 }), now, host, probe),
    false,
    'another host: only expiry counts',
  );
});

test('H7: a process killed while holding a lease: prune reaps the lease and, after the grace period, its temp files', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  t.after(() => b.close());
  const blob = 'sha256:' + 'e'.repeat(64);
  const part = partPath(join(dir, 'cache'), blob);
  const leaseMod = new URL('../../src/store/lease.js', import.meta.url).href.replace(
    /\.js$/,
    import.meta.url.endsWith('.ts') ? '.ts' : '.js',
  );
  const backendMod = leaseMod.replace('/store/lease.', '/api/backend.');
  const script = `
    const { LocalBackend } = await import(${JSON.stringify(backendMod)});
    const { createLease } = await import(${JSON.stringify(leaseMod)});
    const b = LocalBackend.lazy({ home: ${JSON.stringify(dir)} });
    const lease = await createLease(await b._open('write'), 'pull');
    await lease.addItem('blob', ${JSON.stringify(blob)});
    (await import('node:fs')).writeFileSync(${JSON.stringify(part)}, Buffer.alloc(10000, 1));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const args = import.meta.url.endsWith('.ts')
    ? ['--import', 'tsx', '--input-type=module', '-e', script]
    : ['--input-type=module', '-e', script];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await new Promise<void>((r) => child.stdout.on('data', () => r()));
  const old = new Date(Date.now() - 2 * 3600_000);
  utimesSync(part, old, old);
  const r0 = await Image.pruneLocal(b, { dryRun: true });
  assert.equal(r0.tempRemoved, 0, 'a live lease protects its .part');
  child.kill('SIGKILL');
  await exited;
  const store = await b._open('write');
  assert.equal((store.index.db.prepare('SELECT COUNT(*) AS n FROM lease').get() as { n: number }).n, 1);
  const blocks = lstatSync(part).blocks * 512;
  const r = await Image.pruneLocal(b);
  assert.equal(
    (store.index.db.prepare('SELECT COUNT(*) AS n FROM lease').get() as { n: number }).n,
    0,
    'stale lease reaped',
  );
  assert.equal(r.tempRemoved, 1);
  assert.equal(r.bytesReclaimed, blocks);
  assert.equal(existsSync(part), false);
});

test('backend open reaps stale leases of this host; live ones stay', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = await LocalBackend.builder().home(dir).build();
  const store = await b._open('write');
  const host = thisHost();
  store.index.db
    .prepare('INSERT INTO lease VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run('dead', 'pull', host.hostname, host.bootId, 2 ** 22 + 12345, 'x', 0, Date.now() + 600_000);
  store.index.db
    .prepare('INSERT INTO lease VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run('remote', 'pull', 'elsewhere', 'boot', 1, 'x', 0, Date.now() + 600_000);
  const live = await createLease(await b._open('write'), 'load');
  await b.close();
  const b2 = await LocalBackend.builder().home(dir).build();
  t.after(() => b2.close());
  const s2 = await b2._open('write');
  const ids = (s2.index.db.prepare('SELECT id FROM lease ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  assert.deepEqual(ids.sort(), [live.id, 'remote'].sort());
  assert.equal(await deleteStaleLeases(s2.index), 0);
  void diffIdOf;
});

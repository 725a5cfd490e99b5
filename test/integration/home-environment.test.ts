/**
 * Broken environments (issue 9 items 6 and 10, docs/storage.md §1, §3.3, acceptance H8):
 *
 * - a read-only home (a read-only bind mount): every read command works, every write command fails
 *   with IO EROFS and a hint; with or without an uncheckpointed WAL;
 * - directory modes independent of the umask (000, 022, 077), with the cache in the home or outside;
 * - a full disk (a small tmpfs): ENOSPC while spooling a load, while converting, while writing the
 *   index → IO ENOSPC naming the file, nothing left behind, and the same command works once there
 *   is room again.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { run, runStatus, tempDir } from '../helpers/env.js';
import { rows, tmpEntries } from '../helpers/pull-env.js';
import { runCliBatch, type CliCase } from '../helpers/cli-batch.js';
import { assertCliFailure, dockerArchive, msbRejection, smallArchive } from '../helpers/archives.js';
import { file, header, tar } from '../helpers/tar-writer.js';
import { randomBytes } from 'node:crypto';

const work = tempDir('msb-home-env-');
const mounts: string[] = [];
after(() => {
  for (const m of mounts.reverse()) runStatus('umount', ['-l', m]);
  work.cleanup();
});

function roMount(src: string, name: string): string {
  const dst = join(work.dir, name);
  mkdirSync(dst);
  run('mount', ['--bind', src, dst]);
  mounts.push(dst);
  run('mount', ['-o', 'remount,bind,ro', dst]);
  return dst;
}

async function loadedHome(name: string): Promise<{ home: string; backend: LocalBackend }> {
  const home = join(work.dir, name);
  const backend = await LocalBackend.builder().home(home).build();
  await Image.loadLocal(backend, Readable.from([smallArchive('rel/ro:1')]));
  return { home, backend };
}

test('a read-only home (plain, and with an uncheckpointed WAL): reads work, writes fail with IO EROFS and a hint', async () => {
  const H = await loadedHome('ro-src');
  // A copy taken while the backend is open carries its -wal and -shm (as after a crash).
  const withWal = join(work.dir, 'ro-wal-src');
  await Image.tagLocal(H.backend, 'rel/ro:1', 'rel/ro:wal');
  cpSync(H.home, withWal, { recursive: true });
  await H.backend.close();
  const archive = join(work.dir, 'ro.tar');
  writeFileSync(archive, smallArchive('rel/ro:2'));
  for (const [what, src] of [
    ['plain', H.home],
    ['with a WAL', withWal],
  ] as const) {
    const home = roMount(src, `ro-${what.replace(/\W+/g, '-')}`);
    const env = { MSB_HOME: home };
    const reads: CliCase[] = [
      { args: ['images', '-q'], env },
      { args: ['images', '--format', 'json'], env },
      { args: ['image', 'inspect', 'rel/ro:1'], env },
      { args: ['image', 'df'], env },
      { args: ['image', 'prune', '--dry-run'], env },
    ];
    const writes: CliCase[] = [
      { args: ['tag', 'rel/ro:1', 'rel/ro:x'], env },
      { args: ['load', '-i', archive], env },
      { args: ['rmi', 'rel/ro:1'], env },
      { args: ['pull', '--policy', 'never', 'rel/ro:1'], env },
      { args: ['image', 'prune', '-y'], env },
      { args: ['save', '-o', join(work.dir, `ro-${what.length}.tar`), 'rel/ro:1'], env },
    ];
    const b = await runCliBatch([...reads, ...writes]);
    assert.equal(b.exit, 0, b.stderr);
    b.results.slice(0, reads.length).forEach((r, i) => {
      assert.equal(r.status, 0, `${what}: msb ${reads[i]!.args.join(' ')}: ${r.stderr}`);
    });
    assert.match(b.results[0]!.stdout, /^rel\/ro:1\n/m, what);
    if (what === 'with a WAL') assert.match(b.results[0]!.stdout, /^rel\/ro:wal$/m, 'the WAL is read');
    b.results.slice(reads.length).forEach((r, i) => {
      const cmd = `msb ${writes[i]!.args.join(' ')}`;
      assertCliFailure(r, 'IO', `${what}: ${cmd}`);
      assert.match(r.stderr, /EROFS/, `${what}: ${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /^hint: .*not writable/m, `${what}: ${cmd}`);
    });
    // The API the same way.
    const api = LocalBackend.lazy({ home });
    assert.ok((await Image.listLocal(api)).some((h) => h.reference === 'rel/ro:1'));
    assert.equal((await Image.inspectLocal(api, 'rel/ro:1')).layers.length, 2);
    const e = await msbRejection(Image.tagLocal(api, 'rel/ro:1', 'rel/ro:y'), what);
    assert.equal(e.code, 'IO', e.message);
    await api.close();
  }
});

const EXPECTED_MODES: Record<string, number> = {
  '': 0o700,
  db: 0o700,
  cache: 0o755,
  'cache/layers': 0o755,
  'cache/fsmeta': 0o755,
  'cache/vmdk': 0o755,
  'cache/tmp': 0o700,
  'cache/locks': 0o700,
};

test('directory modes do not depend on the umask: 3 umasks × cache in the home or outside it', async () => {
  const saved = process.umask();
  try {
    for (const mask of [0o000, 0o022, 0o077]) {
      for (const outside of [false, true]) {
        const what = `umask ${mask.toString(8).padStart(3, '0')}${outside ? ', cache outside the home' : ''}`;
        const home = join(work.dir, `umask-${mask}-${outside}`);
        const ext = join(work.dir, `ext-${mask}`, 'deep');
        process.umask(mask);
        const b = await LocalBackend.builder()
          .home(home)
          .cacheDir(outside ? join(ext, 'cache') : join(home, 'cache'))
          .build();
        await Image.loadLocal(b, Readable.from([smallArchive('rel/umask:1')]));
        await b.close();
        for (const [rel, mode] of Object.entries(EXPECTED_MODES)) {
          const p = outside && rel.startsWith('cache') ? join(ext, rel) : join(home, rel);
          assert.equal((statSync(p).mode & 0o777).toString(8), mode.toString(8), `${what}: ${rel || 'home'}`);
        }
        if (outside)
          for (const p of [join(work.dir, `ext-${mask}`), ext])
            assert.equal((statSync(p).mode & 0o777).toString(8), '755', `${what}: ${p} (created for the cache)`);
        for (const f of readdirSync(join(outside ? ext : home, 'cache', 'layers')))
          assert.equal(statSync(join(outside ? ext : home, 'cache', 'layers', f)).mode & 0o022, 0, `${what}: ${f}`);
      }
    }
  } finally {
    process.umask(saved);
  }
});

test('a full disk: ENOSPC while spooling, converting or writing the index → IO ENOSPC naming the file, nothing left, a retry works', async () => {
  const disk = join(work.dir, 'disk');
  mkdirSync(disk);
  run('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', disk]);
  mounts.push(disk);
  const home = join(disk, 'home');
  const env = { MSB_HOME: home };
  const b0 = await LocalBackend.builder().home(home).build();
  await Image.loadLocal(b0, Readable.from([smallArchive('rel/full:1')]));
  await b0.close();
  // Inputs live outside the small disk.
  const bigStream = join(work.dir, 'big-stream.tar');
  writeFileSync(
    bigStream,
    Buffer.concat([header({ name: 'junk', size: 40 << 20 }), Buffer.alloc(40 << 20), smallArchive('rel/full:2')]),
  );
  const bigLayer = join(work.dir, 'big-layer.tar');
  writeFileSync(
    bigLayer,
    dockerArchive([
      { repoTags: ['rel/full:3'], layers: [{ name: 'l/layer.tar', tar: tar(file('r.bin', randomBytes(30 << 20))) }] },
    ]),
  );
  const fill = join(disk, 'fill');
  const fillTo = (free: number) => {
    rmSync(fill, { force: true });
    const avail = Number(run('df', ['--output=avail', '-B1', disk]).trim().split('\n')[1]);
    writeFileSync(fill, Buffer.alloc(Math.max(0, avail - free)));
  };
  fillTo(4 << 20);
  const b = await runCliBatch([
    { args: ['load'], stdin: bigStream, env }, // the stream's spool copy
    { args: ['load', '-i', bigLayer], env }, // the layer conversion
  ]);
  assert.equal(b.exit, 0, b.stderr);
  for (const [i, where] of [
    [0, /tmp\/load-\d+-[0-9a-f]+\/archive/],
    [1, /tmp\/layer-sha256_[0-9a-f]{64}-\d+-[0-9a-f]+\.tmp/],
  ] as const) {
    const r = b.results[i]!;
    assertCliFailure(r, 'IO', `load ${i}`);
    assert.match(r.stderr, /ENOSPC/, r.stderr);
    assert.match(r.stderr, where, r.stderr);
  }
  assert.deepEqual(tmpEntries(home), [], 'temp entries left');
  assert.equal(rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM lease')[0]!.n, 0);
  // The index: a connection held open keeps its -shm; with the WAL truncated, the next write must
  // grow a file on a full disk (SQLITE_FULL).
  const held = new Database(join(home, 'db', 'msb.db'));
  held.pragma('wal_checkpoint(TRUNCATE)');
  fillTo(0);
  const c = await runCliBatch([{ args: ['tag', 'rel/full:1', 'rel/full:t'], env }]);
  held.close();
  assertCliFailure(c.results[0]!, 'IO', 'tag on a full disk');
  assert.match(c.results[0]!.stderr, /ENOSPC: .*database or disk is full/);
  // No room at all, nothing held open: the -shm cannot be created; a listing still works.
  const d = await runCliBatch([
    { args: ['images', '-q'], env },
    { args: ['tag', 'rel/full:1', 'rel/full:t'], env },
  ]);
  assert.equal(d.results[0]!.status, 0, `a listing works on a full disk: ${d.results[0]!.stderr}`);
  assert.equal(d.results[0]!.stdout, 'rel/full:1\n');
  assertCliFailure(d.results[1]!, 'IO', 'tag with no room at all');
  assert.match(d.results[1]!.stderr, /ENOSPC/);
  // Room again: the same commands work (H8).
  rmSync(fill);
  const e = await runCliBatch([
    { args: ['tag', 'rel/full:1', 'rel/full:t'], env },
    { args: ['load', '-i', bigLayer], env },
    { args: ['images', '-q'], env },
  ]);
  for (const r of e.results) assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(e.results[2]!.stdout.trim().split('\n').sort(), ['rel/full:1', 'rel/full:3', 'rel/full:t']);
});

/**
 * Cross-process and in-process concurrency, crashes and memory of the pull (acceptance H1, H2,
 * H3, H5, H13), with real processes (the `msb` CLI and test/helpers/pull-child.ts) against a real
 * registry (a private instance on R0's storage, whose access log counts blob GETs).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { _pullDeps, _setPullDeps } from '../../src/pull/pull.js';
import { ensureRegistry, erofsUtils, FIXTURE_ROOT, runStatus } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { freshHome, helperArgv, indexProblems, msb, privateRegistry, rows, tmpEntries } from '../helpers/pull-env.js';

const R0 = ensureRegistry('noauth');
const faults: FaultServer[] = [];
after(async () => {
  for (const f of faults) await f.close();
});

function blobDigest(line: string): string {
  return /blobs\/(sha\d+:[0-9a-f]+)/.exec(line)![1]!;
}

function countBy(xs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

test('H1: 8 concurrent `msb pull` processes on an empty cache: all exit 0, each blob GET once, each layer file published once (same inode), fsck clean', async (t) => {
  const reg = await privateRegistry(t);
  const { home } = await freshHome(t);
  const ref = `${reg.host}/peers/multilayer`;
  const inodes = new Map<string, Set<number>>();
  const layersDir = join(home, 'cache', 'layers');
  const watch = setInterval(() => {
    if (!existsSync(layersDir)) return;
    for (const n of readdirSync(layersDir)) {
      try {
        const ino = statSync(join(layersDir, n)).ino;
        if (!inodes.has(n)) inodes.set(n, new Set());
        inodes.get(n)!.add(ino);
      } catch {
        /* racing a rename */
      }
    }
  }, 2);
  const runs = await Promise.all(Array.from({ length: 8 }, () => msb(['--home', home, 'pull', '-q', ref])));
  clearInterval(watch);
  for (const r of runs) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${ref}:latest\n`);
  }
  const gets = countBy(reg.blobGets().map(blobDigest));
  assert.equal(gets.size, 6, 'five layers and one config');
  for (const [d, n] of gets) assert.equal(n, 1, `${d} fetched ${n} times`);
  const files = readdirSync(layersDir);
  assert.equal(files.length, 5);
  for (const n of files) {
    const final = statSync(join(layersDir, n)).ino;
    assert.deepEqual([...(inodes.get(n) ?? new Set([final]))], [final], `${n} was replaced`);
    const fsck = runStatus(erofsUtils('fsck.erofs'), [join(layersDir, n)]);
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
  }
  assert.deepEqual(await indexProblems(home), []);
  assert.deepEqual(rows(home, 'SELECT * FROM lease'), []);
});

test('H2: two processes pulling images sharing L1 download it once; in one process 3+2 concurrent pulls fetch each blob once; a layer listed 3× completes', async (t) => {
  const reg = await privateRegistry(t);
  const { home } = await freshHome(t);
  const [a, b] = await Promise.all([
    msb(['--home', home, 'pull', '-q', `${reg.host}/peers/busybox`]),
    msb(['--home', home, 'pull', '-q', `${reg.host}/peers/multilayer`]),
  ]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  for (const [d, n] of countBy(reg.blobGets().map(blobDigest)))
    assert.equal(n, 1, `${d} fetched ${n} times by two processes`);

  const reg2 = await privateRegistry(t);
  const fresh = await freshHome(t);
  const pulls = [
    ...Array.from({ length: 3 }, () => Image.pullLocal(fresh.backend, `${reg2.host}/peers/busybox`)),
    ...Array.from({ length: 2 }, () => Image.pullLocal(fresh.backend, `${reg2.host}/peers/multilayer`)),
  ];
  const results = await Promise.all(pulls);
  assert.equal(new Set(results.slice(0, 3).map((r) => r.manifestDigest)).size, 1);
  for (const [d, n] of countBy(reg2.blobGets().map(blobDigest)))
    assert.equal(n, 1, `${d} fetched ${n} times in one process`);
  const dup = await Image.pullLocal(fresh.backend, `${reg2.host}/peers/edge-dup`);
  assert.ok(dup.layers.length >= 3);
  assert.deepEqual(await indexProblems(fresh.home), []);
  void home;
});

const POINTS = [
  'resolved',
  'layer-converted',
  'layer-renamed',
  'layers-done',
  'fsmeta-written',
  'vmdk-written',
  'before-commit',
  'committed',
] as const;

/** Spawns pull-child and kill -9s it `delayMs` after it prints `HOOK <point>` (or when it exits). */
function pullAndKill(
  home: string,
  ref: string,
  point: string,
  delayMs: number,
): Promise<{ killed: boolean; out: string }> {
  return new Promise((ok) => {
    const c = spawn(process.execPath, [...helperArgv('pull-child'), home, ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let killed = false;
    c.stdout!.on('data', (d) => {
      out += d;
      if (!killed && out.includes(`HOOK ${point}\n`)) {
        killed = true;
        setTimeout(() => c.kill('SIGKILL'), delayMs);
      }
    });
    c.stderr!.on('data', (d) => {
      out += d;
    });
    c.on('close', () => ok({ killed, out }));
  });
}

test('H3: kill -9 at 50 points (download, decompress, EROFS write, fsmeta, VMDK, commit): the index stays valid, the next pull succeeds, prune empties tmp/', async (t) => {
  const { home, backend } = await freshHome(t);
  const ref = `${R0.host}/peers/multilayer`;
  let killedCount = 0;
  for (let round = 0; round < 50; round++) {
    const point = POINTS[round % POINTS.length]!;
    // 'resolved' + 0–60 ms lands inside downloads, decompression and EROFS writes.
    const delay = point === 'resolved' ? Math.floor(Math.random() * 60) : Math.floor(Math.random() * 3);
    const k = await pullAndKill(home, ref, point, delay);
    if (k.killed) killedCount++;
    const problems = await indexProblems(home);
    assert.deepEqual(problems, [], `round ${round} (${point}+${delay}ms): ${problems.join('; ')}`);
    const r = await Image.pullLocal(backend, ref);
    assert.equal(r.layers.length, 5);
    assert.deepEqual(await indexProblems(home), [], `round ${round}: after the next pull`);
    const rep = await Image.pruneLocal(backend, { tempGrace: 0 });
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(tmpEntries(home), [], `round ${round}: prune leaves tmp/ empty`);
  }
  assert.ok(killedCount >= 45, `${killedCount} of 50 rounds were killed mid-pull`);
});

test('H5: 100 rounds of a pull sharing layers with a cached unpinned image, concurrent with prune(): the pull always succeeds and its files stay valid', async (t) => {
  const { home, backend } = await freshHome(t);
  const base = await _pullDeps();
  let checked = 0;
  // While the pull still holds its lease (just after its commit), everything it published must be intact.
  _setPullDeps({
    ...base,
    hook: async (p) => {
      if (p === 'committed') {
        assert.deepEqual(await indexProblems(home), []);
        checked++;
      }
    },
  });
  t.after(() => _setPullDeps(null));
  let skipped = 0;
  for (let round = 0; round < 100; round++) {
    await Image.pullLocal(backend, `${R0.host}/peers/busybox`);
    const pull = Image.pullLocal(backend, `${R0.host}/peers/multilayer`);
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
    const [r, rep] = await Promise.all([pull, Image.pruneLocal(backend)]);
    assert.equal(r.layers.length, 5);
    assert.deepEqual(rep.errors, []);
    skipped += rep.skippedInUse;
    assert.deepEqual(await indexProblems(home), [], `round ${round}`);
  }
  assert.ok(checked >= 100, `${checked} commits checked`); // every multilayer pull, plus busybox re-pulls
  void skipped;
});

/** A synthetic one-layer image with a big incompressible file, served by F from disk. */
async function bigImage(sizeMiB: number): Promise<{ f: FaultServer; ref: string }> {
  const dir = join(FIXTURE_ROOT, `pull-big-${sizeMiB}`);
  const blob = join(dir, 'layer.tar.gz');
  const meta = join(dir, 'meta.json');
  if (!existsSync(meta)) {
    mkdirSync(dir, { recursive: true });
    const size = sizeMiB * 1024 * 1024;
    const header = Buffer.alloc(512);
    header.write('big.bin', 0, 'latin1');
    header.write('0000644\0', 100, 'latin1');
    header.write('0000000\0', 108, 'latin1');
    header.write('0000000\0', 116, 'latin1');
    header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    header.write('14000000000\0', 136, 'latin1');
    header.write('        ', 148, 'latin1');
    header.write('0', 156, 'latin1');
    header.write('ustar\0' + '00', 257, 'latin1');
    let sum = 0;
    for (const x of header) sum += x;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const diff = createHash('sha256');
    async function* tar() {
      yield header;
      const chunk = 1 << 20;
      for (let i = 0; i < size / chunk; i++) {
        const b = Buffer.alloc(chunk);
        for (let o = 0; o < chunk; o += 32) createHash('sha256').update(`${i}:${o}`).digest().copy(b, o);
        yield b;
      }
      yield Buffer.alloc(1024);
    }
    const hashed = async function* () {
      for await (const c of tar()) {
        diff.update(c);
        yield c;
      }
    };
    const { createWriteStream } = await import('node:fs');
    await pipeline(Readable.from(hashed()), createGzip({ level: 1 }), createWriteStream(blob));
    const blobSha = createHash('sha256');
    for await (const c of createReadStream(blob)) blobSha.update(c as Buffer);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [`sha256:${diff.digest('hex')}`] },
      }),
    );
    const cfgDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
            digest: `sha256:${blobSha.digest('hex')}`,
            size: statSync(blob).size,
          },
        ],
      }),
    );
    writeFileSync(join(dir, 'config.json'), config);
    writeFileSync(join(dir, 'manifest.json'), manifest);
    writeFileSync(meta, JSON.stringify({ cfgDigest }));
  }
  const { readFileSync } = await import('node:fs');
  const manifest = readFileSync(join(dir, 'manifest.json'));
  const config = readFileSync(join(dir, 'config.json'));
  const m = JSON.parse(manifest.toString()) as {
    config: { digest: string };
    layers: { digest: string; size: number }[];
  };
  const f = await FaultServer.start({ upstream: `http://${R0.host}` });
  faults.push(f);
  f.handlers.push(async (req, res) => {
    if (req.url === '/v2/peers/big/manifests/latest') {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': String(manifest.length),
      });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return true;
    }
    if (req.url === `/v2/peers/big/blobs/${m.config.digest}`) {
      res.writeHead(200, { 'content-length': String(config.length) });
      res.end(config);
      return true;
    }
    if (req.url === `/v2/peers/big/blobs/${m.layers[0]!.digest}`) {
      res.writeHead(200, { 'content-length': String(m.layers[0]!.size), 'content-type': 'application/octet-stream' });
      await pipeline(createReadStream(blob), res);
      return true;
    }
    return false;
  });
  return { f, ref: `${f.host}/peers/big` };
}

test('H13: pulling a 512 MiB layer keeps RSS growth under 128 MiB', async (t) => {
  const { f, ref } = await bigImage(512);
  void f;
  const { home } = await freshHome(t);
  const out = await new Promise<string>((ok) => {
    const c = spawn(process.execPath, [...helperArgv('pull-child'), home, ref], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let s = '';
    c.stdout!.on('data', (d) => {
      s += d;
    });
    c.on('close', () => ok(s));
  });
  assert.match(out, /RESULT /, out);
  const rss0 = Number(/RSS0 (\d+)/.exec(out)![1]);
  const max = Number(/MAXRSS (\d+)/.exec(out)![1]);
  const growth = max - rss0;
  t.diagnostic(
    `RSS before the pull ${(rss0 / 1048576).toFixed(1)} MiB, peak ${(max / 1048576).toFixed(1)} MiB, growth ${(growth / 1048576).toFixed(1)} MiB`,
  );
  assert.ok(growth < 128 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
  const b = await LocalBackend.builder().home(home).build();
  t.after(() => b.close());
  assert.deepEqual(await indexProblems(home), []);
});

/**
 * Pull benchmark (issue 5 "Performance"), side by side in one run:
 *
 * - cold: `msb pull` of debian-minbase (one ~95 MB gzip layer) into an empty cache, from a
 *   loopback CNCF distribution registry, vs the peer pipeline doing the same work: `skopeo copy`
 *   to an OCI dir, then `mkfs.erofs --tar=f --ungzip` (erofs-utils 1.9.4) of its layer. Goal:
 *   ratio ≤ 1.0.
 * - warm: `msb pull` of the same image again (a cache hit: validation only) vs a bare
 *   `node -e 0`. Goal: ≤ 3×.
 * - peak RSS of the cold `msb pull` process (GNU time %M). Goal: ≤ 200 MiB.
 *
 * Setup (once, cached under MSB_TEST_FIXTURES): `WITH_DEBIAN=1 build-test-images.sh` into its own
 * directory and a registry on port 5055 with its own storage, pushed with push-test-images.sh.
 *
 * Run: `npm run bench -- pull`, or `node --import tsx bench/pull.ts`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { FIXTURE_ROOT, FIXTURE_SCRIPTS, PROJECT_ROOT, TOOLS } from '../test/helpers/env.js';

export const BENCH_PORT = 5055;
const IMAGES = join(FIXTURE_ROOT, 'bench-images');
const REG_BASE = join(FIXTURE_ROOT, `registry-${BENCH_PORT}`);

export interface PullBenchResult {
  coldMs: number; peerMs: number; coldRatio: number;
  skopeoMs: number; mkfsMs: number;
  warmMs: number; nodeMs: number; warmRatio: number;
  peakRssMiB: number;
  layerBytes: number;
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env, maxBuffer: 64 << 20 });
}

/** Builds debian-minbase (once) and serves every fixture image from a registry on BENCH_PORT. */
export function ensureBenchRegistry(log: (s: string) => void = console.log): string {
  const marker = join(IMAGES, 'debian.done');
  if (!existsSync(marker)) {
    log('building debian-minbase (debootstrap, once)…');
    sh('bash', [join(FIXTURE_SCRIPTS, 'build-test-images.sh'), IMAGES], { ...process.env, WITH_DEBIAN: '1' });
    sh('touch', [marker]);
  }
  sh('bash', [join(FIXTURE_SCRIPTS, 'start-registry.sh'), String(BENCH_PORT), REG_BASE, 'noauth']);
  const pushed = join(REG_BASE, 'pushed.debian');
  if (!existsSync(pushed)) {
    log('pushing the images to the bench registry (once)…');
    sh('bash', [join(FIXTURE_SCRIPTS, 'push-test-images.sh'), `127.0.0.1:${BENCH_PORT}`, IMAGES, '']);
    sh('touch', [pushed]);
  }
  return `127.0.0.1:${BENCH_PORT}`;
}

/** argv (after node) of the msb CLI: compiled when this file runs from dist/, else through tsx. */
function msbArgv(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'helpers', 'msb-launch.ts')];
  return [join(PROJECT_ROOT, 'bin', 'msb.js')];
}

/** Wall time (ms) and peak RSS (KiB, GNU time %M) of one command. */
function timed(cmd: string, args: string[]): { ms: number; maxRssKiB: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /MAXRSS (\d+)/.exec(r.stderr);
  return { ms, maxRssKiB: m ? Number(m[1]) : 0, stdout: r.stdout };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchPull(o: { log?: (s: string) => void; rounds?: number } = {}): Promise<PullBenchResult> {
  const log = o.log ?? console.log;
  const rounds = o.rounds ?? 3;
  const host = ensureBenchRegistry(log);
  const ref = `${host}/peers/debian-minbase`;
  const mkfs = join(TOOLS, 'erofs-utils-1.9.4', 'bin', 'mkfs.erofs');
  if (!existsSync(mkfs)) throw new Error(`${mkfs} missing: run scripts/setup-system.sh`);
  const node = process.execPath;
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-pull-'));
  try {
    const cold: number[] = [];
    const peer: number[] = [];
    const skopeoT: number[] = [];
    const mkfsT: number[] = [];
    const warm: number[] = [];
    const rss: number[] = [];
    let layerBytes = 0;
    for (let i = 0; i < rounds; i++) {
      // Peer pipeline: skopeo copy → OCI dir, mkfs.erofs --tar=f --ungzip of its (only) layer.
      const oci = join(work, `oci-${i}`);
      const s = timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:x`]);
      const idx = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const man = JSON.parse(readFileSync(join(oci, 'blobs', ...idx.manifests[0]!.digest.split(':')), 'utf8')) as { layers: { digest: string; size: number }[] };
      const layer = join(oci, 'blobs', ...man.layers[0]!.digest.split(':'));
      layerBytes = statSync(layer).size;
      const m = timed(mkfs, ['--tar=f', '--ungzip', join(work, `peer-${i}.erofs`), layer]);
      skopeoT.push(s.ms);
      mkfsT.push(m.ms);
      peer.push(s.ms + m.ms);
      rmSync(oci, { recursive: true, force: true });
      rmSync(join(work, `peer-${i}.erofs`), { force: true });

      // Ours: the msb CLI process, empty cache, then the same pull again (a cache hit).
      const home = join(work, `home-${i}`);
      const c = timed(node, [...msbArgv(), '--home', home, 'pull', '-q', ref]);
      cold.push(c.ms);
      rss.push(c.maxRssKiB);
      for (let w = 0; w < 3; w++) warm.push(timed(node, [...msbArgv(), '--home', home, 'pull', '-q', ref]).ms);
      rmSync(home, { recursive: true, force: true });
    }
    const bare: number[] = [];
    for (let i = 0; i < 5; i++) bare.push(timed(node, ['-e', '0']).ms);
    const r: PullBenchResult = {
      coldMs: median(cold), peerMs: median(peer), coldRatio: median(cold) / median(peer),
      skopeoMs: median(skopeoT), mkfsMs: median(mkfsT),
      warmMs: median(warm), nodeMs: median(bare), warmRatio: median(warm) / median(bare),
      peakRssMiB: Math.max(...rss) / 1024,
      layerBytes,
    };
    log(`debian-minbase: ${(layerBytes / 1e6).toFixed(1)} MB gzip layer, ${rounds} rounds, medians`);
    log(`cold pull (msb pull, CLI process)            ${r.coldMs.toFixed(0)} ms`);
    log(`peer: skopeo copy ${r.skopeoMs.toFixed(0)} ms + mkfs.erofs --tar=f --ungzip ${r.mkfsMs.toFixed(0)} ms = ${r.peerMs.toFixed(0)} ms`);
    log(`cold ratio ours/peer                          ${r.coldRatio.toFixed(2)}   (goal ≤ 1.0)`);
    log(`warm pull (cache hit)                         ${r.warmMs.toFixed(0)} ms vs node -e 0 ${r.nodeMs.toFixed(0)} ms = ${r.warmRatio.toFixed(2)}×   (goal ≤ 3×)`);
    log(`peak RSS of the cold pull                     ${r.peakRssMiB.toFixed(1)} MiB   (goal ≤ 200 MiB)`);
    void readdirSync;
    return r;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (fileURLToPath(import.meta.url) === process.argv[1]) {
  await benchPull();
}

/**
 * Layer conversion benchmark: a real Debian minbase layer (.tar.gz, ~95 MB, ~6800 entries)
 * converted by `msb layer convert` (a fresh process, like the peer) and by erofs-utils 1.9.4
 * `mkfs.erofs --tar=f --ungzip`, in the same run, alternating, page cache warm. Prints the median
 * wall times, their ratio (ours / mkfs.erofs; goal ≤ 1.0) and our peak RSS (goal ≤ 200 MiB).
 *
 * The layer comes from `MSB_BENCH_LAYER` (a .tar.gz), else the `debian-minbase` tag of
 * `<fixtures>/bench-images/oci`, which is built once with `WITH_DEBIAN=1 build-test-images.sh`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT_ROOT = (() => {
  let d = fileURLToPath(new URL('.', import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = join(d, '..');
  return d;
})();
const TOOLS = process.env.MSB_TOOLS ?? '/opt/msb-tools';
const FIXTURE_ROOT = process.env.MSB_TEST_FIXTURES ?? '/tmp/msb-test-fixtures';

/** Path of the Debian minbase layer blob (.tar.gz); builds the fixture once when missing. */
export function debianLayer(log: (s: string) => void = () => undefined): string {
  if (process.env.MSB_BENCH_LAYER) return process.env.MSB_BENCH_LAYER;
  const dir = join(FIXTURE_ROOT, 'bench-images');
  const oci = join(dir, 'oci');
  const find = (): string | null => {
    if (!existsSync(join(oci, 'index.json'))) return null;
    const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
    const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === 'debian-minbase');
    if (!m) return null;
    const blob = (d: string) => join(oci, 'blobs', 'sha256', d.slice(7));
    const manifest = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { layers: Array<{ digest: string }> };
    return blob(manifest.layers[0]!.digest);
  };
  let layer = find();
  if (!layer) {
    log(`building the Debian minbase fixture in ${dir} (debootstrap, a few minutes once)…`);
    execFileSync('flock', [join(FIXTURE_ROOT, 'bench-images.lock'), 'env', 'WITH_DEBIAN=1', 'bash',
      join(PROJECT_ROOT, 'test', 'fixtures', 'build-test-images.sh'), dir], { stdio: ['ignore', 'ignore', 'inherit'] });
    layer = find();
    if (!layer) throw new Error('debian-minbase fixture was not built');
  }
  return layer;
}

interface Run { seconds: number; maxRssKiB: number }

function timed(cmd: string, args: string[]): Run {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  return { seconds, maxRssKiB: Number(lines[lines.length - 1]) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchConvert(opts: { log?: (s: string) => void; rounds?: number } = {}): Promise<{ ratio: number; oursSeconds: number; mkfsSeconds: number; maxRssMiB: number }> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const rounds = opts.rounds ?? Number(process.env.MSB_BENCH_ROUNDS ?? 5);
  const layer = debianLayer(log);
  const mkfs = join(TOOLS, 'erofs-utils-1.9.4', 'bin', 'mkfs.erofs');
  const cli = join(PROJECT_ROOT, 'bin', 'msb.js');
  if (!existsSync(join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('run `npm run build` first (the CLI runs from dist/)');
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-convert-'));
  try {
    readFileSync(layer); // warm the page cache for both
    const ours: Run[] = [];
    const peer: Run[] = [];
    for (let i = 0; i < rounds; i++) {
      const a = join(work, `ours-${i}.erofs`);
      const b = join(work, `mkfs-${i}.erofs`);
      const runOurs = () => ours.push(timed(process.execPath, [cli, 'layer', 'convert', layer, '-o', a]));
      const runPeer = () => peer.push(timed(mkfs, ['--tar=f', '--ungzip', '--quiet', b, layer]));
      if (i % 2 === 0) { runOurs(); runPeer(); } else { runPeer(); runOurs(); }
      rmSync(a, { force: true });
      rmSync(b, { force: true });
    }
    const o = median(ours.map((r) => r.seconds));
    const p = median(peer.map((r) => r.seconds));
    const rss = Math.max(...ours.map((r) => r.maxRssKiB)) / 1024;
    log(`layer: ${layer} (${(statSync(layer).size / 1e6).toFixed(1)} MB gzip), ${rounds} rounds, alternating`);
    log(`msb layer convert     median ${o.toFixed(3)} s  [${ours.map((r) => r.seconds.toFixed(2)).join(' ')}]  peak RSS ${rss.toFixed(0)} MiB`);
    log(`mkfs.erofs --tar=f    median ${p.toFixed(3)} s  [${peer.map((r) => r.seconds.toFixed(2)).join(' ')}]  peak RSS ${(Math.max(...peer.map((r) => r.maxRssKiB)) / 1024).toFixed(0)} MiB`);
    log(`ratio ours / mkfs.erofs = ${(o / p).toFixed(2)} (goal ≤ 1.0); peak RSS ${rss.toFixed(0)} MiB (goal ≤ 200)`);
    return { ratio: o / p, oursSeconds: o, mkfsSeconds: p, maxRssMiB: rss };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await benchConvert();

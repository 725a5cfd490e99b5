/**
 * This build against another build of msb (a checkout given by MSB_BENCH_BASELINE, built with
 * `npm run build`): the regression check for a refactor, e.g. before and after a restructuring.
 * Both sides are whole `msb` processes, alternating, each with its own cache home (the index
 * schema may differ between the builds): `msb --version`, `msb layer convert` of the Debian
 * layer, cold and warm `msb pull` of debian-minbase. Goal: ours ≤ 1.1× the baseline (noise).
 * Usage: MSB_BENCH_BASELINE=/path/to/old/checkout npm run bench -- versus
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { msb, NODE, requireBuilt } from './commands.js';
import { BENCH_REGISTRY, benchRegistry, debianLayer } from './fixtures.js';
import { compare, runOnce, type BenchOptions, type Cmd } from './harness.js';

const NOISE = 1.1;

function baselineRoot(): string {
  const root = process.env.MSB_BENCH_BASELINE;
  if (!root) throw new Error('versus: set MSB_BENCH_BASELINE to a built checkout of another msb version');
  const cli = join(resolve(root), 'bin', 'msb.js');
  if (!existsSync(cli)) throw new Error(`versus: ${cli} missing`);
  return resolve(root);
}

export async function benchVersus(o: BenchOptions): Promise<void> {
  requireBuilt();
  const base = baselineRoot();
  const theirs = (...args: string[]) => [NODE, join(base, 'bin', 'msb.js'), ...args];
  const layer = debianLayer(o.log);
  benchRegistry(o.log);
  const ref = `${BENCH_REGISTRY}/peers/debian-minbase:latest`;
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-versus-'));
  const pair = (title: string, side: (argv: (...a: string[]) => string[], dir: string) => Cmd) =>
    compare(
      title,
      [
        { label: 'this build', cmd: side(msb, join(work, 'ours')) },
        { label: `baseline (${base})`, cmd: side(theirs, join(work, 'base')) },
      ],
      o,
      [{ vs: 1, ratio: NOISE }],
    );
  try {
    pair('versus: msb --version', (argv) => ({ argv: argv('--version') }));
    pair('versus: msb layer convert, debian-minbase layer', (argv, dir) => ({
      argv: argv('layer', 'convert', layer, '-o', `${dir}.erofs`),
      before: () => rmSync(`${dir}.erofs`, { force: true }),
    }));
    pair('versus: cold msb pull, debian-minbase', (argv, dir) => ({
      argv: argv('--home', dir, 'pull', '-q', ref),
      before: () => rmSync(dir, { recursive: true, force: true }),
    }));
    for (const [argv, dir] of [
      [msb, join(work, 'ours')],
      [theirs, join(work, 'base')],
    ] as const)
      runOnce({ argv: argv('--home', `${dir}-warm`, 'pull', '-q', ref) }); // untimed: fill both caches
    pair('versus: warm msb pull (cache hit), debian-minbase', (argv, dir) => ({
      argv: argv('--home', `${dir}-warm`, 'pull', '-q', ref),
    }));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

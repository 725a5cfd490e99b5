/**
 * Index benchmark: 10,000 refs over 1,000 images (real SQLite, real artifact files).
 * - whole process: `msb images` vs `node -e 0` (goal ≤ 250 ms, peak RSS ≤ 200 MiB);
 * - in-process API latencies (labelled as such; no peer exists): list, inspect, get, and one
 *   prune of everything (destructive, so one run).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Image, LocalBackend } from '../src/index.js';
import { synthesizeIndex } from '../test/helpers/index-fixtures.js';
import { msb, NODE_BARE, requireBuilt } from './commands.js';
import { compare, fmtMs, median, type BenchOptions } from './harness.js';

async function timeN(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    xs.push(performance.now() - t0);
  }
  return xs;
}

const mmm = (xs: number[]) =>
  `median ${fmtMs(median(xs))}  min ${fmtMs(Math.min(...xs))}  max ${fmtMs(Math.max(...xs))}`;

export async function benchIndex(o: BenchOptions & { refs?: number; images?: number }): Promise<void> {
  requireBuilt();
  const refs = o.refs ?? 10_000;
  const images = o.images ?? 1_000;
  const home = mkdtempSync(join(tmpdir(), 'msb-bench-index-'));
  try {
    const setup = await LocalBackend.builder().home(home).build();
    await synthesizeIndex(setup, refs, images);
    await setup.close();

    compare(
      `msb images, ${refs} refs over ${images} images`,
      [
        {
          label: 'msb images',
          cmd: {
            argv: msb('--home', home, 'images'),
            check: (out) => {
              if (out.split('\n').length !== refs + 2)
                throw new Error('msb images printed an unexpected number of lines');
            },
          },
        },
        NODE_BARE,
      ],
      o,
      [{ ms: 250 }, { rssMiB: 200 }],
    );

    o.log(`in-process API latency (one node process, no peer), ${refs} refs:`);
    const b = LocalBackend.lazy({ home });
    const first = await timeN(1, async () => {
      if ((await Image.listLocal(b)).length !== refs) throw new Error('list returned a wrong count');
    });
    o.log(`  list, first call (opens the db)  ${fmtMs(first[0]!)}`);
    o.log(`  list                             ${mmm(await timeN(15, () => Image.listLocal(b)))}`);
    const ref = (i: number) => `img${(i * 37) % images}:t${(i * 37) % images}`;
    o.log(`  inspect                          ${mmm(await timeN(200, (i) => Image.inspectLocal(b, ref(i))))}`);
    o.log(`  get                              ${mmm(await timeN(200, (i) => Image.getLocal(b, ref(i))))}`);
    await b.close();
    const pb = LocalBackend.lazy({ home });
    const t0 = performance.now();
    const report = await Image.pruneLocal(pb);
    const pruneMs = performance.now() - t0;
    await pb.close();
    if (report.imageRefsRemoved !== refs) throw new Error(`prune removed ${report.imageRefsRemoved} refs`);
    o.log(
      `  prune of all (one run)           ${fmtMs(pruneMs)}  (${report.manifestsRemoved} manifests, ${report.layersRemoved} layers)`,
    );
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Layer conversion, whole processes, alternating, page cache warmed by the untimed first round: `msb layer convert` vs
 * erofs-utils 1.9.4 `mkfs.erofs --tar=f --ungzip` of the same .tar.gz, on the Debian minbase layer
 * (~95 MB gzip, 194 MiB tar; or MSB_BENCH_LAYER) and on a ~1 GiB layer, whose peak RSS beside the
 * small one's shows whether memory stays flat in layer size.
 * Goals (issue 12): ≤ 0.9× mkfs.erofs; peak RSS ≤ 200 MiB, flat.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { msb, requireBuilt } from './commands.js';
import { debianImage, debianLayer, manyLayerImage, MKFS } from './fixtures.js';
import { compare, type BenchOptions, type Comparison } from './harness.js';

export { debianLayer }; // test/erofs-debian.test.ts takes its layer from here

function convertPair(title: string, layer: string, diffId: string | null, o: BenchOptions, work: string): Comparison {
  const ours = join(work, 'ours.erofs');
  const peer = join(work, 'peer.erofs');
  return compare(
    title,
    [
      {
        label: 'msb layer convert',
        cmd: {
          argv: msb('layer', 'convert', layer, '-o', ours),
          before: () => rmSync(ours, { force: true }),
          check: (stdout) => {
            const got = (JSON.parse(stdout) as { diffId: string }).diffId;
            if (diffId && got !== diffId) throw new Error(`msb layer convert: diff_id ${got}, expected ${diffId}`);
          },
        },
      },
      {
        label: 'mkfs.erofs --tar=f --ungzip',
        cmd: {
          argv: [MKFS, '--quiet', '--tar=f', '--ungzip', peer, layer],
          before: () => rmSync(peer, { force: true }),
        },
      },
    ],
    o,
    [{ vs: 1, ratio: 0.9 }, { rssMiB: 200 }],
  );
}

export async function benchConvert(o: BenchOptions): Promise<void> {
  requireBuilt();
  const layer = debianLayer(o.log);
  const diffId = process.env.MSB_BENCH_LAYER ? null : debianImage().layers[0]!.diffId;
  const { big1g } = manyLayerImage(o.log);
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-convert-'));
  try {
    const mb = (p: string) => (statSync(p).size / 1e6).toFixed(0);
    const small = convertPair(`layer convert, debian-minbase layer (${mb(layer)} MB gzip)`, layer, diffId, o, work);
    const big = convertPair(`layer convert, 1 GiB layer (${mb(big1g)} MB gzip)`, big1g, null, o, work);
    o.log(
      `peak RSS, small → 1 GiB layer: ours ${small.sides[0]!.rssMiB.toFixed(0)} → ${big.sides[0]!.rssMiB.toFixed(0)} MiB, ` +
        `mkfs.erofs ${small.sides[1]!.rssMiB.toFixed(0)} → ${big.sides[1]!.rssMiB.toFixed(0)} MiB (goal: flat, ≤ 200 MiB)`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Stitch micro-benchmark, IN-PROCESS (no peer builds fsmeta + VMDK; the whole-process cost of a
 * stitch is inside the cold pulls): fsmeta + VMDK build time, median/min/max over the rounds
 * (goal ≤ 100 ms each case once layers exist).
 *
 * - `synthetic-7k`: a ~7,000-entry layer tree shaped like a Debian minbase root (dirs, files,
 *   symlinks, hardlinks, xattrs), merged with a small upper layer; planFsmeta + write + VMDK text.
 * - `multilayer`: the 5-layer fixture image, converted once (not timed), then `stitchLayers`
 *   (read every layer with the reader, merge, write fsmeta and the VMDK, validate, rename).
 *
 * Run: `npm run bench -- stitch`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readErofsTree } from '../src/erofs/reader.js';
import { newDir, newMeta, type DirNode, type Inode } from '../src/erofs/tree.js';
import { convertLayer } from '../src/erofs/convert.js';
import { planFsmeta, stitchVmdkText, writeFsmetaPlan } from '../src/stitch/build.js';
import { uuidTag } from '../src/stitch/fsmeta.js';
import { stitchLayers } from '../src/stitch/stitch.js';
import { cidOf } from '../src/stitch/vmdk.js';
import { ensureImages } from '../test/helpers/env.js';
import { fmtMs, median, type BenchOptions } from './harness.js';
import { ociLayers } from '../test/helpers/stitch-fixtures.js';

export interface BenchResult {
  name: string;
  entries: number;
  layers: number;
  ms: number;
  fsmetaBytes: number;
}

/** A deterministic ~`n`-entry tree; files get consecutive data blocks from block 1. */
export function syntheticTree(n: number): { root: DirNode; entries: number; blocks: number } {
  const root = newDir(true);
  let entries = 0;
  let block = 1;
  let seed = 12345;
  const rnd = (m: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % m;
  };
  const dirs: DirNode[] = [root];
  let lastFile: Inode | undefined;
  while (entries < n) {
    const parent = dirs[rnd(dirs.length)]!;
    const r = rnd(100);
    const name = `${['lib', 'usr', 'share', 'doc', 'bin', 'x86_64', 'python3', 'locale', 'man'][rnd(9)]}-${entries}${r < 50 ? '.so.1' : ''}`;
    if (r < 9) {
      const d = newDir(false, newMeta({ mode: 0o755, mtime: 1700000000n }));
      parent.children.set(name, d);
      dirs.push(d);
    } else if (r < 15) {
      const t = Buffer.from(`/usr/lib/x86_64-linux-gnu/${name}`);
      parent.children.set(name, {
        kind: 'symlink',
        meta: newMeta({ mode: 0o777, mtime: 1700000000n }),
        size: t.length,
        target: t,
      });
    } else if (r < 16 && lastFile) {
      parent.children.set(name, lastFile); // hardlink
    } else {
      const size = rnd(4) === 0 ? rnd(200_000) : rnd(6000);
      const f: Inode = {
        kind: 'file',
        meta: newMeta({
          mode: 0o644,
          mtime: 1700000000n,
          xattrs: r > 98 ? [{ index: 6, suffix: Buffer.from('capability'), value: Buffer.alloc(20, 1) }] : [],
        }),
        size,
      };
      if (size > 0) {
        f.data = { device: 0, startBlock: block };
        block += Math.ceil(size / 4096);
      }
      parent.children.set(name, f);
      lastFile = f;
    }
    entries++;
  }
  return { root, entries, blocks: block + 200 };
}

async function timeFsmetaAndVmdk(
  dir: string,
  name: string,
  layers: { root: DirNode; sizeBytes: number; uuid: Buffer }[],
  entries: number,
): Promise<BenchResult> {
  const t0 = performance.now();
  const plan = planFsmeta(layers.map((l) => ({ root: l.root, sizeBytes: l.sizeBytes, tag: uuidTag(l.uuid) })));
  const out = join(dir, `${name}-${Math.random().toString(16).slice(2)}.erofs`);
  await writeFsmetaPlan(plan, out, { uuid: Buffer.alloc(16, 7) });
  stitchVmdkText(
    cidOf('sha256:' + 'ab'.repeat(32)),
    { path: out, sizeBytes: plan.blocks * 4096 },
    layers.map((l, i) => ({ path: `/cache/layers/l${i}.erofs`, sizeBytes: l.sizeBytes })),
  );
  const ms = performance.now() - t0;
  return { name, entries, layers: layers.length, ms, fsmetaBytes: plan.blocks * 4096 };
}

const mmm = (xs: number[]) =>
  `median ${fmtMs(median(xs))} (min ${fmtMs(Math.min(...xs))}, max ${fmtMs(Math.max(...xs))})`;

/** Runs the stitch micro-benchmarks, `o.rounds` runs of each case. */
export async function benchStitch(o: BenchOptions): Promise<void> {
  const runs = Math.max(1, o.rounds);
  const dir = mkdtempSync(join(tmpdir(), 'msb-bench-stitch-'));
  try {
    const big = syntheticTree(7000);
    const upper = syntheticTree(300);
    const layers = [
      { root: big.root, sizeBytes: big.blocks * 4096, uuid: Buffer.alloc(16, 1) },
      { root: upper.root, sizeBytes: upper.blocks * 4096, uuid: Buffer.alloc(16, 2) },
    ];
    const synth: BenchResult[] = [];
    for (let i = 0; i < runs; i++)
      synth.push(await timeFsmetaAndVmdk(dir, 'synthetic-7k', layers, big.entries + upper.entries));
    o.log(
      `in-process, ${runs} runs: fsmeta + VMDK of a synthetic ${synth[0]!.entries}-entry, 2-layer tree (fsmeta ${synth[0]!.fsmetaBytes} B): ${mmm(synth.map((r) => r.ms))}`,
    );

    // multilayer: convert once (not timed), then fsmeta+VMDK from the trees, and the whole stitchLayers.
    const { layers: oci } = ociLayers(ensureImages().oci, 'multilayer');
    const paths: string[] = [];
    for (const [k, l] of oci.entries()) {
      const p = join(dir, `L${k + 1}.erofs`);
      await convertLayer(l.blob, p);
      paths.push(p);
    }
    const read = await Promise.all(paths.map((p) => readErofsTree(p)));
    const entries = read.reduce((n, r) => n + countEntries(r.root), 0);
    const ml = read.map((r) => ({ root: r.root, sizeBytes: r.blocks * 4096, uuid: r.uuid }));
    const trees: number[] = [];
    const whole: number[] = [];
    for (let i = 0; i < runs; i++) {
      trees.push((await timeFsmetaAndVmdk(dir, 'multilayer-trees', ml, entries)).ms);
      const t0 = performance.now();
      await stitchLayers(paths, join(dir, `out-${i}`));
      whole.push(performance.now() - t0);
    }
    o.log(
      `in-process, ${runs} runs: fsmeta + VMDK from the trees of the 5-layer fixture (${entries} entries): ${mmm(trees)}`,
    );
    o.log(
      `in-process, ${runs} runs: stitchLayers of the 5-layer fixture (read, merge, write, validate, rename): ${mmm(whole)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function countEntries(d: DirNode): number {
  let n = 0;
  for (const c of d.children.values()) n += 1 + (c.kind === 'dir' ? countEntries(c) : 0);
  return n;
}

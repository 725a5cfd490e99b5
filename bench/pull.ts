/**
 * Pull benchmarks, whole processes from the loopback bench registry (port 5055, own storage):
 *
 * - `pull`: cold `msb pull` of debian-minbase (one ~95 MB gzip layer) into an empty cache vs the
 *   peer (bench/peer-pull.sh: `skopeo copy` + `mkfs.erofs --tar=f --ungzip`) vs the floor
 *   (bench/floor.ts: GET + gunzip + sha256 of both streams, nothing else); the floor's parts
 *   (GET only; decompress + hashes from the file); warm `msb pull` (cache hit) vs `node -e 0`.
 * - `many`: cold `msb pull` of the 7-layer, ~500 MiB image (gzip, then zstd) vs skopeo copy + one
 *   mkfs.erofs per layer two at a time, and vs the floor over all its layers (two at a time).
 *
 * Goals (issue 12): cold ≤ 0.8× peer and ≤ 2× floor; warm ≤ 2× `node -e 0`; peak RSS ≤ 200 MiB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FloorBlob, FloorJob } from './floor.js';
import { benchScript, msb, NODE_BARE, PROJECT_ROOT, requireBuilt } from './commands.js';
import {
  BENCH_REGISTRY,
  benchRegistry,
  debianImage,
  manyLayerImage,
  MKFS,
  ociImage,
  type LayerBlob,
} from './fixtures.js';
import { compare, figures, runOnce, type BenchOptions, type Side } from './harness.js';
import { PhaseProfile } from './profile.js';

const PEER = join(PROJECT_ROOT, 'bench', 'peer-pull.sh');

function floorSide(label: string, job: FloorJob): Side {
  return {
    label,
    cmd: {
      argv: benchScript('floor.js', JSON.stringify(job)),
      check: (stdout) => (JSON.parse(stdout) as { ms: number }).ms,
    },
  };
}

function floorBlobs(repo: string, layers: LayerBlob[]): FloorBlob[] {
  return layers.map((l) => ({
    url: `http://${BENCH_REGISTRY}/v2/${repo}/blobs/${l.digest}`,
    path: l.path,
    digest: l.digest,
    diffId: l.diffId,
    kind: l.mediaType.endsWith('zstd') ? 'zstd' : 'gzip',
  }));
}

/** Cold pull of `repo:tag`: ours vs the peer pipeline vs the floor, alternating. */
function coldPull(
  title: string,
  repo: string,
  tag: string,
  layers: LayerBlob[],
  o: BenchOptions,
  work: string,
  floorConcurrency: number,
): void {
  const ref = `${BENCH_REGISTRY}/${repo}:${tag}`;
  const home = join(work, 'home');
  const peerOut = join(work, 'peer');
  const profile = new PhaseProfile(join(work, 'profile.jsonl'));
  const ours: Side = {
    label: 'msb pull',
    cmd: {
      argv: msb('--home', home, 'pull', '-q', ref),
      env: profile.env(),
      before: () => {
        rmSync(home, { recursive: true, force: true });
        profile.reset();
      },
      check: () => {
        profile.collect();
      },
    },
  };
  const peer: Side = {
    label: `skopeo copy + mkfs.erofs${layers.length > 1 ? ' ×' + layers.length + ' (xargs -P2)' : ''}`,
    cmd: { argv: ['bash', PEER, MKFS, ref, peerOut], before: () => rmSync(peerOut, { recursive: true, force: true }) },
  };
  const floor = floorSide(
    `floor: GET+${layers[0]!.mediaType.endsWith('zstd') ? 'unzstd' : 'gunzip'}+2×sha256${floorConcurrency > 1 ? ' (2 at a time)' : ''}`,
    { mode: 'full', blobs: floorBlobs(repo, layers), concurrency: floorConcurrency },
  );
  const c = compare(title, [ours, peer, floor], o, [{ vs: 1, ratio: 0.8 }, { vs: 2, ratio: 2 }, { rssMiB: 200 }]);
  profile.print(o.log, c.sides[0]!.median);
  rmSync(home, { recursive: true, force: true });
  rmSync(peerOut, { recursive: true, force: true });
}

export async function benchPull(o: BenchOptions): Promise<void> {
  requireBuilt();
  benchRegistry(o.log);
  const deb = debianImage(o.log);
  const repo = 'peers/debian-minbase';
  const mb = (deb.layers[0]!.size / 1e6).toFixed(1);
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-pull-'));
  try {
    coldPull(`cold pull, debian-minbase (1 layer, ${mb} MB gzip)`, repo, 'latest', deb.layers, o, work, 1);
    const blobs = floorBlobs(repo, deb.layers);
    figures(
      'cold-pull floor, by part (debian-minbase)',
      [
        floorSide('GET + sha256 (network)', { mode: 'net', blobs }),
        floorSide('file + gunzip + 2×sha256', { mode: 'file', blobs }),
        floorSide('GET + gunzip + 2×sha256', { mode: 'full', blobs }),
        NODE_BARE,
      ],
      o,
    );

    const home = join(work, 'warm-home');
    runOnce({ argv: msb('--home', home, 'pull', '-q', `${BENCH_REGISTRY}/${repo}:latest`) }); // untimed: fill the cache
    compare(
      'warm pull (cache hit), debian-minbase',
      [
        { label: 'msb pull', cmd: { argv: msb('--home', home, 'pull', '-q', `${BENCH_REGISTRY}/${repo}:latest`) } },
        NODE_BARE,
      ],
      o,
      [{ vs: 1, ratio: 2 }, { rssMiB: 200 }],
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function benchMany(o: BenchOptions): Promise<void> {
  requireBuilt();
  benchRegistry(o.log, { many: true });
  const { oci } = manyLayerImage(o.log);
  const work = mkdtempSync(join(tmpdir(), 'msb-bench-many-'));
  try {
    for (const [tag, ociTag] of [
      ['latest', 'many-layer'],
      ['zstd', 'many-layer-zstd'],
    ] as const) {
      const img = ociImage(oci, ociTag);
      if (!img) throw new Error(`${oci} has no tag ${ociTag}`);
      const mb = (img.layers.reduce((n, l) => n + l.size, 0) / 1e6).toFixed(0);
      coldPull(
        `cold pull, many-layer (${img.layers.length} layers, ${mb} MB ${tag === 'zstd' ? 'zstd' : 'gzip'})`,
        'bench/many-layer',
        tag,
        img.layers,
        o,
        work,
        2,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

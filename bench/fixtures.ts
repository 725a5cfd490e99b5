/**
 * The benchmark fixtures, built once per machine under MSB_TEST_FIXTURES and never shared with the
 * tests' images: the Debian minbase image (`bench-images/`, WITH_DEBIAN=1 build-test-images.sh),
 * the many-layer image and the 1 GiB layer (`bench-many/`, build-bench-images.sh), and a registry
 * on port 5055 with its own storage serving both. Each build runs under flock with a marker keyed
 * by its script's hash, so an edited script rebuilds and parallel callers build once.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './commands.js';

const SCRIPTS = join(PROJECT_ROOT, 'test', 'fixtures');
export const TOOLS = process.env.MSB_TOOLS ?? '/opt/msb-tools';
export const MKFS = join(TOOLS, 'erofs-utils-1.9.4', 'bin', 'mkfs.erofs');
const FIXTURE_ROOT = process.env.MSB_TEST_FIXTURES ?? '/tmp/msb-test-fixtures';
const DEBIAN_DIR = join(FIXTURE_ROOT, 'bench-images');
const MANY_DIR = join(FIXTURE_ROOT, 'bench-many');
export const BENCH_PORT = 5055;
const REG_BASE = join(FIXTURE_ROOT, `registry-${BENCH_PORT}`);
export const BENCH_REGISTRY = `127.0.0.1:${BENCH_PORT}`;

export interface LayerBlob {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
  path: string;
}

function scriptHash(name: string): string {
  return createHash('sha256')
    .update(readFileSync(join(SCRIPTS, name)))
    .digest('hex')
    .slice(0, 16);
}

/** Runs `cmd` under flock(1) on `lock`; -o keeps a daemon started by cmd from holding the lock. */
function locked(lock: string, cmd: string[], env: NodeJS.ProcessEnv = process.env): void {
  mkdirSync(FIXTURE_ROOT, { recursive: true });
  execFileSync('flock', ['-o', lock, ...cmd], { stdio: ['ignore', 'ignore', 'inherit'], env, maxBuffer: 64 << 20 });
}

/** Layers of tag `tag` in the OCI layout `oci`, with their diff_ids from the config. */
export function ociImage(oci: string, tag: string): { manifest: string; layers: LayerBlob[] } | null {
  if (!existsSync(join(oci, 'index.json'))) return null;
  const blob = (d: string) => join(oci, 'blobs', 'sha256', d.slice(7));
  const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) return null;
  const man = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as {
    config: { digest: string };
    layers: Array<{ digest: string; size: number; mediaType: string }>;
  };
  const cfg = JSON.parse(readFileSync(blob(man.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return {
    manifest: m.digest,
    layers: man.layers.map((l, i) => ({ ...l, diffId: cfg.rootfs.diff_ids[i]!, path: blob(l.digest) })),
  };
}

/** The Debian minbase image (one ~95 MB gzip layer); debootstraps it once when missing. */
export function debianImage(log: (s: string) => void = () => undefined): {
  oci: string;
  rootfs: string;
  layers: LayerBlob[];
} {
  const oci = join(DEBIAN_DIR, 'oci');
  let img = ociImage(oci, 'debian-minbase');
  if (!img) {
    log(`building the Debian minbase fixture in ${DEBIAN_DIR} (debootstrap, a few minutes once)…`);
    locked(
      join(FIXTURE_ROOT, 'bench-images.lock'),
      [
        'bash',
        '-c',
        `[ -n "$(umoci ls --layout '${oci}' 2>/dev/null | grep -x debian-minbase)" ] || bash '${join(SCRIPTS, 'build-test-images.sh')}' '${DEBIAN_DIR}'`,
      ],
      { ...process.env, WITH_DEBIAN: '1' },
    );
    img = ociImage(oci, 'debian-minbase');
    if (!img) throw new Error('debian-minbase fixture was not built');
  }
  return { oci, rootfs: join(DEBIAN_DIR, 'debian-rootfs'), layers: img.layers };
}

/** Path of the Debian minbase layer blob (.tar.gz), or MSB_BENCH_LAYER. */
export function debianLayer(log: (s: string) => void = () => undefined): string {
  return process.env.MSB_BENCH_LAYER ?? debianImage(log).layers[0]!.path;
}

/** The many-layer image (gzip and zstd tags) and the 1 GiB layer; built once from the Debian rootfs. */
export function manyLayerImage(log: (s: string) => void = () => undefined): { oci: string; big1g: string } {
  const deb = debianImage(log);
  const marker = join(FIXTURE_ROOT, `bench-many.${scriptHash('build-bench-images.sh')}.done`);
  if (!existsSync(marker)) {
    log(`building the many-layer fixture in ${MANY_DIR} (downloads ~57 MB of Debian packages once; a few minutes)…`);
    locked(
      join(FIXTURE_ROOT, 'bench-many.lock'),
      [
        'bash',
        '-c',
        `[ -e '${marker}' ] || { rm -f '${FIXTURE_ROOT}'/bench-many.*.done && bash '${join(SCRIPTS, 'build-bench-images.sh')}' '${MANY_DIR}' >&2 && touch '${marker}'; }`,
      ],
      { ...process.env, DEBIAN_ROOTFS: deb.rootfs },
    );
  }
  return { oci: join(MANY_DIR, 'oci'), big1g: join(MANY_DIR, 'big-1g.tar.gz') };
}

/**
 * Starts the bench registry (port 5055, own storage) and pushes the bench images once each
 * (markers keyed by manifest digest, so a rebuilt fixture is pushed again). Returns host:port.
 */
export function benchRegistry(log: (s: string) => void = () => undefined, what: { many?: boolean } = {}): string {
  const deb = debianImage(log);
  locked(join(FIXTURE_ROOT, `registry-${BENCH_PORT}.lock`), [
    'bash',
    join(SCRIPTS, 'start-registry.sh'),
    String(BENCH_PORT),
    REG_BASE,
    'noauth',
  ]);
  const push = (oci: string, tag: string, repo: string) => {
    const img = ociImage(oci, tag);
    if (!img) throw new Error(`${oci} has no tag ${tag}`);
    const marker = join(REG_BASE, `pushed.${repo.replace(/[/:]/g, '_')}.${img.manifest.slice(7, 23)}`);
    if (existsSync(marker)) return;
    log(`pushing ${tag} to the bench registry as ${repo} (once)…`);
    locked(join(REG_BASE, 'push.lock'), [
      'bash',
      '-c',
      `[ -e '${marker}' ] || { skopeo copy -q --dest-tls-verify=false --preserve-digests 'oci:${oci}:${tag}' 'docker://${BENCH_REGISTRY}/${repo}' && touch '${marker}'; }`,
    ]);
  };
  push(deb.oci, 'debian-minbase', 'peers/debian-minbase:latest');
  if (what.many) {
    const many = manyLayerImage(log);
    push(many.oci, 'many-layer', 'bench/many-layer:latest');
    // --preserve-digests on a layout that is already zstd: skopeo cannot swap in cached gzip blobs
    push(many.oci, 'many-layer-zstd', 'bench/many-layer:zstd');
  }
  return BENCH_REGISTRY;
}

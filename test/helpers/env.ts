/**
 * Shared test plumbing around REAL peers: the kernel's EROFS mount, erofs-utils 1.9.4, umoci,
 * skopeo, the CNCF distribution registry, tree listings. Fixtures are built once per machine and
 * reused across test files (marker file keyed by the build script's hash).
 *
 * Nothing here skips: a missing tool is a thrown error, so a test that needs it fails.
 */
import { execFileSync, spawnSync, type ExecFileSyncOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (works from src test/ via tsx and from dist/test/ after tsc). */
export const PROJECT_ROOT = (() => {
  let d = fileURLToPath(new URL('.', import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = join(d, '..');
  return d;
})();
export const FIXTURE_SCRIPTS = join(PROJECT_ROOT, 'test', 'fixtures');
export const TOOLS = process.env.MSB_TOOLS ?? '/opt/msb-tools';
export const FIXTURE_ROOT = process.env.MSB_TEST_FIXTURES ?? '/tmp/msb-test-fixtures';

/** Path of an erofs-utils 1.9.4 binary (fsck.erofs, mkfs.erofs, dump.erofs). Throws if not built. */
export function erofsUtils(bin: 'fsck.erofs' | 'mkfs.erofs' | 'dump.erofs'): string {
  const p = join(TOOLS, 'erofs-utils-1.9.4', 'bin', bin);
  if (!existsSync(p)) throw new Error(`${p} missing: run scripts/setup-system.sh`);
  return p;
}

export function run(cmd: string, args: string[], opts: ExecFileSyncOptions = {}): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 << 20,
    ...opts,
  }) as string;
}

/** Runs and returns {status, stdout, stderr} without throwing. */
export function runStatus(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A fresh temporary directory; removed by the returned cleanup (call it in t.after). */
export function tempDir(prefix = 'msb-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Mounts an EROFS image (or raw disk) read-only with the kernel, through a loop device. */
export function mountErofs(image: string): { dir: string; umount: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'msb-mnt-'));
  run('mount', ['-t', 'erofs', '-o', 'loop,ro', image, dir]);
  let done = false;
  return {
    dir,
    umount: () => {
      if (done) return;
      done = true;
      runStatus('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Canonical tree listing (test/fixtures/tree-manifest.py): type, mode, owner, size+sha256, target, rdev, mtime, links, xattrs. */
export function treeManifest(root: string, flags: string[] = []): string {
  return run('python3', [join(FIXTURE_SCRIPTS, 'tree-manifest.py'), root, ...flags]);
}

function scriptHash(...names: string[]): string {
  const h = createHash('sha256');
  for (const n of names) h.update(readFileSync(join(FIXTURE_SCRIPTS, n)));
  return h.digest('hex').slice(0, 16);
}

/** Runs `fn` under an exclusive flock(1) on `lockPath` so parallel test processes build once. */
function withFileLock(lockPath: string, shellCmd: string): void {
  mkdirSync(join(lockPath, '..'), { recursive: true });
  // -o: the command's children (a registry daemon started in the background) must not inherit the
  // lock descriptor, or the lock stays held for the daemon's whole life and every later call blocks.
  run('flock', ['-o', lockPath, 'bash', '-c', shellCmd], { stdio: ['ignore', 'inherit', 'inherit'] });
}

export interface FixtureImages {
  /** Working directory of build-test-images.sh. */
  dir: string;
  /** OCI layout with tags busybox, busybox-arm64, multiarch, multilayer, multilayer-index, edge-*. */
  oci: string;
  /** Raw layer tars: l2-base-pax.tar, l3-nasty-pax.tar, l4-gnu.tar, l5-quirks.tar, evil.tar, sparse-pax.tar, conttype.tar, empty.tar. */
  layers: string;
}

/** Builds the offline fixture images once per machine (about a minute the first time). */
export function ensureImages(): FixtureImages {
  const dir = join(FIXTURE_ROOT, 'images');
  const marker = join(FIXTURE_ROOT, `images.${scriptHash('build-test-images.sh')}.done`);
  if (!existsSync(marker)) {
    withFileLock(
      join(FIXTURE_ROOT, 'images.lock'),
      `[ -f '${marker}' ] || { bash '${join(FIXTURE_SCRIPTS, 'build-test-images.sh')}' '${dir}' >'${FIXTURE_ROOT}/images.log' 2>&1 || { cat '${FIXTURE_ROOT}/images.log' >&2; exit 1; }; touch '${marker}'; }`,
    );
  }
  return { dir, oci: join(dir, 'oci'), layers: join(dir, 'layers') };
}

export type RegistryMode = 'noauth' | 'auth' | 'token';
export interface TestRegistry {
  host: string;
  port: number;
  mode: RegistryMode;
  base: string;
  log: string;
}

const REGISTRY_PORTS: Record<RegistryMode, number> = { noauth: 5000, auth: 5001, token: 5002 };

/**
 * Starts (once per machine) a real distribution registry on 127.0.0.1 in the given mode and
 * pushes every fixture image into it with skopeo. R0 = noauth :5000, RB = auth :5001 (testuser /
 * testpass), RT = token :5002 (token server on :5082).
 */
export function ensureRegistry(mode: RegistryMode = 'noauth'): TestRegistry {
  const img = ensureImages();
  const port = REGISTRY_PORTS[mode];
  const base = join(FIXTURE_ROOT, `registry-${port}`);
  const marker = join(base, `pushed.${scriptHash('build-test-images.sh', 'push-test-images.sh')}`);
  const creds = mode === 'noauth' ? '' : 'testuser:testpass';
  // Fast path without the lock: already pushed and answering /v2/ (also copes with a lock file still
  // held by a registry daemon started before the `flock -o` fix).
  if (existsSync(marker)) {
    const code = runStatus('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-m',
      '5',
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${port}/v2/`,
    ]).stdout.trim();
    if (code === '200' || code === '401')
      return { host: `127.0.0.1:${port}`, port, mode, base, log: join(base, 'registry.log') };
  }
  withFileLock(
    join(FIXTURE_ROOT, `registry-${port}.lock`),
    `bash '${join(FIXTURE_SCRIPTS, 'start-registry.sh')}' ${port} '${base}' ${mode} >/dev/null && ` +
      // The token server starts in the background: wait until it listens before skopeo needs a token.
      (mode === 'token'
        ? `{ for i in $(seq 100); do curl -s -o /dev/null 'http://127.0.0.1:${port + 80}/' && break; sleep 0.1; done; } && `
        : '') +
      `{ [ -f '${marker}' ] || { bash '${join(FIXTURE_SCRIPTS, 'push-test-images.sh')}' 127.0.0.1:${port} '${img.dir}' '${creds}' >'${base}/push.log' 2>&1 || { cat '${base}/push.log' >&2; exit 1; }; touch '${marker}'; }; }`,
  );
  return { host: `127.0.0.1:${port}`, port, mode, base, log: join(base, 'registry.log') };
}

export function stopRegistry(mode: RegistryMode): void {
  const port = REGISTRY_PORTS[mode];
  runStatus('bash', [join(FIXTURE_SCRIPTS, 'stop-registry.sh'), String(port), join(FIXTURE_ROOT, `registry-${port}`)]);
}

/** `umoci unpack` of OCI_LAYOUT:TAG → rootfs path (the independent OCI merge reference). */
export function umociUnpack(oci: string, tag: string, into: string): string {
  const bundle = join(into, `bundle-${tag}`);
  run('umoci', ['unpack', '--image', `${oci}:${tag}`, bundle]);
  return join(bundle, 'rootfs');
}

export function writeFile(path: string, data: string | Buffer): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, data);
}

/**
 * Helpers of the pull tests (test/pull-*.test.ts): fresh homes, a private registry on the shared
 * fixture storage (so a test can read its access log or stop it without disturbing other test
 * files), spawning the real `msb` CLI, flattening a VMDK with qemu-img, and the "every indexed
 * artifact validates" invariant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { LocalBackend } from '../../src/api/backend.js';
import { checkErofsHeader } from '../../src/erofs/reader.js';
import { diffIdTag } from '../../src/stitch/fsmeta.js';
import { validateFsmetaFile, validateVmdkFile } from '../../src/stitch/validate.js';
import { cidOf } from '../../src/stitch/vmdk.js';
import { digestPathForm, digestUuid } from '../../src/util/digest.js';
import { ensureRegistry, FIXTURE_ROOT, mountErofs, PROJECT_ROOT, run, runStatus, tempDir } from './env.js';

/** A fresh MSB home with an eagerly built backend. */
export async function freshHome(t: { after(fn: () => unknown): void }, opts: { pullConcurrency?: number } = {}) {
  const td = tempDir('msb-pull-');
  const backend = await LocalBackend.builder()
    .home(td.dir)
    .pullConcurrency(opts.pullConcurrency ?? 4)
    .build();
  t.after(async () => {
    await backend.close();
    td.cleanup();
  });
  return { home: td.dir, cache: join(td.dir, 'cache'), backend };
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => ok(p));
    });
  });
}

export interface PrivateRegistry {
  host: string;
  port: number;
  logPath: string;
  /** `GET /v2/<repo>/blobs/<digest>` lines of the access log (each blob GET the registry answered). */
  blobGets(): string[];
  /** Every blob request (GET and HEAD) of the access log. */
  blobRequests(): string[];
  manifestRequests(method?: 'GET' | 'HEAD'): string[];
  stop(): Promise<void>;
  /** Starts it again after stop(), on the same port, storage and log. */
  start(): Promise<void>;
}

export interface PrivateRegistryOptions {
  /**
   * A pull-through cache: distribution's `proxy.remoteurl` is this URL, and the registry stores
   * what it fetched in its own directory (never in the shared fixture storage).
   */
  proxyOf?: string;
}

/**
 * A second CNCF distribution registry process serving R0's storage (pushed once by
 * ensureRegistry('noauth')) on its own port with its own access log. Reads only. With `proxyOf`,
 * a pull-through cache of that registry instead, over its own empty storage.
 */
export async function privateRegistry(
  t?: { after(fn: () => unknown): void },
  opts: PrivateRegistryOptions = {},
): Promise<PrivateRegistry> {
  ensureRegistry('noauth');
  const port = await freePort();
  const dir = join(FIXTURE_ROOT, `private-registry-${process.pid}-${port}`);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.yml');
  const storage = opts.proxyOf
    ? `
    rootdirectory: ${join(dir, 'storage')}
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false`
    : `
    rootdirectory: ${join(FIXTURE_ROOT, 'registry-5000', 'storage')}
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true`;
  writeFileSync(
    config,
    `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:${storage}
http:
  addr: 127.0.0.1:${port}
  secret: peers-private-test-secret
${
  opts.proxyOf
    ? `proxy:
  remoteurl: ${opts.proxyOf}
`
    : ''
}`,
  );
  const logPath = join(dir, 'registry.log');
  const { openSync, closeSync } = await import('node:fs');
  let child: ChildProcess | null = null;
  const start = async (append: boolean) => {
    const fd = openSync(logPath, append ? 'a' : 'w');
    const c = spawn('docker-registry', ['serve', config], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      await new Promise((r) => setTimeout(r, 50));
      up =
        runStatus('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/v2/`]).stdout ===
        '200';
    }
    if (!up) {
      c.kill('SIGKILL');
      throw new Error(`private registry did not start: ${readFileSync(logPath, 'utf8')}`);
    }
    child = c;
  };
  await start(false);
  const lines = () =>
    readFileSync(logPath, 'utf8')
      .split('\n')
      .filter((l) => /^\S+ - - \[/.test(l));
  const reg: PrivateRegistry = {
    host: `127.0.0.1:${port}`,
    port,
    logPath,
    blobGets: () => lines().filter((l) => /"GET \/v2\/\S+\/blobs\/sha\d+:[0-9a-f]+ HTTP/.test(l)),
    blobRequests: () => lines().filter((l) => /"(GET|HEAD) \/v2\/\S+\/blobs\/sha\d+:[0-9a-f]+ HTTP/.test(l)),
    manifestRequests: (method) =>
      lines().filter((l) => new RegExp(`"${method ?? '(GET|HEAD)'} /v2/\\S+/manifests/`).test(l)),
    async stop() {
      const c = child;
      if (!c) return;
      child = null;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await exited;
      }
    },
    async start() {
      if (!child) await start(true);
    },
  };
  t?.after(async () => {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return reg;
}

/** argv (after `node`) for a helper script of test/helpers, from sources (tsx) or from dist/ (compiled tests). */
export function helperArgv(name: 'msb-launch' | 'pull-child'): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'helpers', `${name}.ts`)];
  return [join(PROJECT_ROOT, 'dist', 'test', 'helpers', `${name}.js`)];
}

/** argv for the real `msb` CLI. */
export function msbArgv(): string[] {
  return helperArgv('msb-launch');
}

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns `msb …`; resolves when it exits. `onSpawn` gets the child (to kill it). */
export function msb(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; onSpawn?: (c: ChildProcess) => void; onStderr?: (s: string) => void } = {},
): Promise<CliRun> {
  return new Promise((ok) => {
    const c = spawn(process.execPath, [...msbArgv(), ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (d) => {
      stdout += d;
    });
    c.stderr!.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(String(d));
    });
    c.on('close', (status, signal) => ok({ status, signal, stdout, stderr }));
    opts.onSpawn?.(c);
  });
}

/** `qemu-img convert -O raw` of a VMDK, mounted read-only by the kernel. */
export function mountVmdk(vmdk: string, workDir: string): { dir: string; raw: string; umount: () => void } {
  const raw = join(workDir, `disk-${Date.now()}-${Math.random().toString(16).slice(2)}.raw`);
  run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdk, raw]);
  const m = mountErofs(raw);
  return {
    dir: m.dir,
    raw,
    umount: () => {
      m.umount();
      rmSync(raw, { force: true });
    },
  };
}

/**
 * The crash invariant (acceptance H3): every artifact an index row names validates (docs/storage.md
 * §5), and `layers/`, `fsmeta/`, `vmdk/` hold only complete files (`<alg>_<hex>.<ext>`), nothing
 * partial outside tmp/. Returns a list of problems (empty = consistent).
 */
export async function indexProblems(home: string): Promise<string[]> {
  const problems: string[] = [];
  const cache = join(home, 'cache');
  const dbPath = join(home, 'db', 'msb.db');
  if (!existsSync(dbPath)) return problems;
  const db = new Database(dbPath, { readonly: true });
  try {
    db.pragma('busy_timeout = 5000');
    const layers = db.prepare('SELECT diff_id, erofs_size_bytes FROM layer').all() as {
      diff_id: string;
      erofs_size_bytes: number | null;
    }[];
    const layerSize = new Map<string, number>();
    for (const l of layers) {
      if (l.erofs_size_bytes === null) continue;
      const p = join(cache, 'layers', `${digestPathForm(l.diff_id)}.erofs`);
      try {
        const sb = await checkErofsHeader(p, { uuid: digestUuid(l.diff_id) });
        if (sb.length !== l.erofs_size_bytes)
          problems.push(`layer ${l.diff_id}: length ${sb.length} != row ${l.erofs_size_bytes}`);
        layerSize.set(l.diff_id, sb.length);
      } catch (e) {
        problems.push(`layer ${l.diff_id}: ${(e as Error).message}`);
      }
    }
    const manifests = db.prepare('SELECT id, digest, fsmeta_bytes, vmdk_bytes FROM manifest').all() as {
      id: number;
      digest: string;
      fsmeta_bytes: number | null;
      vmdk_bytes: number | null;
    }[];
    for (const m of manifests) {
      const ml = db
        .prepare(
          'SELECT l.diff_id AS diff_id FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ? ORDER BY ml.position',
        )
        .all(m.id) as { diff_id: string }[];
      if (m.fsmeta_bytes === null || m.vmdk_bytes === null) continue;
      if (ml.some((l) => !layerSize.has(l.diff_id))) {
        problems.push(`manifest ${m.digest}: a layer is invalid`);
        continue;
      }
      const fs = join(cache, 'fsmeta', `${digestPathForm(m.digest)}.erofs`);
      const why = await validateFsmetaFile(fs, {
        uuid: digestUuid(m.digest),
        sizeBytes: m.fsmeta_bytes,
        layers: ml.map((l) => ({ sizeBytes: layerSize.get(l.diff_id)!, tag: diffIdTag(l.diff_id) })),
      });
      if (why) {
        problems.push(`fsmeta ${m.digest}: ${why}`);
        continue;
      }
      const vm = join(cache, 'vmdk', `${digestPathForm(m.digest)}.vmdk`);
      const vwhy = await validateVmdkFile(vm, {
        paths: [fs, ...ml.map((l) => join(cache, 'layers', `${digestPathForm(l.diff_id)}.erofs`))],
        sizes: [m.fsmeta_bytes, ...ml.map((l) => layerSize.get(l.diff_id)!)],
        cid: cidOf(m.digest),
      });
      if (vwhy) problems.push(`vmdk ${m.digest}: ${vwhy}`);
    }
    const refs = db
      .prepare(
        'SELECT r.reference AS reference, m.fsmeta_bytes AS f FROM image_ref r JOIN manifest m ON m.id = r.manifest_id',
      )
      .all() as { reference: string; f: number | null }[];
    for (const r of refs) if (r.f === null) problems.push(`ref ${r.reference} points at a manifest without artifacts`);
  } finally {
    db.close();
  }
  for (const [dir, ext] of [
    ['layers', '.erofs'],
    ['fsmeta', '.erofs'],
    ['vmdk', '.vmdk'],
  ] as const) {
    const d = join(cache, dir);
    if (!existsSync(d)) continue;
    for (const n of readdirSync(d)) {
      if (!/^sha(256|384|512)_[0-9a-f]+\.(erofs|vmdk)$/.test(n) || !n.endsWith(ext))
        problems.push(`${dir}/${n}: not an artifact name (partial file outside tmp/)`);
      else if (!lstatSync(join(d, n)).isFile()) problems.push(`${dir}/${n}: not a regular file`);
    }
  }
  return problems;
}

/** Rows of a table (read-only connection; the backend may be open). */
export function rows<T>(home: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(join(home, 'db', 'msb.db'), { readonly: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

export function tmpEntries(home: string): string[] {
  const d = join(home, 'cache', 'tmp');
  return existsSync(d) ? readdirSync(d).sort() : [];
}

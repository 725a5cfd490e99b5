/**
 * The guest side of the tests: boot a stitched disk as the only disk of a real Linux 6.12 guest
 * (qemu TCG, microvm) and read what the guest saw. The harness lives in scripts/guest/ (build.sh:
 * kernel + initramfs + the static `msb-tree` listing program; boot.sh: the qemu command line; init:
 * what runs in the guest). The same `msb-tree` binary lists `umoci unpack`'s rootfs on the host, so
 * both sides of a comparison come from one program, and the reference is umoci's merge of the
 * image, never our own bytes read another way.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { FIXTURE_ROOT, PROJECT_ROOT, run, runStatus } from './env.js';
import { superblockChecksum } from '../../src/erofs/format.js';
import { DEVICE_SLOT_BYTES, DEVICE_TABLE_OFFSET } from '../../src/stitch/fsmeta.js';

const GUEST_SCRIPTS = join(PROJECT_ROOT, 'scripts', 'guest');
const execFileP = promisify(execFile);

export interface GuestHarness {
  /** build.sh's output: vmlinuz, initramfs.gz, msb-tree, READY. */
  dir: string;
  /** The static listing program (the guest runs the same binary). */
  msbTree: string;
  /** `kernel=<release>` line of READY. */
  kernel: string;
}

/**
 * Builds the harness once per input state (build.sh keys its cache by the hash of its inputs and
 * serialises builds with flock). Throws, so the tests fail, when qemu, the kernel or a build tool
 * is missing: run scripts/setup-system.sh.
 */
export function guestHarness(): GuestHarness {
  if (runStatus('bash', ['-c', 'command -v qemu-system-x86_64']).status !== 0)
    throw new Error('qemu-system-x86_64 missing: run scripts/setup-system.sh');
  const dir = run('bash', [join(GUEST_SCRIPTS, 'build.sh'), join(FIXTURE_ROOT, 'guest')])
    .trim()
    .split('\n')
    .pop()!;
  const ready = readFileSync(join(dir, 'READY'), 'utf8');
  const kernel = /^kernel=(.*)$/m.exec(ready)?.[1] ?? '';
  return { dir, msbTree: join(dir, 'msb-tree'), kernel };
}

/** Runs a program without blocking the event loop (boots run alongside). */
export async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await execFileP(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  return r.stdout;
}

export interface GuestReport {
  /** qemu's exit status (0: the guest powered itself off); null when killed by a signal. */
  exitCode: number | null;
  wallMs: number;
  /** `uname -r` in the guest. */
  kernel: string | null;
  mounted: boolean;
  /** The /proc/mounts line of /mnt/root, or why the mount failed. */
  mountDetail: string;
  /** msb-tree's listing of the EROFS root, present only when its line count and sha256 match. */
  listing: string | null;
  listingProblem: string | null;
  chroot: { rc: number; out: string } | null;
  overlay: Record<string, string> | null;
  done: boolean;
  /** The guest's kernel log (serial console) and the raw report, for failure messages. */
  console: string;
  report: string;
}

/** Boots `disk` (a VMDK, or a raw EROFS disk) in the guest and parses its report. */
export async function bootGuest(
  h: GuestHarness,
  disk: string,
  workDir: string,
  opts: { format?: 'vmdk' | 'raw'; timeoutSec?: number } = {},
): Promise<GuestReport> {
  mkdirSync(workDir, { recursive: true });
  const reportPath = join(workDir, `report-${process.pid}-${Math.random().toString(16).slice(2)}.txt`);
  const t0 = performance.now();
  const { code, out } = await new Promise<{ code: number | null; out: string }>((ok, fail) => {
    const c = spawn(
      'bash',
      [join(GUEST_SCRIPTS, 'boot.sh'), h.dir, disk, reportPath, opts.format ?? 'vmdk', String(opts.timeoutSec ?? 300)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const chunks: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => chunks.push(d));
    c.stderr.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', fail);
    c.on('close', (status) => ok({ code: status, out: Buffer.concat(chunks).toString('latin1') }));
  });
  const wallMs = performance.now() - t0;
  const raw = existsSync(reportPath) ? readFileSync(reportPath).toString('latin1') : '';
  return parseReport(raw, out.replace(/\r/g, ''), code, wallMs);
}

/** Parses the `MSB-…` lines of scripts/guest/init (the report console turns "\n" into "\r\n"). */
export function parseReport(raw: string, consoleLog: string, exitCode: number | null, wallMs: number): GuestReport {
  const report = raw.replace(/\r/g, '');
  const r: GuestReport = {
    exitCode,
    wallMs,
    kernel: null,
    mounted: false,
    mountDetail: 'no MSB-MOUNT line',
    listing: null,
    listingProblem: 'no listing',
    chroot: null,
    overlay: null,
    done: false,
    console: consoleLog,
    report,
  };
  r.kernel = /^MSB-GUEST kernel=(\S+)/m.exec(report)?.[1] ?? null;
  const m = /^MSB-MOUNT (ok|fail) ?(.*)$/m.exec(report);
  if (m) {
    r.mounted = m[1] === 'ok';
    r.mountDetail = m[2]!;
  }
  const begin = report.indexOf('MSB-LIST-BEGIN\n');
  const end = /^MSB-LIST-END lines=(\d+) sha256=([0-9a-f]{64})$/m.exec(report);
  if (begin >= 0 && end) {
    const body = report.slice(begin + 'MSB-LIST-BEGIN\n'.length, end.index);
    const lines = body.split('\n').length - 1;
    const digest = createHash('sha256').update(body, 'latin1').digest('hex');
    if (lines !== Number(end[1]))
      r.listingProblem = `listing has ${lines} lines, the guest wrote ${end[1]} (console lost lines)`;
    else if (digest !== end[2])
      r.listingProblem = `listing sha256 ${digest} != the guest's ${end[2]} (console garbled)`;
    else {
      r.listing = body;
      r.listingProblem = null;
    }
  } else if (/^MSB-LIST fail/m.test(report)) {
    r.listingProblem = /^MSB-LIST fail (.*)$/m.exec(report)![1]!;
  }
  const c = /^MSB-CHROOT rc=(\d+) out=(.*)$/m.exec(report);
  if (c) r.chroot = { rc: Number(c[1]), out: c[2]!.trim() };
  const o = /^MSB-OVERLAY (.*)$/m.exec(report);
  if (o)
    r.overlay = Object.fromEntries(
      o[1]!.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
  r.done = /^MSB-DONE/m.test(report);
  return r;
}

/** The last lines of the kernel log and the report's status lines: context for a failed assertion. */
export function describeRun(r: GuestReport): string {
  const status = r.report
    .split('\n')
    .filter((l) => l.startsWith('MSB-'))
    .join('\n');
  return `qemu exit ${r.exitCode}, ${(r.wallMs / 1000).toFixed(1)} s\n--- report ---\n${status}\n--- kernel log (tail) ---\n${r.console.split('\n').slice(-30).join('\n')}`;
}

export interface Reference {
  /** msb-tree's listing of umoci's rootfs. */
  listing: string;
  /** Seconds since the epoch when the unpack started: umoci gives directories it creates this time. */
  unpackStartSec: number;
  rootfs: string;
}

/** `umoci unpack` of LAYOUT:TAG, listed by msb-tree: the independent reference of the OCI merge. */
export async function umociReference(
  h: GuestHarness,
  layout: string,
  tag: string,
  workDir: string,
): Promise<Reference> {
  const bundle = join(workDir, `bundle-${tag}-${Math.random().toString(16).slice(2)}`);
  const unpackStartSec = Math.floor(Date.now() / 1000) - 1;
  await sh('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  return { listing: await sh(h.msbTree, [rootfs]), unpackStartSec, rootfs };
}

interface Entry {
  path: string;
  type: string;
  fields: Map<string, string>;
}

/** One msb-tree line: `<path> <type> key=value…` (msb-tree escapes spaces; tree-manifest.py does not). */
function parseLine(line: string): Entry {
  const m = /^(.*?) (dir|file|symlink|chr|blk|fifo|sock|unknown) (mode=.*)$/.exec(line);
  if (!m) throw new Error(`not an msb-tree line: ${line}`);
  const fields = new Map<string, string>();
  for (const kv of m[3]!.split(' ')) fields.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1));
  return { path: m[1]!, type: m[2]!, fields };
}

export function parseListing(listing: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const l of listing.split('\n'))
    if (l) {
      const e = parseLine(l);
      out.set(e.path, e);
    }
  return out;
}

const render = (e: Entry) => `${e.path} ${e.type} ${[...e.fields].map(([k, v]) => `${k}=${v}`).join(' ')}`;

/**
 * The guest's listing equals umoci's, field by field, with ONE documented exception: the mtime of
 * a directory umoci had to invent. umoci gives the root and every directory a layer implies but
 * does not contain (a parent it creates for `a/b/c`) the time of the unpack; our merge keeps the
 * layers' value (the root's tar entry, or 0 for an implied directory). A directory whose mtime
 * umoci took from a tar header is compared like everything else.
 */
export function assertSameListing(guest: string, ref: Reference, label: string): void {
  const g = parseListing(guest);
  const u = parseListing(ref.listing);
  for (const [path, e] of u) {
    const mt = e.fields.get('mtime');
    if (e.type !== 'dir' || mt === undefined || Number(mt.split('.')[0]) < ref.unpackStartSec) continue;
    e.fields.delete('mtime');
    g.get(path)?.fields.delete('mtime');
  }
  const gl = [...g.values()].map(render);
  const ul = new Set([...u.values()].map(render));
  const gs = new Set(gl);
  const onlyGuest = gl.filter((l) => !ul.has(l));
  const onlyUmoci = [...ul].filter((l) => !gs.has(l));
  assert.deepEqual(
    {
      onlyGuest: onlyGuest.slice(0, 20),
      onlyUmoci: onlyUmoci.slice(0, 20),
      counts: [onlyGuest.length, onlyUmoci.length],
    },
    { onlyGuest: [], onlyUmoci: [], counts: [0, 0] },
    `${label}: the guest's listing of /dev/vda differs from umoci unpack's`,
  );
}

/** msb-tree's escaping (\xHH for spaces, bytes outside printable ASCII and the backslash) undone. */
export function unescapePath(s: string): string {
  return Buffer.from(
    s.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  ).toString('utf8');
}

/**
 * msb-tree's listing in test/fixtures/tree-manifest.py's form (the listing the host-side tests
 * use): no nlink=, unescaped paths and targets, and each hardlink group named by its smallest path
 * on both sides (tree-manifest.py names it by the first path of its walk).
 */
export function asTreeManifest(listing: string, isMsbTree: boolean): string[] {
  const lines = listing
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const e = parseLine(l);
      const path = isMsbTree ? unescapePath(e.path) : e.path;
      const fields = [...e.fields]
        .filter(([k]) => k !== 'nlink')
        .map(
          ([k, v]) =>
            [
              isMsbTree && k.startsWith('xattr.') ? unescapePath(k) : k,
              isMsbTree && k === 'target' ? unescapePath(v) : v,
            ] as const,
        );
      return { path, type: e.type, fields };
    });
  const groups = new Map<string, string>();
  for (const l of lines) {
    const link = l.fields.find(([k]) => k === 'link')?.[1];
    if (link !== undefined && (!groups.has(link) || l.path < groups.get(link)!)) groups.set(link, l.path);
  }
  // A group's key is its first member's path in both forms; map every member to the smallest path.
  return lines
    .map((l) => `${l.path} ${l.type} ${l.fields.map(([k, v]) => `${k}=${k === 'link' ? groups.get(v) : v}`).join(' ')}`)
    .sort();
}

/**
 * The negative control's disk: a copy of the VMDK whose fsmeta is a copy with device slot
 * `slot`'s mapped_blkaddr moved by `delta` blocks (its superblock checksum recomputed, so the
 * kernel still mounts it). Layer files are the originals. Returns the new descriptor's path and
 * the byte ranges that changed in fsmeta.
 */
export function misplacedDeviceVmdk(
  vmdk: string,
  outDir: string,
  slot = 0,
  delta = 1,
): { vmdk: string; fsmeta: string; changed: [number, number][] } {
  mkdirSync(outDir, { recursive: true });
  const desc = readFileSync(vmdk, 'utf8');
  const extent = /^RW \d+ FLAT "([^"]+)" 0$/m.exec(desc);
  if (!extent) throw new Error(`${vmdk}: no first extent`);
  const fsmeta = join(outDir, 'fsmeta-misplaced.erofs');
  copyFileSync(extent[1]!, fsmeta);
  const b = readFileSync(fsmeta);
  const at = DEVICE_TABLE_OFFSET + DEVICE_SLOT_BYTES * slot + 0x44; // mapped_blkaddr (u32 LE)
  b.writeUInt32LE(b.readUInt32LE(at) + delta, at);
  b.writeUInt32LE(superblockChecksum(b.subarray(0, 4096)), 1024 + 4);
  writeFileSync(fsmeta, b);
  const out = join(outDir, 'misplaced.vmdk');
  writeFileSync(out, desc.replace(`"${extent[1]}"`, `"${fsmeta}"`));
  return {
    vmdk: out,
    fsmeta,
    changed: [
      [1024 + 4, 1024 + 8],
      [at, at + 4],
    ],
  };
}

/** A tar with every CONTTYPE ('7') header rewritten to REGTYPE ('0'), checksums recomputed. */
export function contiguousAsRegular(tar: Buffer): Buffer {
  const out = Buffer.from(tar);
  for (let off = 0; off + 512 <= out.length; ) {
    const h = out.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim() || '0', 8);
    if (h[156] === 0x37) {
      h[156] = 0x30;
      h.fill(0x20, 148, 156);
      const sum = h.reduce((a, x) => a + x, 0);
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * umoci rejects tar typeflag '7' (contiguous file), which POSIX says a reader treats as a regular
 * file, so edge-conttype's reference is umoci's merge of the same layers with that one header
 * rewritten to '0' (busybox + the rewritten layer, added with `umoci raw add-layer`).
 */
export async function conttypeReference(
  h: GuestHarness,
  fx: { oci: string; layers: string },
  workDir: string,
): Promise<Reference> {
  const layout = join(workDir, 'conttype-oci');
  await sh('skopeo', ['copy', '-q', `oci:${fx.oci}:busybox`, `oci:${layout}:conttype-as-regular`]);
  const tar = join(workDir, 'conttype-as-regular.tar');
  const orig = readFileSync(join(fx.layers, 'conttype.tar'));
  const fixed = contiguousAsRegular(orig);
  assert.equal(orig[156], 0x37, 'the fixture layer starts with a contiguous-file entry');
  assert.equal(fixed[156], 0x30);
  writeFileSync(tar, fixed);
  await sh('umoci', [
    'raw',
    'add-layer',
    '--history.created',
    '2024-01-01T00:00:00Z',
    '--image',
    `${layout}:conttype-as-regular`,
    tar,
  ]);
  return umociReference(h, layout, 'conttype-as-regular', join(workDir, 'umoci'));
}

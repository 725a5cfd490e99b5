/**
 * Pulls against the real CNCF distribution registry (a private instance on R0's storage, so this
 * file can read its access log and stop it), plus F (test/helpers/fault-server.ts) only for what
 * a real registry cannot do: acceptance C1–C6, C13, C14, C16, C19–C21, C27, and for every pulled
 * image: its VMDK, flattened by `qemu-img convert -O raw` and mounted by the kernel, equals
 * `umoci unpack` of the same image (allowed differences: docs/erofs.md §6.11, directory mtimes).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Database from 'better-sqlite3';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import type { PullEvent, PullResult } from '../../src/api/types.js';
import { checkErofsHeader } from '../../src/erofs/reader.js';
import { MsbError } from '../../src/errors.js';
import { ensureImages, ensureRegistry, tempDir, treeManifest, umociUnpack } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import {
  freshHome,
  indexProblems,
  mountVmdk,
  privateRegistry,
  rows,
  tmpEntries,
  type PrivateRegistry,
} from '../helpers/pull-env.js';
import { flipByte } from '../helpers/bytes.js';

ensureRegistry('noauth');
const fx = ensureImages();
const work = tempDir('msb-pull-reg-');
let P: PrivateRegistry;
const faults: FaultServer[] = [];
before(async () => {
  P = await privateRegistry();
});
after(async () => {
  for (const f of faults) await f.close();
  await P.stop();
  work.cleanup();
});

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const types = (ev: PullEvent[]) => ev.map((e) => e.type);
const isCode = (code: string) => (e: unknown) => e instanceof MsbError && e.code === code;

async function pull(
  b: LocalBackend,
  ref: string,
  o: Parameters<typeof Image.pullLocal>[2] = {},
): Promise<{ r: PullResult; events: PullEvent[] }> {
  const events: PullEvent[] = [];
  const r = await Image.pullLocal(b, ref, {
    ...o,
    onProgress: (e) => {
      events.push(e);
      o.onProgress?.(e);
    },
  });
  return { r, events };
}

/** The kernel-mounted flattened VMDK equals umoci's unpack of `ociTag` (dir mtimes aside, docs/erofs.md §6.11). */
const umociCache = new Map<string, string>();
function assertSameTreeAsUmoci(r: PullResult, ociTag: string): void {
  let ref = umociCache.get(ociTag);
  if (!ref) {
    const root = umociUnpack(fx.oci, ociTag, work.dir);
    ref = treeManifest(root, ['--no-dir-mtime']);
    umociCache.set(ociTag, ref);
  }
  const m = mountVmdk(r.artifacts.vmdkPath, work.dir);
  try {
    const ours = treeManifest(m.dir, ['--no-dir-mtime']);
    // The root directory's metadata comes from the layers here and from the bundle for umoci.
    const strip = (s: string) =>
      s
        .split('\n')
        .filter((l) => !l.startsWith('/ '))
        .join('\n');
    assert.equal(
      strip(ours),
      strip(ref),
      `${r.reference}: kernel mount of the VMDK differs from umoci unpack of ${ociTag}`,
    );
  } finally {
    m.umount();
  }
}

function layerBlobGets(reg: { blobGets(): string[] }, digests: string[]): number {
  return reg.blobGets().filter((l) => digests.some((d) => l.includes(d))).length;
}

test('C1/C2: a cold pull emits the events in order and every artifact validates; with the registry stopped, a cache hit of exactly 3 events', async (t) => {
  const reg = await privateRegistry(t);
  const { backend, home } = await freshHome(t);
  const { r, events } = await pull(backend, `${reg.host}/peers/busybox`);
  assert.equal(r.cached, false);
  assert.equal(r.source, reg.host);
  assert.equal(r.reference, `${reg.host}/peers/busybox:latest`);
  const ty = types(events);
  assert.deepEqual(ty.slice(0, 2), ['resolving', 'resolved']);
  assert.deepEqual(ty.slice(-3), ['stitchStarted', 'stitchComplete', 'complete']);
  for (const x of ty.slice(2, -3)) assert.match(x, /^layer/);
  assert.ok(ty.includes('layerDownloadStarted') && ty.includes('layerMaterializeComplete'));
  assert.deepEqual(
    r.layers.map((l) => [l.downloaded, l.materialized]),
    [[true, true]],
  );
  assert.deepEqual(await indexProblems(home), []);
  for (const p of [r.artifacts.vmdkPath, r.artifacts.fsmetaPath, ...r.artifacts.layers.map((l) => l.path)])
    assert.ok(statSync(p).isFile(), p);
  assertSameTreeAsUmoci(r, 'busybox');

  await reg.stop();
  const before2 = r.handle.lastUsedAt.getTime();
  await new Promise((res) => setTimeout(res, 5));
  const again = await pull(backend, `${reg.host}/peers/busybox:latest`);
  assert.equal(again.r.cached, true);
  assert.equal(again.r.source, null);
  assert.deepEqual(types(again.events), ['resolving', 'resolved', 'complete']);
  assert.equal((again.events[1] as Extract<PullEvent, { type: 'resolved' }>).cached, true);
  assert.equal((again.events[2] as Extract<PullEvent, { type: 'complete' }>).cached, true);
  assert.ok(again.r.handle.lastUsedAt.getTime() > before2, 'a cache hit refreshes last_used_at');
  assert.equal(again.r.manifestDigest, r.manifestDigest);
});

test('C3: policy never: uncached → NOT_CACHED; a missing layer file → NOT_CACHED; a missing VMDK is rebuilt offline', async (t) => {
  const { backend, home } = await freshHome(t);
  const ref = `${P.host}/peers/busybox`;
  await assert.rejects(Image.pullLocal(backend, ref, { policy: 'never' }), isCode('NOT_CACHED'));
  const { r } = await pull(backend, ref);
  const layer = r.artifacts.layers[0]!.path;
  const saved = readFileSync(layer);
  unlinkSync(layer);
  await assert.rejects(Image.pullLocal(backend, ref, { policy: 'never' }), isCode('NOT_CACHED'));
  writeFileSync(layer, saved);
  const vmdkBefore = readFileSync(r.artifacts.vmdkPath, 'utf8');
  unlinkSync(r.artifacts.vmdkPath);
  const rebuilt = await pull(backend, ref, { policy: 'never' });
  assert.equal(rebuilt.r.cached, false, 'something was built');
  assert.equal(readFileSync(r.artifacts.vmdkPath, 'utf8'), vmdkBefore);
  assert.ok(rebuilt.events.some((e) => e.type === 'warning' && e.code === 'ARTIFACT_REBUILT'));
  assert.deepEqual(await indexProblems(home), []);
  await assert.rejects(Image.pullLocal(backend, ref, { policy: 'never', force: true }), isCode('INVALID_ARGUMENT'));
});

test('C3/C8 step 3: if-missing repairs a missing layer from the stored manifest: one blob GET, the ref does not move', async (t) => {
  const reg = await privateRegistry(t);
  const { backend, home } = await freshHome(t);
  const ref = `${reg.host}/peers/multilayer`;
  const { r } = await pull(backend, ref);
  const victim = r.layers[2]!;
  unlinkSync(r.artifacts.layers[2]!.path);
  // The descriptor sizes of a repair come from the stored raw manifest, not this (nullable) column.
  const db = new Database(join(home, 'db', 'msb.db'));
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('UPDATE manifest_layer SET compressed_size_bytes = NULL').run();
  } finally {
    db.close();
  }
  const victimSize = (
    JSON.parse(
      rows<{ raw: Buffer }>(home, 'SELECT raw FROM manifest WHERE digest = ?', r.manifestDigest)[0]!.raw.toString(),
    ) as { layers: { size: number }[] }
  ).layers[2]!.size;
  const n0 = reg.blobGets().length;
  const m0 = reg.manifestRequests().length;
  const rep = await pull(backend, ref);
  assert.equal(rep.r.manifestDigest, r.manifestDigest);
  assert.deepEqual(
    reg
      .blobGets()
      .slice(n0)
      .map((l) => /blobs\/(\S+)/.exec(l)![1]),
    [victim.blobDigest],
  );
  assert.equal(reg.manifestRequests().length, m0, 'no tag resolution during a repair');
  assert.ok(
    rep.events.some((e) => e.type === 'resolved' && e.totalDownloadBytes === victimSize),
    'sizes from the raw manifest',
  );
  assert.ok(rep.events.some((e) => e.type === 'warning' && e.code === 'ARTIFACT_REBUILT'));
  assert.deepEqual(
    rep.r.layers.map((l) => l.downloaded),
    [false, false, true, false, false],
  );
  assert.deepEqual(await indexProblems(home), []);
});

/** F: `peers/app` is whichever repository `current` names (a tag that moves). */
async function movingTag(current: { repo: string }): Promise<FaultServer> {
  const f = await FaultServer.start({ upstream: `http://${P.host}` });
  faults.push(f);
  f.handlers.push(async (req, res) => {
    if (!req.url!.startsWith('/v2/peers/app/')) return false;
    req.url = req.url!.replace('/v2/peers/app/', `/v2/peers/${current.repo}/`);
    await f.proxy(req, res);
    return true;
  });
  return f;
}

test('C4/C5: always: an unchanged tag costs one HEAD (a cache hit); a moved tag fetches only the new layers, the old manifest loses its ref', async (t) => {
  const current = { repo: 'busybox' };
  const f = await movingTag(current);
  const { backend, home } = await freshHome(t);
  const ref = `${f.host}/peers/app`;
  const first = await pull(backend, ref);
  await new Promise((res) => setTimeout(res, 5));
  const n = f.log.length;
  const hit = await pull(backend, ref, { policy: 'always' });
  const log = f.log.slice(n);
  assert.deepEqual(
    log.filter((q) => /\/manifests\//.test(q.path)).map((q) => q.method),
    ['HEAD'],
  );
  assert.equal(log.filter((q) => /\/blobs\//.test(q.path)).length, 0);
  assert.equal(hit.r.cached, true);
  assert.equal(hit.r.source, f.host);
  assert.deepEqual(types(hit.events), ['resolving', 'resolved', 'complete']);
  assert.ok(hit.r.handle.lastUsedAt > first.r.handle.lastUsedAt);

  current.repo = 'multilayer';
  const n2 = f.log.length;
  const moved = await pull(backend, ref, { policy: 'always' });
  assert.notEqual(moved.r.manifestDigest, first.r.manifestDigest);
  const blobGets = f.log
    .slice(n2)
    .filter((q) => q.method === 'GET' && /\/blobs\//.test(q.path))
    .map((q) => q.path.split('/').pop());
  const shared = first.r.layers[0]!.blobDigest;
  assert.ok(!blobGets.includes(shared), 'the shared busybox layer is not fetched again');
  assert.equal(blobGets.filter((d) => moved.r.layers.some((l) => l.blobDigest === d)).length, 4);
  const old = rows<{ n: number }>(
    home,
    'SELECT COUNT(*) AS n FROM image_ref r JOIN manifest m ON m.id = r.manifest_id WHERE m.digest = ?',
    first.r.manifestDigest,
  );
  assert.equal(old[0]!.n, 0);
  assert.equal(
    rows(home, 'SELECT 1 FROM manifest WHERE digest = ?', first.r.manifestDigest).length,
    1,
    'the old manifest keeps its row',
  );
  assert.deepEqual(await indexProblems(home), []);
});

test('C6: force downloads every blob again and republishes byte-identical artifacts', async (t) => {
  const reg = await privateRegistry(t);
  const { backend } = await freshHome(t);
  const ref = `${reg.host}/peers/multilayer`;
  const { r } = await pull(backend, ref);
  const files = [r.artifacts.fsmetaPath, r.artifacts.vmdkPath, ...r.artifacts.layers.map((l) => l.path)];
  const before = files.map((p) => sha(readFileSync(p)));
  const n0 = reg.blobGets().length;
  const forced = await pull(backend, ref, { force: true });
  assert.equal(forced.r.cached, false);
  const gets = reg.blobGets().slice(n0);
  for (const l of r.layers) assert.equal(layerBlobGets({ blobGets: () => gets }, [l.blobDigest]), 1, l.blobDigest);
  assert.deepEqual(
    files.map((p) => sha(readFileSync(p))),
    before,
  );
  assert.deepEqual(
    forced.r.layers.map((l) => l.materialized),
    [true, true, true, true, true],
  );
});

test('C13: a pull killed mid-download leaves its .part; the next pull resumes (resumeFrom > 0, a Range request) and succeeds', async (t) => {
  const { spawn } = await import('node:child_process');
  const { helperArgv } = await import('../helpers/pull-env.js');
  const f = await FaultServer.start({ upstream: `http://${P.host}` });
  faults.push(f);
  let slow = true;
  // Trickle blob bodies (64 KiB every 30 ms) while `slow`, honouring Range through the upstream.
  f.handlers.push(async (req: IncomingMessage, res: ServerResponse) => {
    if (!slow || req.method !== 'GET' || !/\/blobs\//.test(req.url!)) return false;
    const up = await f.fetchUpstream('GET', req.url!, req.headers);
    const h: Record<string, string> = {};
    for (const k of ['content-type', 'content-range', 'docker-content-digest'])
      if (typeof up.headers[k] === 'string') h[k] = up.headers[k] as string;
    res.writeHead(up.status, { ...h, 'content-length': String(up.body.length) });
    for (let i = 0; i < up.body.length && !res.destroyed; i += 65536) {
      res.write(up.body.subarray(i, i + 65536));
      await new Promise((r) => setTimeout(r, 30));
    }
    res.end();
    return true;
  });
  const td = tempDir('msb-pull-c13-');
  t.after(td.cleanup);
  const ref = `${f.host}/peers/multilayer`;
  const big = 'sha256:be48291bcd43cf8267d8b9146be9058f9fafd6d3442fa0a68e3f8b0461168958';
  const part = join(td.dir, 'cache', 'tmp', `blob-${big.replace(':', '_')}.part`);
  const child = spawn(process.execPath, [...helperArgv('pull-child'), td.dir, ref], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  for (let i = 0; i < 400; i++) {
    await new Promise((r) => setTimeout(r, 25));
    if (existsSync(part) && statSync(part).size > 512 * 1024) break;
  }
  assert.ok(existsSync(part) && statSync(part).size > 512 * 1024, 'the download was under way');
  child.kill('SIGKILL');
  await exited;
  const kept = statSync(part).size;
  assert.ok(kept > 0);
  slow = false;
  const b = await LocalBackend.builder().home(td.dir).build();
  t.after(() => b.close());
  const n = f.log.length;
  const { r, events } = await pull(b, ref);
  const started = events.find((e) => e.type === 'layerDownloadStarted' && e.digest === big) as Extract<
    PullEvent,
    { type: 'layerDownloadStarted' }
  >;
  assert.ok(started.resumeFrom > 0, `resumeFrom ${started.resumeFrom}`);
  const rq = f.log.slice(n).find((q) => q.path.endsWith(big));
  assert.equal(rq?.headers.range, `bytes=${started.resumeFrom}-`);
  assert.equal(r.layers.find((l) => l.blobDigest === big)!.downloaded, true);
  assert.equal(existsSync(part), false, 'the .part is gone after success');
  assert.deepEqual(await indexProblems(td.dir), []);
});

/** F serving hand-made manifests/configs for `peers/x…` and proxying everything else. */
async function synth(routes: Record<string, { body: Buffer; type?: string }>): Promise<FaultServer> {
  const f = await FaultServer.start({ upstream: `http://${P.host}` });
  faults.push(f);
  f.handlers.push(async (req, res) => {
    const hit = routes[req.url!];
    if (hit) {
      res.writeHead(200, {
        'content-type': hit.type ?? 'application/octet-stream',
        'content-length': String(hit.body.length),
        'docker-content-digest': sha(hit.body),
      });
      res.end(req.method === 'HEAD' ? undefined : hit.body);
      return true;
    }
    // Any other peers/x* path is served from peers/busybox (its blobs).
    if (/^\/v2\/peers\/x[^/]*\/blobs\//.test(req.url!)) {
      req.url = req.url!.replace(/^\/v2\/peers\/x[^/]*\//, '/v2/peers/busybox/');
      await f.proxy(req, res);
      return true;
    }
    return false;
  });
  return f;
}

// biome-ignore lint/suspicious/noExplicitAny: registry JSON, navigated freely; the assertions check its shape
async function upstreamJson(path: string): Promise<Record<string, any>> {
  const res = await fetch(`http://${P.host}${path}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return (await res.json()) as Record<string, any>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

test('C14: a flipped layer byte → one retry from zero (2 GETs), then DIGEST_MISMATCH{blob}; nothing published; a wrong diff_id → DIGEST_MISMATCH{diffId}', async (t) => {
  const f = await FaultServer.start({ upstream: `http://${P.host}` });
  faults.push(f);
  const bb = await upstreamJson('/v2/peers/busybox/manifests/latest');
  const layer = bb.layers[0].digest as string;
  f.handlers.push(async (req, res) => {
    if (!req.url!.endsWith(layer)) return false;
    await f.proxy(req, res, {
      mutate: (b) => {
        const c = Buffer.from(b);
        flipByte(c, c.length >> 1, 0x40);
        return c;
      },
    });
    return true;
  });
  const { backend, home } = await freshHome(t);
  const events: PullEvent[] = [];
  await assert.rejects(
    Image.pullLocal(backend, `${f.host}/peers/busybox`, { onProgress: (e) => events.push(e) }),
    (e: unknown) => isCode('DIGEST_MISMATCH')(e) && (e as { what: string }).what === 'blob',
  );
  assert.equal(f.requests(new RegExp(layer), 'GET').length, 2);
  assert.equal(events.filter((e) => e.type === 'retry').length, 1);
  assert.deepEqual(rows(home, 'SELECT * FROM layer'), []);
  assert.deepEqual(rows(home, 'SELECT * FROM lease'), []);
  assert.deepEqual(tmpEntries(home), []);
  assert.equal(existsSync(join(home, 'cache', 'layers', `${bb.config.digest.replace(':', '_')}.erofs`)), false);

  // A config listing a wrong diff_id (the manifest re-pointed at it).
  const cfg = await upstreamJson(`/v2/peers/busybox/blobs/${bb.config.digest}`);
  cfg.rootfs.diff_ids = ['sha256:' + '0'.repeat(64)];
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const man = { ...bb, config: { ...bb.config, digest: sha(cfgBytes), size: cfgBytes.length } };
  const manBytes = Buffer.from(JSON.stringify(man));
  const g = await synth({
    '/v2/peers/xdiff/manifests/latest': { body: manBytes, type: OCI_MANIFEST },
    [`/v2/peers/xdiff/blobs/${sha(cfgBytes)}`]: { body: cfgBytes },
  });
  await assert.rejects(
    Image.pullLocal(backend, `${g.host}/peers/xdiff`),
    (e: unknown) => isCode('DIGEST_MISMATCH')(e) && (e as { what: string }).what === 'diffId',
  );
  assert.equal(g.requests(new RegExp(layer), 'GET').length, 1, 'a diff_id mismatch is not retried');
  assert.deepEqual(rows(home, 'SELECT * FROM layer'), []);
  assert.deepEqual(tmpEntries(home), []);
});

test('C16: 1001 layers → LIMIT_EXCEEDED and diff_id count mismatch → CONFIG_INVALID, before any layer blob request', async (t) => {
  const bb = await upstreamJson('/v2/peers/busybox/manifests/latest');
  const many = { ...bb, layers: Array.from({ length: 1001 }, () => bb.layers[0]) };
  const cfg = await upstreamJson(`/v2/peers/busybox/blobs/${bb.config.digest}`);
  cfg.rootfs.diff_ids = [...cfg.rootfs.diff_ids, cfg.rootfs.diff_ids[0]];
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const f = await synth({
    '/v2/peers/xmany/manifests/latest': { body: Buffer.from(JSON.stringify(many)), type: OCI_MANIFEST },
    '/v2/peers/xcount/manifests/latest': {
      body: Buffer.from(
        JSON.stringify({ ...bb, config: { ...bb.config, digest: sha(cfgBytes), size: cfgBytes.length } }),
      ),
      type: OCI_MANIFEST,
    },
    [`/v2/peers/xcount/blobs/${sha(cfgBytes)}`]: { body: cfgBytes },
  });
  const { backend } = await freshHome(t);
  await assert.rejects(
    Image.pullLocal(backend, `${f.host}/peers/xmany`),
    (e: unknown) => isCode('LIMIT_EXCEEDED')(e) && (e as { limit: string }).limit === 'maxLayers',
  );
  await assert.rejects(Image.pullLocal(backend, `${f.host}/peers/xcount`), isCode('CONFIG_INVALID'));
  assert.equal(f.requests(new RegExp(bb.layers[0].digest)).length, 0);
  assert.equal(f.requests(/xmany\/blobs\//).length, 0, 'the config of a 1001-layer manifest is not even fetched');
});

test('C19: v2s2 manifests and lists; zstd after gzip: 0 blob GETs, the same layer files, zstd rows in manifest_layer', async (t) => {
  const reg = await privateRegistry(t);
  const { backend, home } = await freshHome(t);
  const v2 = await pull(backend, `${reg.host}/peers/busybox:v2s2`);
  assert.equal(v2.r.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  assertSameTreeAsUmoci(v2.r, 'busybox');
  const list = await pull(backend, `${reg.host}/peers/multiarch:v2s2`, { platform: 'linux/arm64' });
  assert.equal(list.r.platform.architecture, 'arm64');
  assert.ok(list.r.indexDigest);
  const gz = await pull(backend, `${reg.host}/peers/multilayer`);
  assertSameTreeAsUmoci(gz.r, 'multilayer');
  const n0 = reg.blobGets().length;
  const zs = await pull(backend, `${reg.host}/peers/multilayer:zstd`);
  assert.equal(reg.blobGets().length - n0, 0, 'no blob GET at all');
  assert.notEqual(zs.r.manifestDigest, gz.r.manifestDigest);
  assert.deepEqual(
    zs.r.artifacts.layers.map((l) => l.path),
    gz.r.artifacts.layers.map((l) => l.path),
  );
  const ml = rows<{ blob_digest: string; media_type: string }>(
    home,
    `SELECT ml.blob_digest, ml.media_type FROM manifest_layer ml
    JOIN manifest m ON m.id = ml.manifest_id WHERE m.digest = ? ORDER BY ml.position`,
    zs.r.manifestDigest,
  );
  assert.deepEqual(
    ml.map((x) => x.blob_digest),
    zs.r.layers.map((l) => l.blobDigest),
  );
  for (const x of ml) assert.equal(x.media_type, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.ok(zs.r.layers.every((l, i) => l.blobDigest !== gz.r.layers[i]!.blobDigest));
  assertSameTreeAsUmoci(zs.r, 'multilayer');
  // A fresh cache pulls the zstd image itself (zstd decoding end to end).
  const fresh = await freshHome(t);
  const z2 = await pull(fresh.backend, `${reg.host}/peers/busybox:zstd`);
  assertSameTreeAsUmoci(z2.r, 'busybox');
  assert.deepEqual(await indexProblems(home), []);
});

test('C20: an uncompressed layer; zstd bytes under a +gzip type (MEDIA_TYPE_MISMATCH); junk bytes → LAYER_INVALID; an unknown media type → MANIFEST_INVALID before any blob GET', async (t) => {
  const { backend, home } = await freshHome(t);
  const unc = await pull(backend, `${P.host}/peers/edge-uncompressed`);
  assert.equal(unc.r.layers.at(-1)!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
  assertSameTreeAsUmoci(unc.r, 'edge-uncompressed');

  const zst = await upstreamJson('/v2/peers/busybox/manifests/zstd');
  const lying = {
    ...zst,
    layers: zst.layers.map((l: Record<string, unknown>) => ({
      ...l,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    })),
  };
  const junk = Buffer.alloc(3000, 0x41);
  const bb = await upstreamJson('/v2/peers/busybox/manifests/latest');
  const cfg = await upstreamJson(`/v2/peers/busybox/blobs/${bb.config.digest}`);
  cfg.rootfs.diff_ids = [sha(junk)];
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const junkMan = {
    ...bb,
    config: { ...bb.config, digest: sha(cfgBytes), size: cfgBytes.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(junk), size: junk.length }],
  };
  const foo = {
    ...bb,
    layers: bb.layers.map((l: Record<string, unknown>) => ({ ...l, mediaType: 'application/vnd.example+foo' })),
  };
  const f = await synth({
    '/v2/peers/xlie/manifests/latest': { body: Buffer.from(JSON.stringify(lying)), type: OCI_MANIFEST },
    '/v2/peers/xjunk/manifests/latest': { body: Buffer.from(JSON.stringify(junkMan)), type: OCI_MANIFEST },
    [`/v2/peers/xjunk/blobs/${sha(cfgBytes)}`]: { body: cfgBytes },
    [`/v2/peers/xjunk/blobs/${sha(junk)}`]: { body: junk },
    '/v2/peers/xfoo/manifests/latest': { body: Buffer.from(JSON.stringify(foo)), type: OCI_MANIFEST },
  });
  // zstd blobs of busybox:zstd live in peers/busybox too (same repository). A fresh cache: the
  // busybox layer must really be downloaded for its content to be sniffed.
  const lie = await pull((await freshHome(t)).backend, `${f.host}/peers/xlie`);
  const warns = lie.events.filter((e) => e.type === 'warning' && e.code === 'MEDIA_TYPE_MISMATCH') as Extract<
    PullEvent,
    { type: 'warning' }
  >[];
  assert.equal(warns.length, 1);
  assert.match(warns[0]!.message, /tar\+gzip/);
  assert.match(warns[0]!.message, /zstd/);
  const mt = rows<{ media_type: string }>(
    lie.r.artifacts.vmdkPath.replace(/\/cache\/vmdk\/.*$/, ''),
    `SELECT ml.media_type FROM manifest_layer ml JOIN manifest m ON m.id = ml.manifest_id WHERE m.digest = ?`,
    lie.r.manifestDigest,
  );
  assert.deepEqual(
    mt.map((x) => x.media_type),
    ['application/vnd.oci.image.layer.v1.tar+gzip'],
  );
  assertSameTreeAsUmoci(lie.r, 'busybox');

  await assert.rejects(Image.pullLocal(backend, `${f.host}/peers/xjunk`), isCode('LAYER_INVALID'));
  await assert.rejects(Image.pullLocal(backend, `${f.host}/peers/xfoo`), isCode('MANIFEST_INVALID'));
  assert.equal(f.requests(/\/peers\/xfoo\/blobs\//).length, 0);
  assert.deepEqual(await indexProblems(home), []);
  assert.deepEqual(tmpEntries(home), []);
});

test('C21: edge-dup: one download and one conversion, 3 device slots, 4 VMDK extents, 3 positions in inspect', async (t) => {
  const reg = await privateRegistry(t);
  const { backend } = await freshHome(t);
  const { r, events } = await pull(backend, `${reg.host}/peers/edge-dup`);
  const counts = new Map<string, number>();
  for (const l of r.layers) counts.set(l.blobDigest, (counts.get(l.blobDigest) ?? 0) + 1);
  const dup = [...counts].find(([, n]) => n > 1)![0];
  assert.equal(layerBlobGets(reg, [dup]), 1);
  assert.equal(events.filter((e) => e.type === 'layerDownloadStarted' && e.digest === dup).length, 1);
  const done = events.filter((e) => e.type === 'layerMaterializeComplete') as Extract<
    PullEvent,
    { type: 'layerMaterializeComplete' }
  >[];
  assert.deepEqual(
    done.map((e) => e.layerIndex).sort(),
    r.layers.map((l) => l.position),
  );
  assert.equal(done.filter((e) => !e.reused).length, counts.size);
  const sb = await checkErofsHeader(r.artifacts.fsmetaPath);
  assert.equal(sb.extraDevices, r.layers.length);
  const extents = readFileSync(r.artifacts.vmdkPath, 'utf8')
    .split('\n')
    .filter((l) => /^RW \d+ FLAT /.test(l));
  assert.equal(extents.length, r.layers.length + 1);
  const detail = await Image.inspectLocal(backend, r.reference);
  assert.equal(detail.layers.length, r.layers.length);
  assertSameTreeAsUmoci(r, 'edge-dup');
});

test('C27: a digest reference to an index stores the platform manifest with index_digest; tag and digest refs share one fsmeta', async (t) => {
  const { backend, home } = await freshHome(t);
  const tag = await pull(backend, `${P.host}/peers/multiarch`);
  assert.ok(tag.r.indexDigest);
  const byDigest = await pull(backend, `${P.host}/peers/multiarch@${tag.r.indexDigest}`);
  assert.equal(byDigest.r.manifestDigest, tag.r.manifestDigest);
  assert.equal(byDigest.r.indexDigest, tag.r.indexDigest);
  assert.equal(byDigest.r.reference, `${P.host}/peers/multiarch@${tag.r.indexDigest}`);
  assert.equal(byDigest.r.artifacts.fsmetaPath, tag.r.artifacts.fsmetaPath);
  assert.equal(byDigest.r.cached, true);
  const refs = rows<{ reference: string; index_digest: string | null; digest: string }>(
    home,
    'SELECT r.reference, r.index_digest, m.digest FROM image_ref r JOIN manifest m ON m.id = r.manifest_id ORDER BY r.reference',
  );
  assert.equal(refs.length, 2);
  for (const x of refs) {
    assert.equal(x.index_digest, tag.r.indexDigest);
    assert.equal(x.digest, tag.r.manifestDigest);
  }
  assert.equal(rows(home, 'SELECT 1 FROM manifest').length, 1);
  assertSameTreeAsUmoci(tag.r, 'busybox');
  // A fresh cache pulling by index digest first works the same.
  const fresh = await freshHome(t);
  const d = await pull(fresh.backend, `${P.host}/peers/multiarch@${tag.r.indexDigest}`);
  assert.equal(d.r.manifestDigest, tag.r.manifestDigest);
  assert.equal(d.r.cached, false);
});

test('kernel mount == umoci unpack: multilayer (OCI index tag), edge-sparse; edge-evil is rejected', async (t) => {
  const { backend, home } = await freshHome(t);
  const idx = await pull(backend, `${P.host}/peers/multilayer:index`);
  assert.ok(idx.r.indexDigest);
  assertSameTreeAsUmoci(idx.r, 'multilayer');
  const sparse = await pull(backend, `${P.host}/peers/edge-sparse`);
  assertSameTreeAsUmoci(sparse.r, 'edge-sparse');
  await assert.rejects(Image.pullLocal(backend, `${P.host}/peers/edge-evil`), isCode('LAYER_INVALID'));
  assert.deepEqual(await indexProblems(home), []);
  assert.deepEqual(
    tmpEntries(home).filter((n) => n.endsWith('.tmp')),
    [],
  );
  rmSync(join(home, 'nothing'), { force: true });
});

test('Sandbox.create pulls under its own lease (operation "create"), then pins; no lease remains', async (t) => {
  const { Sandbox } = await import('../../src/api/sandbox.js');
  const { _pullDeps, _setPullDeps } = await import('../../src/pull/pull.js');
  const { backend, home } = await freshHome(t);
  const base = await _pullDeps();
  const seen: { operation: string; items: string[] }[] = [];
  _setPullDeps({
    ...base,
    hook: (p) => {
      if (p !== 'layers-done') return;
      const ls = rows<{ id: string; operation: string }>(home, 'SELECT id, operation FROM lease');
      for (const l of ls)
        seen.push({
          operation: l.operation,
          items: rows<{ kind: string }>(home, 'SELECT kind FROM lease_item WHERE lease_id = ?', l.id).map(
            (x) => x.kind,
          ),
        });
    },
  });
  t.after(() => _setPullDeps(null));
  const sb = await Sandbox.createLocal(backend, 'web', { image: `${P.host}/peers/multilayer` });
  assert.deepEqual(
    seen.map((s) => s.operation),
    ['create'],
    "the pull adds its items to the caller's lease",
  );
  assert.ok(seen[0]!.items.includes('manifest') && seen[0]!.items.includes('layer'));
  assert.ok(statSync(sb.rootfs.vmdkPath).isFile());
  assert.equal(sb.rootfs.layers.length, 5);
  assert.deepEqual(rows(home, 'SELECT kind, key FROM pin'), [{ kind: 'sandbox', key: 'web' }]);
  assert.deepEqual(rows(home, 'SELECT * FROM lease'), []);
  assert.deepEqual(await indexProblems(home), []);
});

test('an explicit platform the cached image does not match is a miss: the ref is re-pointed (one tag, one platform); never → NOT_CACHED', async (t) => {
  const { backend, home } = await freshHome(t);
  const ref = `${P.host}/peers/multiarch`;
  const amd = await pull(backend, ref);
  assert.equal(amd.r.platform.architecture, 'amd64');
  await assert.rejects(
    Image.pullLocal(backend, ref, { platform: 'linux/arm64', policy: 'never' }),
    isCode('NOT_CACHED'),
  );
  const arm = await pull(backend, ref, { platform: 'linux/arm64' });
  assert.equal(arm.r.cached, false);
  assert.deepEqual(arm.r.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.notEqual(arm.r.manifestDigest, amd.r.manifestDigest);
  const refs = rows<{ digest: string }>(
    home,
    'SELECT m.digest FROM image_ref r JOIN manifest m ON m.id = r.manifest_id',
  );
  assert.deepEqual(
    refs.map((x) => x.digest),
    [arm.r.manifestDigest],
  );
  const again = await pull(backend, ref, { platform: 'linux/arm64/v8' });
  assert.equal(again.r.cached, true);
  // A single-manifest image whose config disagrees with the host only warns (PLATFORM_MISMATCH).
  const other = await pull(backend, `${P.host}/peers/busybox-arm64`);
  assert.ok(other.events.some((e) => e.type === 'warning' && e.code === 'PLATFORM_MISMATCH'));
  await assert.rejects(
    Image.pullLocal((await freshHome(t)).backend, `${P.host}/peers/busybox-arm64`, { platform: 'linux/amd64' }),
    isCode('PLATFORM_NOT_FOUND'),
  );
});

/**
 * Concurrency limit, progress delivery, throwing listeners and aborts of a real pull (acceptance
 * C22–C25), against the real registry through F (test/helpers/fault-server.ts), which only delays
 * or trickles bodies.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Image } from '../../src/api/image.js';
import type { PullEvent } from '../../src/api/types.js';
import { MsbError } from '../../src/errors.js';
import { _pullDeps, _setPullDeps } from '../../src/pull/pull.js';
import type { PullHookPoint } from '../../src/pull/deps.js';
import { ensureRegistry } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { freshHome, indexProblems, rows, tmpEntries } from '../helpers/pull-env.js';

const R0 = ensureRegistry('noauth');
const faults: FaultServer[] = [];
after(async () => {
  for (const f of faults) await f.close();
});

async function fault(): Promise<FaultServer> {
  const f = await FaultServer.start({ upstream: `http://${R0.host}` });
  faults.push(f);
  return f;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Serves layer blobs (not the config) after `delayMs`, trickled in 64 KiB pieces every `tickMs`. */
function slowBlobs(f: FaultServer, o: { delayMs?: number; tickMs?: number; skip?: (url: string) => boolean } = {}) {
  const state = { inFlight: 0, maxInFlight: 0, enabled: true };
  f.handlers.push(async (req: IncomingMessage, res: ServerResponse) => {
    if (!state.enabled || req.method !== 'GET' || !/\/blobs\//.test(req.url!) || o.skip?.(req.url!)) return false;
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    try {
      const up = await f.fetchUpstream('GET', req.url!, req.headers);
      if (o.delayMs) await sleep(o.delayMs);
      const h: Record<string, string> = {};
      for (const k of ['content-type', 'content-range', 'docker-content-digest'])
        if (typeof up.headers[k] === 'string') h[k] = up.headers[k] as string;
      res.writeHead(up.status, { ...h, 'content-length': String(up.body.length) });
      for (let i = 0; i < up.body.length && !res.destroyed; i += 65536) {
        res.write(up.body.subarray(i, i + 65536));
        if (o.tickMs) await sleep(o.tickMs);
      }
      res.end();
    } finally {
      state.inFlight--;
    }
    return true;
  });
  return state;
}

async function configDigestOf(repo: string, tag = 'latest'): Promise<string> {
  const r = await fetch(`http://${R0.host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return ((await r.json()) as { config: { digest: string } }).config.digest;
}

test('C22: at most 4 layer blob GETs in flight by default; with concurrency 1 they are serial', async (t) => {
  const cfg = await configDigestOf('peers/multilayer');
  const f = await fault();
  const st = slowBlobs(f, { delayMs: 300, skip: (u) => u.endsWith(cfg) });
  const a = await freshHome(t);
  const r = await Image.pullLocal(a.backend, `${f.host}/peers/multilayer`);
  assert.equal(r.layers.length, 5);
  assert.equal(st.maxInFlight, 4, 'five distinct layers, four at a time');
  st.maxInFlight = 0;
  const b = await freshHome(t);
  await Image.pullLocal(b.backend, `${f.host}/peers/multilayer`, { concurrency: 1 });
  assert.equal(st.maxInFlight, 1);
});

test('C23: an iterator that pauses 2 s loses no state change; counters are monotonic; the last equals the total; every event has elapsedMs', async (t) => {
  const f = await fault();
  slowBlobs(f, { tickMs: 5 });
  const { backend } = await freshHome(t);
  const direct: PullEvent[] = [];
  const op = Image.pullWithProgressLocal(backend, `${f.host}/peers/multilayer`, { onProgress: (e) => direct.push(e) });
  const seen: PullEvent[] = [];
  let paused = false;
  for await (const e of op) {
    seen.push(e);
    if (!paused && e.type === 'layerDownloadProgress') {
      paused = true;
      await sleep(2000);
    }
  }
  const r = await op.result;
  const nonProgress = (l: PullEvent[]) => l.filter((e) => !e.type.endsWith('Progress')).map((e) => JSON.stringify(e));
  assert.deepEqual(nonProgress(seen), nonProgress(direct), 'every non-progress event, in order');
  assert.ok(seen.length < direct.length, 'pending progress events were coalesced while the consumer slept');
  const done = seen.filter((e) => e.type === 'layerMaterializeComplete') as Extract<
    PullEvent,
    { type: 'layerMaterializeComplete' }
  >[];
  assert.deepEqual(
    done.map((e) => e.layerIndex).sort(),
    r.layers.map((l) => l.position),
  );
  for (const e of seen) assert.equal(typeof e.elapsedMs, 'number');
  const last = new Map<string, number>();
  const total = new Map<number, number>();
  for (const e of seen) {
    if (e.type === 'layerDownloadStarted') {
      last.set(`d${e.layerIndex}`, -1);
      total.set(e.layerIndex, e.totalBytes!);
    }
    if (e.type === 'layerMaterializeStarted') last.set(`m${e.layerIndex}`, -1);
    if (e.type === 'layerDownloadProgress') {
      assert.ok(e.downloadedBytes >= last.get(`d${e.layerIndex}`)!);
      last.set(`d${e.layerIndex}`, e.downloadedBytes);
    }
    if (e.type === 'layerMaterializeProgress') {
      assert.ok(e.tarBytes >= last.get(`m${e.layerIndex}`)!);
      last.set(`m${e.layerIndex}`, e.tarBytes);
    }
  }
  for (const [i, tot] of total) assert.equal(last.get(`d${i}`), tot, `layer ${i}: the last progress equals the total`);
  assert.equal(seen.at(-1)!.type, 'complete');
});

test('C24: a throwing onProgress rejects the pull with that error; no candidate, no lease', async (t) => {
  const f = await fault();
  slowBlobs(f, { tickMs: 5 });
  const { backend, home } = await freshHome(t);
  const boom = new Error('listener failed');
  await assert.rejects(
    Image.pullLocal(backend, `${f.host}/peers/multilayer`, {
      onProgress: (e) => {
        if (e.type === 'layerDownloadProgress') throw boom;
      },
    }),
    (e: unknown) => e === boom,
  );
  assert.deepEqual(
    tmpEntries(home).filter((n) => !n.endsWith('.part')),
    [],
  );
  assert.deepEqual(rows(home, 'SELECT * FROM lease'), []);
  assert.deepEqual(await indexProblems(home), []);
  // and the locks are free: the next pull goes through
  const r = await Image.pullLocal(backend, `${f.host}/peers/multilayer`);
  assert.equal(r.layers.length, 5);
});

/** Runs one pull that aborts when `when` fires; checks ABORTED, its cause, and the cleanup. */
async function abortCase(
  t: { after(fn: () => unknown): void },
  label: string,
  setup: (ac: AbortController, f: FaultServer, home: string) => Promise<void> | void,
) {
  const f = await fault();
  const { backend, home } = await freshHome(t);
  const ac = new AbortController();
  await setup(ac, f, home);
  const reason = new Error(`stop during ${label}`);
  const orig = ac.abort.bind(ac);
  ac.abort = () => orig(reason);
  const res = await Image.pullLocal(backend, `${f.host}/peers/multilayer`, { signal: ac.signal }).then(
    () => null,
    (e: unknown) => e,
  );
  _setPullDeps(null);
  assert.ok(res instanceof MsbError && res.code === 'ABORTED', `${label}: ${String(res)}`);
  assert.equal((res as MsbError).cause, reason, `${label}: cause is signal.reason`);
  assert.deepEqual(rows(home, 'SELECT * FROM lease'), [], `${label}: no lease`);
  assert.deepEqual(
    tmpEntries(home).filter((n) => !n.endsWith('.part')),
    [],
    `${label}: no candidate`,
  );
  assert.deepEqual(await indexProblems(home), [], `${label}: only valid artifacts`);
  assert.equal(rows(home, 'SELECT * FROM image_ref').length, 0);
  // Another pull takes the locks at once and succeeds.
  for (const h of f.handlers.splice(0)) void h;
  const r = await Image.pullLocal(backend, `${f.host}/peers/multilayer`);
  assert.equal(r.layers.length, 5);
  return home;
}

function withHook(point: PullHookPoint, fn: () => void): Promise<void> {
  return _pullDeps().then((base) => {
    _setPullDeps({
      ...base,
      hook: (p) => {
        if (p === point) fn();
      },
    });
  });
}

test('C25: abort during resolve, download, conversion and stitch → ABORTED; the .part is kept; no lease; the next pull succeeds', async (t) => {
  await abortCase(t, 'resolve', (ac, f) => {
    f.handlers.push(async (req, res) => {
      if (!/\/manifests\//.test(req.url!)) return false;
      setTimeout(() => ac.abort(), 100);
      await sleep(3000);
      if (!res.destroyed) await f.proxy(req, res);
      return true;
    });
  });
  let partSeen = false;
  const home = await abortCase(t, 'download', (ac, f, h) => {
    slowBlobs(f, { tickMs: 20 });
    const timer = setInterval(() => {
      const tmp = join(h, 'cache', 'tmp');
      const parts = existsSync(tmp) ? readdirSync(tmp).filter((n) => n.endsWith('.part')) : [];
      if (parts.some((p) => statSync(join(tmp, p)).size > 256 * 1024)) {
        partSeen = true;
        clearInterval(timer);
        ac.abort();
      }
    }, 10);
    t.after(() => clearInterval(timer));
  });
  assert.ok(partSeen);
  void home;
  await abortCase(t, 'conversion', (ac) => withHook('layer-converted', () => ac.abort()));
  await abortCase(t, 'stitch', (ac) => withHook('fsmeta-written', () => ac.abort()));
});

test('C25: the .part of an aborted download is kept for the next pull', async (t) => {
  const f = await fault();
  slowBlobs(f, { tickMs: 20 });
  const { backend, home } = await freshHome(t);
  const ac = new AbortController();
  const tmp = join(home, 'cache', 'tmp');
  const timer = setInterval(() => {
    const parts = existsSync(tmp) ? readdirSync(tmp).filter((n) => n.endsWith('.part')) : [];
    if (parts.some((p) => statSync(join(tmp, p)).size > 256 * 1024)) {
      clearInterval(timer);
      ac.abort('stop');
    }
  }, 10);
  await assert.rejects(
    Image.pullLocal(backend, `${f.host}/peers/multilayer`, { signal: ac.signal }),
    (e: unknown) => e instanceof MsbError && e.code === 'ABORTED' && e.cause === 'stop',
  );
  clearInterval(timer);
  const parts = readdirSync(tmp).filter((n) => n.endsWith('.part'));
  assert.ok(parts.length >= 1);
  f.handlers.length = 0;
  const events: PullEvent[] = [];
  await Image.pullLocal(backend, `${f.host}/peers/multilayer`, { onProgress: (e) => events.push(e) });
  assert.ok(events.some((e) => e.type === 'layerDownloadStarted' && e.resumeFrom > 0));
  assert.deepEqual(tmpEntries(home), []);
});

/**
 * Fleets through a real pull-through cache (issue 14): two CNCF distribution registries on
 * loopback, an upstream U serving the fixtures (read-only over R0's storage) and a proxy P in
 * distribution's `proxy:` mode whose `remoteurl` is U, with its own cache storage. Homes point at
 * P through `registries.hosts[U].mirrors` in their config.json, as fleet hosts would.
 *
 * - one home pulls through P, then seven more at once (real `msb` processes): U's access log
 *   shows no blob request after the first home's pull (P fetches a blob from U twice on a miss,
 *   once to store and once to serve, so the count's change is asserted, not its total);
 * - U stopped: a new home still pulls a tag P has cached; a tag P never saw fails;
 * - P stopped: pulls fall back to U, with a MIRROR_FALLBACK warning;
 * - a pull-only mirror (capabilities ["pull"]) never resolves tags, but serves digest-pinned pulls;
 * - a mirror serving a wrong blob (a small fault server) is caught by the digest check and the pull
 *   falls back to U, publishing only the verified bytes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, LocalBackend, MsbError, type PullEvent, type PullResult } from '../../src/index.js';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { indexProblems, msb, privateRegistry, type PrivateRegistry } from '../helpers/pull-env.js';
import { flipByte } from '../helpers/bytes.js';

ensureRegistry('noauth');
const work = tempDir('msb-proxy-');
const backends: LocalBackend[] = [];
const faults: FaultServer[] = [];
const cleanups: (() => unknown)[] = [];
/** The registries live for the whole file: their cleanup runs in the file's after hook. */
const fileScope = {
  after: (fn: () => unknown) => {
    cleanups.push(fn);
  },
};
after(async () => {
  for (const b of backends) await b.close();
  for (const f of faults) await f.close();
  for (const c of cleanups.reverse()) await c();
  work.cleanup();
});

let U: PrivateRegistry;
let P: PrivateRegistry;
let homeN = 0;
const REPO = 'peers/multilayer';
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** A fresh home whose config.json names `mirrors` for U. */
function home(mirrors: unknown[]): string {
  const dir = join(work.dir, `home-${++homeN}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      registries: { hosts: { [U.host]: { mirrors } } },
      pull: { retries: 2 },
    }),
  );
  return dir;
}

async function pull(dir: string, ref: string): Promise<{ r: PullResult; events: PullEvent[] }> {
  const b = await LocalBackend.builder().home(dir).build();
  backends.push(b);
  const events: PullEvent[] = [];
  const r = await Image.pullLocal(b, ref, { onProgress: (e) => events.push(e) });
  return { r, events };
}

const resolvedSource = (events: PullEvent[]) =>
  (events.find((e) => e.type === 'resolved') as Extract<PullEvent, { type: 'resolved' }>).source;
const fallbacks = (events: PullEvent[]) =>
  events.filter(
    (e): e is Extract<PullEvent, { type: 'warning' }> => e.type === 'warning' && e.code === 'MIRROR_FALLBACK',
  );
const layerHashes = (r: PullResult) => r.artifacts.layers.map((l) => sha(readFileSync(l.path)));

let first: PullResult;

test('one home pulls through the proxy, then seven at once: the upstream sees no new blob request', async () => {
  U = await privateRegistry(fileScope);
  P = await privateRegistry(fileScope, { proxyOf: `http://${U.host}` });
  const proxyUrl = `http://${P.host}`;
  const ref = `${U.host}/${REPO}:latest`;

  const u0 = U.blobRequests().length;
  const h1 = await pull(home([proxyUrl]), ref);
  first = h1.r;
  assert.equal(h1.r.source, proxyUrl, 'the manifest came from the proxy');
  assert.equal(resolvedSource(h1.events), proxyUrl, 'the resolved event says who answered');
  assert.deepEqual(fallbacks(h1.events), []);
  const u1 = U.blobRequests().length;
  // The counter sees the proxy's misses (the control that makes the next assertion meaningful).
  assert.ok(
    u1 - u0 >= h1.r.layers.length + 1,
    `the proxy fetched every blob from the upstream once: ${u1 - u0} requests`,
  );
  const p1 = P.blobGets().length;

  const homes = Array.from({ length: 7 }, () => home([proxyUrl]));
  const runs = await Promise.all(homes.map((h) => msb(['--home', h, 'pull', ref])));
  for (const r of runs) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `Pulled ${ref} (${h1.r.manifestDigest}) from ${proxyUrl}\n`);
    assert.doesNotMatch(r.stderr, /MIRROR_FALLBACK|warning/);
  }
  assert.equal(
    U.blobRequests().length,
    u1,
    `no blob request reached the upstream after the first home:\n${U.blobRequests().slice(u1).join('\n')}`,
  );
  assert.ok(P.blobGets().length - p1 >= 7 * (h1.r.layers.length + 1), 'every home fetched every blob from the proxy');
  for (const h of homes) assert.deepEqual(await indexProblems(h), []);
});

test('upstream down: a new home still pulls the tag the proxy cached; a tag it never saw fails', async () => {
  await U.stop();
  const proxyUrl = `http://${P.host}`;
  const h = await pull(home([proxyUrl]), `${U.host}/${REPO}:latest`);
  assert.equal(h.r.source, proxyUrl);
  assert.equal(h.r.manifestDigest, first.manifestDigest);
  assert.deepEqual(layerHashes(h.r), layerHashes(first), 'the same verified layers');
  await assert.rejects(
    pull(home([proxyUrl]), `${U.host}/peers/busybox:v2s2`),
    (e: unknown) => e instanceof MsbError && e.code === 'NETWORK' && !/:\/\/[^/\s]*@/.test(e.message),
  );
});

test('proxy down: pulls fall back to the upstream with MIRROR_FALLBACK', async () => {
  await U.start();
  await P.stop();
  const proxyUrl = `http://${P.host}`;
  const dir = home([proxyUrl]);
  const h = await pull(dir, `${U.host}/${REPO}:latest`);
  assert.equal(h.r.source, U.host, 'the upstream answered');
  assert.equal(resolvedSource(h.events), U.host);
  const fb = fallbacks(h.events);
  assert.ok(fb.length >= 1 && fb.every((w) => w.message.includes(proxyUrl)), JSON.stringify(fb));
  assert.deepEqual(layerHashes(h.r), layerHashes(first));
  await P.start();
});

test('a pull-only mirror: tags resolve at the upstream, blobs and digest-pinned manifests come from the mirror', async () => {
  const proxyUrl = `http://${P.host}`;
  const mirror = [{ url: proxyUrl, capabilities: ['pull'] }];
  const uManifests = U.manifestRequests('GET').length;
  const uBlobs = U.blobRequests().length;
  const byTag = await pull(home(mirror), `${U.host}/${REPO}:latest`);
  assert.equal(byTag.r.source, U.host, 'the tag was resolved by the upstream');
  assert.ok(U.manifestRequests('GET').length > uManifests);
  assert.equal(U.blobRequests().length, uBlobs, 'the blobs came from the proxy cache');

  const byDigest = await pull(home(mirror), `${U.host}/${REPO}@${first.manifestDigest}`);
  assert.equal(byDigest.r.source, proxyUrl, 'a digest-pinned pull may use a pull-only mirror');
  assert.equal(U.blobRequests().length, uBlobs);
});

test('a mirror serving a wrong blob: caught by the digest check, the pull falls back, only verified bytes are published', async () => {
  const victim = first.layers.find((l) => l.position === 2)!.blobDigest;
  const f = await FaultServer.start({ upstream: `http://${U.host}` });
  faults.push(f);
  f.handlers.push(async (req, res, srv) => {
    if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/${victim}`)) return false;
    await srv.proxy(req, res, {
      mutate: (b) => {
        const c = Buffer.from(b);
        flipByte(c, c.length >> 1, 0xff);
        return c;
      },
    });
    return true;
  });
  const before = U.blobGets().filter((l) => l.includes(victim)).length;
  const dir = home([f.url]);
  const h = await pull(dir, `${U.host}/${REPO}:latest`);
  assert.equal(h.r.source, f.url, 'the manifest came from the mirror');
  const fb = fallbacks(h.events);
  assert.ok(
    fb.some((w) => w.message.includes(victim) && w.message.includes(f.url)),
    JSON.stringify(fb),
  );
  assert.ok(f.requests(new RegExp(`/blobs/${victim}$`), 'GET').length >= 1, 'the mirror served the bad bytes');
  assert.ok(U.blobGets().filter((l) => l.includes(victim)).length > before, 'the upstream served the good bytes');
  assert.deepEqual(layerHashes(h.r), layerHashes(first), 'the published layers are the verified ones');
  assert.deepEqual(await indexProblems(dir), []);
});

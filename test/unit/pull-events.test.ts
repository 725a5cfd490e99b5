/** Event throttling, coalescing and PullOperation semantics (docs/pull.md §10, docs/api.md §2.6). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventQueue, PullEmitter, makeOperation, type PullEvent } from '../../src/pull/events.js';
import { ProgressRenderer, formatSize } from '../../src/cli/progress.js';

const dl = (layerIndex: number, downloadedBytes: number): PullEvent => ({
  type: 'layerDownloadProgress',
  layerIndex,
  digest: 'sha256:' + 'a'.repeat(64),
  downloadedBytes,
  totalBytes: 10 << 20,
  elapsedMs: 0,
});

test('throttle: ≥ 100 ms AND ≥ 256 KiB between progress events, one final at completion', () => {
  let now = 0;
  const em = new PullEmitter(() => now);
  const got: PullEvent[] = [];
  em.addListener((e) => got.push(e));
  const p = (n: number) =>
    em.progress({ type: 'layerDownloadProgress', layerIndex: 0, digest: 'd', downloadedBytes: n, totalBytes: 5 << 20 });
  p(300 * 1024); // first: enough bytes, emitted
  now = 50;
  p(900 * 1024); // too soon
  now = 120;
  p(1000 * 1024); // ≥100 ms and ≥256 KiB since 300 KiB → emitted
  now = 400;
  p(1100 * 1024); // enough time, not enough bytes
  now = 401;
  p(1200 * 1024);
  assert.deepEqual(
    got.map((e) => (e as { downloadedBytes: number }).downloadedBytes),
    [300 * 1024, 1000 * 1024],
  );
  em.flushProgress(0, 'download');
  assert.deepEqual(
    got.map((e) => (e as { downloadedBytes: number }).downloadedBytes),
    [300 * 1024, 1000 * 1024, 1200 * 1024],
  );
  // flush with nothing pending emits the given final value once
  em.flushProgress(1, 'download', {
    type: 'layerDownloadProgress',
    layerIndex: 1,
    digest: 'd',
    downloadedBytes: 10,
    totalBytes: 10,
  });
  assert.equal(got.length, 4);
  assert.equal(got[3]!.elapsedMs, 401);
});

test('queue: pending progress of one layer+kind coalesces in place, newest wins; nothing else is dropped', async () => {
  const q = new EventQueue();
  q.push({ type: 'layerDownloadStarted', layerIndex: 0, digest: 'x', totalBytes: 1, resumeFrom: 0, elapsedMs: 0 });
  q.push(dl(0, 1));
  q.push(dl(1, 5));
  q.push(dl(0, 2));
  q.push({ type: 'warning', code: 'W', message: 'm', elapsedMs: 0 });
  q.push(dl(0, 3));
  q.push(dl(1, 6));
  q.close();
  const out: PullEvent[] = [];
  for await (const e of q) out.push(e);
  assert.deepEqual(
    out.map((e) => (e.type === 'layerDownloadProgress' ? `p${e.layerIndex}:${e.downloadedBytes}` : e.type)),
    ['layerDownloadStarted', 'p0:3', 'p1:6', 'warning'],
  );
});

test('queue: a state change of the layer is a barrier; progress after it is queued after it', async () => {
  const q = new EventQueue();
  q.push(dl(0, 100));
  q.push({ type: 'retry', layerIndex: 0, attempt: 2, delayMs: 0, reason: 'r', elapsedMs: 0 });
  q.push({ type: 'layerDownloadStarted', layerIndex: 0, digest: 'x', totalBytes: 1, resumeFrom: 0, elapsedMs: 0 });
  q.push(dl(0, 5));
  q.push(dl(0, 7));
  q.close();
  const out: string[] = [];
  for await (const e of q) out.push(e.type === 'layerDownloadProgress' ? `p${e.downloadedBytes}` : e.type);
  assert.deepEqual(out, ['p100', 'retry', 'layerDownloadStarted', 'p7']);
});

test('queue: a consumer that keeps up sees every event', async () => {
  const q = new EventQueue();
  const out: number[] = [];
  const done = (async () => {
    for await (const e of q) out.push((e as { downloadedBytes: number }).downloadedBytes);
  })();
  for (let i = 1; i <= 5; i++) {
    q.push(dl(0, i));
    await new Promise((r) => setImmediate(r));
  }
  q.close();
  await done;
  assert.deepEqual(out, [1, 2, 3, 4, 5]);
});

test('operation: failure ends the iterator normally, result rejects, no unhandledRejection', async () => {
  let unhandled = 0;
  const h = () => {
    unhandled++;
  };
  process.on('unhandledRejection', h);
  try {
    const op = makeOperation(undefined, async (_signal, onEvent) => {
      onEvent({ type: 'resolving', reference: 'r', elapsedMs: 0 });
      throw new Error('boom');
    });
    const seen: string[] = [];
    for await (const e of op) seen.push(e.type);
    assert.deepEqual(seen, ['resolving']);
    await assert.rejects(op.result, /boom/);
    const op2 = makeOperation(undefined, async () => {
      throw new Error('ignored');
    });
    void op2; // never awaited
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(unhandled, 0);
  } finally {
    process.off('unhandledRejection', h);
  }
});

test('operation: abort(reason) and an outer signal both reach the run', async () => {
  const waitAbort = (signal: AbortSignal) =>
    new Promise<never>((_, rej) => {
      if (signal.aborted) rej(signal.reason);
      signal.addEventListener('abort', () => rej(signal.reason));
    });
  const op = makeOperation(undefined, waitAbort);
  op.abort('stop');
  await assert.rejects(op.result, (e) => e === 'stop');
  const ac = new AbortController();
  const op2 = makeOperation(ac.signal, waitAbort);
  await new Promise((r) => setImmediate(r));
  ac.abort('outer');
  await assert.rejects(op2.result, (e) => e === 'outer');
});

test('emitter: a throwing listener is reported once and stops only itself', () => {
  const em = new PullEmitter();
  const errs: unknown[] = [];
  em.onListenerError = (e) => errs.push(e);
  const seen: string[] = [];
  em.addListener(() => {
    throw new Error('listener');
  });
  em.addListener((e) => seen.push(e.type));
  em.emit({ type: 'resolving', reference: 'r' });
  em.emit({ type: 'stitchStarted', layerCount: 1 });
  assert.equal(errs.length, 1);
  assert.equal((em.listenerError!.error as Error).message, 'listener');
  assert.deepEqual(seen, ['resolving', 'stitchStarted']);
});

test('sizes: decimal units, 3 significant digits', () => {
  assert.equal(formatSize(1088494), '1.09MB');
  assert.equal(formatSize(203_000_000), '203MB');
  assert.equal(formatSize(4100), '4.1kB');
  assert.equal(formatSize(999), '999B');
  assert.equal(formatSize(999_999), '1MB');
  assert.equal(formatSize(null), '-');
});

function collect(tty: boolean, events: PullEvent[], now: () => number): string {
  let out = '';
  const sink = {
    write(s: string) {
      out += s;
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const r = new ProgressRenderer(sink, { tty, now, redrawIntervalMs: 0 });
  for (const e of events) r.handle(e);
  r.close();
  return out;
}

const pullEvents = (): PullEvent[] => {
  const d = 'sha256:e646028a2e6d' + '0'.repeat(52);
  const f = 'sha256:be48291bcd43' + '0'.repeat(52);
  return [
    { type: 'resolving', reference: 'docker.io/library/python:3.12', elapsedMs: 0 },
    {
      type: 'resolved',
      reference: 'docker.io/library/python:3.12',
      manifestDigest: 'sha256:7af02acc4131' + '0'.repeat(52),
      indexDigest: null,
      platform: { os: 'linux', architecture: 'amd64', variant: null },
      layerCount: 2,
      totalDownloadBytes: 1088494,
      cached: false,
      source: 'docker.io',
      elapsedMs: 1,
    },
    { type: 'layerMaterializeComplete', layerIndex: 1, diffId: f, erofsSizeBytes: 8192, reused: true, elapsedMs: 2 },
    { type: 'layerDownloadStarted', layerIndex: 0, digest: d, totalBytes: 1088494, resumeFrom: 0, elapsedMs: 2 },
    { type: 'layerMaterializeStarted', layerIndex: 0, diffId: f, elapsedMs: 2 },
    {
      type: 'layerDownloadProgress',
      layerIndex: 0,
      digest: d,
      downloadedBytes: 512000,
      totalBytes: 1088494,
      elapsedMs: 3,
    },
    { type: 'retry', layerIndex: 0, attempt: 2, delayMs: 2000, reason: 'HTTP 503', elapsedMs: 4 },
    { type: 'warning', code: 'MEDIA_TYPE_MISMATCH', message: 'content is zstd', elapsedMs: 4 },
    { type: 'layerDownloadStarted', layerIndex: 0, digest: d, totalBytes: 1088494, resumeFrom: 0, elapsedMs: 5 },
    {
      type: 'layerDownloadProgress',
      layerIndex: 0,
      digest: d,
      downloadedBytes: 1088494,
      totalBytes: 1088494,
      elapsedMs: 6,
    },
    { type: 'layerDownloadComplete', layerIndex: 0, digest: d, downloadedBytes: 1088494, elapsedMs: 6 },
    { type: 'layerMaterializeProgress', layerIndex: 0, diffId: f, tarBytes: 9_800_000, entries: 1203, elapsedMs: 7 },
    {
      type: 'layerMaterializeComplete',
      layerIndex: 0,
      diffId: f,
      erofsSizeBytes: 10_000_000,
      reused: false,
      elapsedMs: 8,
    },
    { type: 'stitchStarted', layerCount: 2, elapsedMs: 9 },
    { type: 'stitchComplete', fsmetaSizeBytes: 4096, reused: false, elapsedMs: 9 },
    {
      type: 'complete',
      reference: 'docker.io/library/python:3.12',
      manifestDigest: 'sha256:7af0',
      cached: false,
      layerCount: 2,
      elapsedMs: 2400,
    },
  ];
};

test('renderer, not a TTY: plain lines per state change, no control characters', () => {
  let t = 0;
  const out = collect(false, pullEvents(), () => (t += 10));
  assert.doesNotMatch(out, /[\x1b\r]/);
  assert.match(out, /python:3\.12 resolved sha256:7af02acc4131 \(linux\/amd64, 2 layers, 1\.09MB\) from docker\.io/);
  assert.match(out, /layer 1\/2 sha256:e646028a2e6d downloading 1\.09MB\n/);
  assert.match(out, /layer 1\/2 sha256:e646028a2e6d retrying \(2\/5 in 2\.0s\): HTTP 503/);
  assert.match(out, /msb: warning: content is zstd\n/);
  assert.match(out, /layer 1\/2 sha256:e646028a2e6d converted 9\.8MB in /);
  assert.match(out, /layer 2\/2 sha256:be48291bcd43 already present/);
});

test('renderer, not a TTY: at most one progress line per 5 s per layer', () => {
  const d = 'sha256:' + 'c'.repeat(64);
  const evs: PullEvent[] = [
    { type: 'layerDownloadStarted', layerIndex: 0, digest: d, totalBytes: 100 << 20, resumeFrom: 0, elapsedMs: 0 },
  ];
  for (let i = 1; i <= 100; i++) evs.push(dl(0, i << 20));
  let out2 = '';
  const sink = {
    write(s: string) {
      out2 += s;
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  let clock = 0;
  const r = new ProgressRenderer(sink, { tty: false, now: () => clock });
  r.handle(evs[0]!);
  for (let i = 1; i < evs.length; i++) {
    clock = i * 200;
    r.handle(evs[i]!);
  }
  const progressLines = out2.split('\n').filter((l) => / downloading [0-9.]+[kMG]?B\//.test(l));
  assert.equal(progressLines.length, 4); // 20 s of progress → at 5, 10, 15, 20 s
});

test('renderer, TTY: one live line per layer with bars, states and a summary', async () => {
  let t = 0;
  let out = '';
  const sink = {
    write(s: string) {
      out += s;
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const r = new ProgressRenderer(sink, {
    tty: true,
    now: () => (t += 10),
    redrawIntervalMs: 0,
    displayName: 'python:3.12',
  });
  for (const e of pullEvents()) {
    r.handle(e);
    await new Promise((res) => setTimeout(res, 2));
  }
  r.close();
  assert.match(out, /^python:3\.12 resolved sha256:7af02acc4131 \(linux\/amd64, 2 layers, 1\.09MB\) from docker\.io\n/);
  assert.match(out, /\x1b\[/);
  assert.match(out, /e646028a2e6d {2}Downloading {2}\[=========> {10}\] {2}512kB\/1\.09MB/);
  assert.match(out, /e646028a2e6d {2}Retrying \(2\/5 in 2\.0s\)/);
  assert.match(out, /be48291bcd43 {2}Done {9}/);
  assert.match(out, /\(cached\)/);
  assert.match(out, /Stitching fsmeta \+ vmdk … done\n/);
  assert.match(out, /msb: warning: content is zstd/);
  assert.match(out, /python:3\.12: 2 layers \(1 downloaded, 1 cached\), 1\.09MB in 2\.4s/);
});

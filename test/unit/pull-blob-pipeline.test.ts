/**
 * The single-pass tee / .part / resume / error-precedence plumbing of docs/pull.md §4 and §7, driven by
 * an in-process blob source (so every status and byte can be chosen) and real gzip decoding. The
 * converter is a stand-in that hashes what it receives (the real one is covered by the pull tests
 * against the registry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip, gzipSync } from 'node:zlib';
import {
  downloadAndConvert,
  type BlobEvent,
  type BlobSource,
  type ConverterDeps,
} from '../../src/pull/blob-pipeline.js';
import type { Compression } from '../../src/oci/media-types.js';
import { PullEmitter, type PullEvent } from '../../src/pull/events.js';
import { DigestMismatchError, LayerInvalidError, MsbError } from '../../src/errors.js';
import { tempDir } from '../helpers/env.js';
import { flipByte } from '../helpers/bytes.js';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

function tarLike(size: number, seed = 1): Buffer {
  // Content whose first 512 bytes look like a ustar header to our stand-in detector.
  // Incompressible (so the gzip blob spans many chunks), deterministic per seed.
  const b = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 32, i++)
    createHash('sha256').update(`${seed}:${i}`).digest().copy(b, off);
  b.write('ustar', 257, 'latin1');
  return b;
}

const deps = (opts: { failOn?: string } = {}): ConverterDeps => ({
  detectCompression(head: Buffer): Compression | null {
    if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
    if (head.length === 0) return 'none';
    return null;
  },
  createDecompressor(kind: Compression) {
    return kind === 'gzip' ? createGunzip() : new PassThrough();
  },
  async writeLayer(tar: Readable, candidatePath: string, o) {
    const h = createHash('sha256');
    let n = 0;
    await writeFile(candidatePath, 'candidate');
    for await (const c of tar) {
      h.update(c as Buffer);
      n += (c as Buffer).length;
      o.onProgress({ tarBytes: n, entries: 1 });
      if (opts.failOn && (c as Buffer).includes(opts.failOn)) throw new LayerInvalidError('bad entry', { entry: 'x' });
    }
    return { diffId: 'sha256:' + h.digest('hex'), sizeBytes: 4096, inodes: 1, blocks: 1, entries: 1, xattrsDropped: 0 };
  },
});

function* chunked(b: Buffer, size = 64 * 1024): Generator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

interface Served {
  from: number;
  status: number;
  startEndpoint: number;
}

type Reply = {
  status: 200 | 206 | 416;
  bytes?: Buffer;
  endless?: boolean;
  abortAt?: number;
  ac?: AbortController;
  /** After this many bytes, the body is "cut" and re-opened at `reopenAt` (the client's transparent resume/restart). */
  cutAt?: number;
  reopenAt?: number;
  isMirror?: boolean;
};

/** A blob source shaped like RegistryClient.readBlob: `respond(from, n)` decides each answer. */
function source(blob: Buffer, respond?: (from: number, n: number, startEndpoint: number) => Reply) {
  const served: Served[] = [];
  const src: BlobSource = (from, { startEndpoint }) => {
    const r = respond
      ? respond(from, served.length, startEndpoint)
      : { status: (from > 0 ? 206 : 200) as 200 | 206, bytes: blob.subarray(from) };
    served.push({ from, status: r.status, startEndpoint });
    const open = (rangeStart: number) => ({
      type: 'open' as const,
      rangeStart,
      endpointIndex: startEndpoint,
      isMirror: !!r.isMirror,
      source: 'test',
    });
    return (async function* (): AsyncGenerator<BlobEvent> {
      if (r.status === 416) {
        yield open(from);
        return;
      }
      yield open(r.status === 206 ? from : 0);
      let sent = 0;
      if (r.endless) {
        for (;;) yield { type: 'data', chunk: Buffer.alloc(65536, 7) };
      }
      for (const c of chunked(r.bytes!)) {
        if (r.abortAt !== undefined && sent >= r.abortAt && !r.ac!.signal.aborted) {
          r.ac!.abort(new Error('user stop'));
          await new Promise((res) => setTimeout(res, 10));
        }
        if (r.cutAt !== undefined && sent >= r.cutAt) {
          const at = r.reopenAt!;
          yield open(at);
          for (const c2 of chunked(blob.subarray(at))) yield { type: 'data', chunk: c2 };
          return;
        }
        sent += c.length;
        yield { type: 'data', chunk: c };
      }
    })();
  };
  return { source: src, served };
}

function setup(t: { after(fn: () => void): void }) {
  const td = tempDir();
  t.after(td.cleanup);
  const events: PullEvent[] = [];
  const emitter = new PullEmitter();
  emitter.addListener((e) => events.push(e));
  return { dir: td.dir, part: join(td.dir, 'blob.part'), cand: join(td.dir, 'cand.tmp'), events, emitter };
}

const tar = tarLike(3 * 1024 * 1024 + 17);
const gz = gzipSync(tar);
const desc = { digest: sha(gz), size: gz.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };

test('fresh download: one pass, digests verified, .part removed, events in order, last progress = total', async (t) => {
  const s = setup(t);
  const src = source(gz);
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.diffId, sha(tar));
  assert.equal(r.compression, 'gzip');
  assert.equal(r.networkBytes, gz.length);
  assert.equal(existsSync(s.part), false);
  assert.equal(existsSync(s.cand), true, 'the candidate is left for the caller to publish');
  assert.deepEqual(src.served, [{ from: 0, status: 200, startEndpoint: 0 }]);
  const types = s.events.map((e) => e.type);
  assert.equal(types[0], 'layerDownloadStarted');
  assert.equal(types[1], 'layerMaterializeStarted');
  assert.ok(types.indexOf('layerDownloadComplete') > types.lastIndexOf('layerDownloadProgress'));
  const dl = s.events.filter((e) => e.type === 'layerDownloadProgress') as Extract<
    PullEvent,
    { type: 'layerDownloadProgress' }
  >[];
  assert.ok(dl.length >= 1);
  assert.equal(dl.at(-1)!.downloadedBytes, gz.length);
  for (let i = 1; i < dl.length; i++) assert.ok(dl[i]!.downloadedBytes >= dl[i - 1]!.downloadedBytes);
  const mp = s.events.filter((e) => e.type === 'layerMaterializeProgress') as Extract<
    PullEvent,
    { type: 'layerMaterializeProgress' }
  >[];
  assert.equal(mp.at(-1)!.tarBytes, tar.length);
  for (const e of s.events) assert.equal(typeof e.elapsedMs, 'number');
});

test('resume: an existing .part prefix is re-hashed and re-fed; a 206 is appended', async (t) => {
  const s = setup(t);
  const n = Math.floor(gz.length * 0.6);
  writeFileSync(s.part, gz.subarray(0, n));
  const src = source(gz);
  const r = await downloadAndConvert({
    layerIndex: 2,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.resumedFrom, n);
  assert.equal(r.networkBytes, gz.length - n);
  assert.deepEqual(src.served, [{ from: n, status: 206, startEndpoint: 0 }]);
  const started = s.events.find((e) => e.type === 'layerDownloadStarted') as Extract<
    PullEvent,
    { type: 'layerDownloadStarted' }
  >;
  assert.equal(started.resumeFrom, n);
  assert.equal(existsSync(s.part), false);
});

test('resume answered with 200 starts over from zero and succeeds', async (t) => {
  const s = setup(t);
  writeFileSync(s.part, gz.subarray(0, 1000));
  const src = source(gz, () => ({ status: 200, bytes: gz }));
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.resumedFrom, 0);
  assert.equal(r.networkBytes, gz.length);
});

test('a complete .part needs no request; a .part longer than the blob is discarded', async (t) => {
  const s = setup(t);
  writeFileSync(s.part, gz);
  let src = source(gz);
  await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.deepEqual(src.served, []);
  writeFileSync(s.part, Buffer.concat([gz, Buffer.from('extra')]));
  src = source(gz);
  await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.deepEqual(src.served, [{ from: 0, status: 200, startEndpoint: 0 }]);
});

test('a corrupt .part prefix fails the blob digest and is retried once from zero', async (t) => {
  const s = setup(t);
  const bad = Buffer.from(gz.subarray(0, 5000));
  flipByte(bad, 4000, 0xff);
  writeFileSync(s.part, bad);
  const src = source(gz);
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.diffId, sha(tar));
  assert.deepEqual(src.served, [
    { from: 5000, status: 206, startEndpoint: 0 },
    { from: 0, status: 200, startEndpoint: 0 },
  ]);
  const types = s.events.map((e) => e.type);
  const ri = types.indexOf('retry');
  assert.ok(
    ri > 0 && types[ri + 1] === 'layerDownloadStarted',
    'a restart emits retry then a new layerDownloadStarted',
  );
  assert.equal((s.events[ri + 1] as Extract<PullEvent, { type: 'layerDownloadStarted' }>).resumeFrom, 0);
});

test('a flipped byte every time: 2 GETs, DigestMismatch{blob}, no .part, no candidate', async (t) => {
  const s = setup(t);
  const flipped = Buffer.from(gz);
  flipByte(flipped, flipped.length >> 1, 1);
  const src = source(gz, () => ({ status: 200, bytes: flipped }));
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof DigestMismatchError && e.what === 'blob' && e.expected === desc.digest,
  );
  assert.equal(src.served.length, 2);
  assert.equal(existsSync(s.part), false);
  assert.equal(existsSync(s.cand), false);
});

test('an endless body is read only to size + 1 and fails the blob check', async (t) => {
  const s = setup(t);
  const src = source(gz, () => ({ status: 200, endless: true }));
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof DigestMismatchError && e.what === 'blob' && /more than/.test(e.message),
  );
  assert.equal(src.served.length, 2);
});

test('precedence: a decode error with a matching blob digest is LAYER_INVALID, not retried', async (t) => {
  const s = setup(t);
  const corrupt = Buffer.from(gz);
  corrupt.fill(0x55, 100, 400); // gzip magic intact, deflate data broken
  const d = { ...desc, digest: sha(corrupt), size: corrupt.length };
  const src = source(corrupt);
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: d,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof LayerInvalidError,
  );
  assert.equal(src.served.length, 1);
  assert.equal(existsSync(s.part), false);
  assert.equal(existsSync(s.cand), false);
});

test('precedence: a decode error AND a wrong blob digest is DigestMismatch{blob} (the hash kept going)', async (t) => {
  const s = setup(t);
  const corrupt = Buffer.from(gz);
  corrupt.fill(0x55, 100, 400);
  const src = source(gz, () => ({ status: 200, bytes: corrupt }));
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof DigestMismatchError && e.what === 'blob',
  );
  assert.equal(src.served.length, 2);
});

test('precedence: a tar parse error early in the stream still lets the whole blob be hashed', async (t) => {
  const s = setup(t);
  const src = source(gz);
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps({ failOn: 'ustar' }),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof LayerInvalidError && e.reason === 'bad entry',
  );
  assert.equal(src.served.length, 1);
  const complete = s.events.find((e) => e.type === 'layerDownloadComplete') as Extract<
    PullEvent,
    { type: 'layerDownloadComplete' }
  >;
  assert.equal(complete.downloadedBytes, gz.length);
});

test('a wrong diff_id is DigestMismatch{diffId} and is not retried', async (t) => {
  const s = setup(t);
  const src = source(gz);
  const wrong = 'sha256:' + '0'.repeat(64);
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: wrong,
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) =>
      e instanceof DigestMismatchError && e.what === 'diffId' && e.expected === wrong && e.actual === sha(tar),
  );
  assert.equal(src.served.length, 1);
  assert.equal(existsSync(s.part), false);
});

test('content wins over the media type: MEDIA_TYPE_MISMATCH names both', async (t) => {
  const s = setup(t);
  const d = { digest: sha(tar), size: tar.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const warnings: string[] = [];
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: d,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: source(tar).source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
    onWarning: (code, msg) => warnings.push(`${code} ${msg}`),
  });
  assert.equal(r.compression, 'none');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^MEDIA_TYPE_MISMATCH .*tar\+gzip.*uncompressed/);
});

test('content that is neither gzip, zstd nor tar is LAYER_INVALID', async (t) => {
  const s = setup(t);
  const junk = Buffer.alloc(10000, 0x41);
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: { digest: sha(junk), size: junk.length, mediaType: 'application/vnd.oci.image.layer.v1.tar' },
      diffId: sha(junk),
      partPath: s.part,
      candidatePath: s.cand,
      source: source(junk).source,
      deps: deps(),
      emitter: s.emitter,
      signal: new AbortController().signal,
    }),
    (e: unknown) => e instanceof MsbError && e.code === 'LAYER_INVALID',
  );
});

test('abort mid-body: ABORTED with the reason as cause, the .part is kept (a prefix of the blob), no candidate', async (t) => {
  const s = setup(t);
  const ac = new AbortController();
  const reason = new Error('user stop');
  const src = source(gz, () => ({ status: 200, bytes: gz, abortAt: gz.length >> 1, ac }));
  await assert.rejects(
    downloadAndConvert({
      layerIndex: 0,
      blob: desc,
      diffId: sha(tar),
      partPath: s.part,
      candidatePath: s.cand,
      source: src.source,
      deps: deps(),
      emitter: s.emitter,
      signal: ac.signal,
    }),
    (e: unknown) => e instanceof MsbError && e.code === 'ABORTED' && (e.cause as Error).message === reason.message,
  );
  assert.equal(existsSync(s.cand), false);
  assert.equal(existsSync(s.part), true);
  const kept = readFileSync(s.part);
  assert.ok(kept.length > 0 && kept.length < gz.length);
  assert.ok(kept.equals(gz.subarray(0, kept.length)));
  // and the next attempt resumes from it
  const src2 = source(gz);
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src2.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.resumedFrom, kept.length);
  assert.equal(statSync(s.cand).isFile(), true);
});

test('a body cut mid-way and resumed by the client continues the same pass', async (t) => {
  const s = setup(t);
  const cut = 256 * 1024;
  const src = source(gz, () => ({ status: 200, bytes: gz, cutAt: cut, reopenAt: cut }));
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.diffId, sha(tar));
  assert.equal(s.events.filter((e) => e.type === 'layerDownloadStarted').length, 1);
  assert.equal(s.events.filter((e) => e.type === 'retry').length, 0);
});

test('a body restarted from 0 by the client (200 to its Range) restarts the pipeline on the same response', async (t) => {
  const s = setup(t);
  const src = source(gz, () => ({ status: 200, bytes: gz, cutAt: 512 * 1024, reopenAt: 0 }));
  const r = await downloadAndConvert({
    layerIndex: 1,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
  });
  assert.equal(r.diffId, sha(tar));
  assert.equal(src.served.length, 1, 'the re-opened response is consumed, not requested again');
  const types = s.events.map((e) => e.type);
  const ri = types.indexOf('retry');
  assert.ok(ri > 0);
  assert.deepEqual(types.slice(ri, ri + 3), ['retry', 'layerDownloadStarted', 'layerMaterializeStarted']);
  // monotonic between one Started and the next
  let last = -1;
  for (const e of s.events) {
    if (e.type === 'layerDownloadStarted') last = -1;
    if (e.type === 'layerDownloadProgress') {
      assert.ok(e.downloadedBytes >= last);
      last = e.downloadedBytes;
    }
  }
});

test('a mirror serving a bad blob is abandoned for the next endpoint (MIRROR_FALLBACK), then success', async (t) => {
  const s = setup(t);
  const flipped = Buffer.from(gz);
  flipByte(flipped, 100, 1);
  const src = source(gz, (_from, _n, ep) =>
    ep === 0 ? { status: 200, bytes: flipped, isMirror: true } : { status: 200, bytes: gz },
  );
  const warnings: string[] = [];
  const r = await downloadAndConvert({
    layerIndex: 0,
    blob: desc,
    diffId: sha(tar),
    partPath: s.part,
    candidatePath: s.cand,
    source: src.source,
    deps: deps(),
    emitter: s.emitter,
    signal: new AbortController().signal,
    onWarning: (c) => warnings.push(c),
  });
  assert.equal(r.diffId, sha(tar));
  assert.deepEqual(
    src.served.map((x) => x.startEndpoint),
    [0, 1],
  );
  assert.deepEqual(warnings, ['MIRROR_FALLBACK']);
});

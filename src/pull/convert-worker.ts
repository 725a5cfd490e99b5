/**
 * A conversion worker (worker-pool.ts starts it): runs `InProcessConversion`s with the real
 * converter (decoders, the streaming layer writer) for the pool, several at a time. Input arrives
 * as transferred chunks and is fed in order, one write at a time; each chunk is acknowledged once
 * the conversion took it, which is the pool's backpressure. The result carries the layer's tree
 * (cloned to the pool's thread, for the stitch).
 */
import { parentPort } from 'node:worker_threads';
import { AbortedError } from '../errors.js';
import { writeLayer } from '../erofs/layer-writer.js';
import { createDecompressor, detectCompression, mapDecoderError } from '../layer/compression.js';
import { InProcessConversion, type ConverterDeps } from './conversion.js';
import { fromWire, toWire, type FromWorker, type ToWorker } from './worker-wire.js';
import { PROFILING, takePhases } from '../util/profile.js';

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);

const deps: ConverterDeps = {
  detectCompression,
  createDecompressor: (kind) => createDecompressor(kind),
  mapDecodeError: (kind, err) => mapDecoderError(kind, err),
  writeLayer: (tar, candidatePath, o) =>
    writeLayer(tar, candidatePath, {
      ...(o.limits ? { limits: o.limits } : {}),
      signal: o.signal,
      diffIdAlgorithm: o.diffIdAlgorithm,
      onProgress: o.onProgress,
      onWarning: (code, message) => o.onWarning({ code, message }),
    }),
};

interface Job {
  conv: InProcessConversion;
  progress: Progress;
  ac: AbortController;
  queue: Buffer[];
  ended: boolean;
  /** True while `pump` is feeding the queue. */
  pumping: boolean;
}

const jobs = new Map<number, Job>();

function start(m: Extract<ToWorker, { t: 'start' }>): void {
  const ac = new AbortController();
  const progress = new Progress(m.id);
  const conv = new InProcessConversion(deps, {
    layerIndex: m.layerIndex,
    blob: m.blob,
    diffId: m.diffId,
    candidatePath: m.candidatePath,
    limits: m.limits,
    signal: ac.signal,
    onProgress: (p) => progress.update(p),
    onWarning: (code, message) => send({ t: 'warning', id: m.id, code, message }),
  });
  jobs.set(m.id, { conv, ac, progress, queue: [], ended: false, pumping: false });
}

/** Feeds the queued chunks in order, waiting whenever the conversion asks to; then ends it. */
async function pump(id: number, job: Job): Promise<void> {
  if (job.pumping) return;
  job.pumping = true;
  try {
    while (job.queue.length > 0) {
      const buf = job.queue.shift()!;
      const w = job.conv.write(buf);
      if (w) await w;
      send({ t: 'ack', id, bytes: buf.length });
    }
  } finally {
    job.pumping = false;
  }
  if (job.ended && job.queue.length === 0 && jobs.get(id) === job) await finish(id, job);
}

async function finish(id: number, job: Job): Promise<void> {
  jobs.delete(id);
  const r = await job.conv.finish();
  job.progress.flush();
  const kind = job.conv.kind;
  const phases = PROFILING ? takePhases() : undefined;
  if (r.ok) send({ t: 'done', id, kind, phases, ok: true, value: r.value });
  else send({ t: 'done', id, kind, phases, ok: false, error: toWire(r.error) });
}

/** Progress goes out once per MiB of tar at most (the pool's emitter throttles further); the last one always. */
class Progress {
  private sent = 0;
  private last: { tarBytes: number; entries: number } | null = null;
  constructor(private readonly id: number) {}
  update(p: { tarBytes: number; entries: number }): void {
    this.last = p;
    if (p.tarBytes - this.sent >= 1 << 20) this.flush();
  }
  flush(): void {
    const p = this.last;
    if (!p) return;
    this.last = null;
    this.sent = p.tarBytes;
    send({ t: 'progress', id: this.id, tarBytes: p.tarBytes, entries: p.entries });
  }
}

port.on('message', (m: ToWorker) => {
  if (m.t === 'start') {
    start(m);
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  switch (m.t) {
    case 'data':
      job.queue.push(Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength));
      void pump(m.id, job);
      return;
    case 'end':
      job.ended = true;
      void pump(m.id, job);
      return;
    case 'abort': {
      const reason = fromWire(m.reason);
      job.queue = [];
      job.conv.destroy(reason);
      job.ac.abort(reason);
      jobs.delete(m.id);
      void job.conv
        .settle()
        .then(() =>
          send({ t: 'done', id: m.id, kind: job.conv.kind, ok: false, error: toWire(new AbortedError(reason)) }),
        );
      return;
    }
  }
});

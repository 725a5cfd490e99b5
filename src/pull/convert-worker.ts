/**
 * A conversion worker (worker-pool.ts starts it): runs `WorkerJob`s (worker-job.ts), several at a
 * time. Input arrives as transferred chunks; each goes back with its acknowledgement once the job
 * consumed it, which is both the pool's backpressure and its supply of reusable memory. The result
 * carries the layer's tree (cloned to the pool's thread, for the stitch).
 */
import { parentPort } from 'node:worker_threads';
import { PROFILING, takePhases } from '../util/profile.js';
import { WorkerJob } from './worker-job.js';
import { fromWire, toWire, type FromWorker, type ToWorker } from './worker-wire.js';

const port = parentPort!;
const send = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

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

const jobs = new Map<number, WorkerJob>();

function start(m: Extract<ToWorker, { t: 'start' }>): void {
  const { id } = m;
  const progress = new Progress(id);
  const job = new WorkerJob(
    {
      layerIndex: m.layerIndex,
      blob: m.blob,
      diffId: m.diffId,
      candidatePath: m.candidatePath,
      limits: m.limits,
      onProgress: (p) => progress.update(p),
      onWarning: (code, message) => send({ t: 'warning', id, code, message }),
    },
    // The chunk's memory goes back to the pool for reuse.
    (b) => send({ t: 'ack', id, bytes: b.length, buf: b.buffer as ArrayBuffer }, [b.buffer as ArrayBuffer]),
  );
  jobs.set(id, job);
  void job.result.then((r) => {
    jobs.delete(id);
    progress.flush();
    const phases = PROFILING ? takePhases() : undefined;
    const kind = job.kind;
    if (r.ok) send({ t: 'done', id, kind, phases, ok: true, value: r.value });
    else send({ t: 'done', id, kind, phases, ok: false, error: toWire(r.error) });
  });
}

port.on('message', (m: ToWorker) => {
  if (m.t === 'start') {
    start(m);
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  if (m.t === 'data') job.input.push(Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength));
  else if (m.t === 'end') job.input.end();
  else job.abort(fromWire(m.reason));
});

/**
 * Layer conversions in worker threads (the default `ConverterDeps.pool`): the thread that reads
 * the network keeps the compressed side (blob hash, `.part`), and decoding, the diff_id hash, the
 * tar parse and the EROFS writer run in up to one worker per core, several layers per worker. zstd
 * decodes on its worker's thread; gzip inflates in the thread pool as before.
 *
 * Input is gathered into ~1 MiB chunks whose memory is transferred, not copied; at most
 * `INFLIGHT` bytes per conversion are unacknowledged (backpressure reaches the network). The
 * result carries the layer's tree back for the stitch. A worker that dies fails its conversions
 * with an InternalError; `close()` stops the workers (a later `start` starts new ones).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../errors.js';
import type { DirNode } from '../erofs/tree.js';
import type { Compression } from '../oci/media-types.js';
import {
  DECODE_CHUNK,
  type ConversionOptions,
  type ConversionPool,
  type ConvertedLayer,
  type LayerConversion,
  type Settled,
} from './conversion.js';
import { fromWire, reviveTree, toWire, type FromWorker, type ToWorker } from './worker-wire.js';
import { addPhases } from '../util/profile.js';

/** Unacknowledged input per conversion (the worker's decoder buffers its own share behind this). */
const INFLIGHT = 2 << 20;
/** Capacity of a reusable input buffer: a gathered chunk is DECODE_CHUNK plus at most one network chunk. */
const CHUNK_CAPACITY = DECODE_CHUNK + (256 << 10);
/** Reusable input buffers kept between uses, for all conversions of a pool. */
const SPARE_BUFFERS = 8;

const WORKER_URL = new URL('./convert-worker.js', import.meta.url);

/** Input buffers coming back from the workers, reused instead of allocating (and collecting) new ones. */
class Spares {
  private free: ArrayBuffer[] = [];
  give(b: ArrayBuffer): void {
    if (this.free.length < SPARE_BUFFERS && b.byteLength === CHUNK_CAPACITY) this.free.push(b);
  }
  /** A view of `n` bytes on a buffer of its own (it is transferred). */
  take(n: number): Uint8Array {
    if (n <= CHUNK_CAPACITY) return new Uint8Array(this.free.pop() ?? new ArrayBuffer(CHUNK_CAPACITY), 0, n);
    return new Uint8Array(n);
  }
}

class PoolWorker {
  readonly worker: Worker;
  readonly jobs = new Map<number, WorkerConversion>();
  private dead: Error | null = null;

  constructor(readonly spares: Spares) {
    this.worker = new Worker(WORKER_URL);
    // An idle worker never keeps the process alive; one with work does (its result is awaited).
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.jobs.get(m.id)?.onMessage(m));
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`conversion worker exited with code ${code}`)));
  }

  private die(err: Error): void {
    this.dead ??= err;
    for (const j of [...this.jobs.values()]) j.onDeath(this.dead);
    this.jobs.clear();
  }

  add(id: number, job: WorkerConversion): void {
    this.jobs.set(id, job);
    if (this.jobs.size === 1) this.worker.ref();
  }

  remove(id: number): void {
    if (this.jobs.delete(id) && this.jobs.size === 0) this.worker.unref();
  }

  get alive(): boolean {
    return this.dead === null;
  }

  post(m: ToWorker, transfer?: ArrayBuffer[]): void {
    if (this.dead) return;
    this.worker.postMessage(m, transfer);
  }
}

export class WorkerPool implements ConversionPool {
  private workers: PoolWorker[] = [];
  private nextId = 1;
  private readonly spares = new Spares();

  /** One worker per core but one (the thread that reads the network keeps one). */
  constructor(private readonly max = Math.max(1, Math.min(4, availableParallelism() - 1))) {}

  prepare(n: number): void {
    this.workers = this.workers.filter((w) => w.alive);
    while (this.workers.length < Math.min(n, this.max)) this.workers.push(new PoolWorker(this.spares));
  }

  /** The least busy live worker; a new one while there are fewer than `max` and all are busy. */
  private pick(): PoolWorker {
    this.workers = this.workers.filter((w) => w.alive);
    let best: PoolWorker | null = null;
    for (const w of this.workers) if (!best || w.jobs.size < best.jobs.size) best = w;
    if (!best || (best.jobs.size > 0 && this.workers.length < this.max)) {
      best = new PoolWorker(this.spares);
      this.workers.push(best);
    }
    return best;
  }

  start(o: ConversionOptions): LayerConversion {
    return new WorkerConversion(this.pick(), this.nextId++, o);
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate().catch(() => 0)));
  }
}

/** One conversion, seen from the pool's side. */
class WorkerConversion implements LayerConversion {
  kind: Compression | null = null;
  private gather: Buffer[] = [];
  private gatherLen = 0;
  private inflight = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  private readonly done: Promise<Settled<ConvertedLayer>>;
  private resolveDone!: (r: Settled<ConvertedLayer>) => void;

  constructor(
    private readonly w: PoolWorker,
    private readonly id: number,
    private readonly o: ConversionOptions,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    if (!w.alive) {
      this.onDeath(new Error('it had stopped'));
      return;
    }
    w.add(id, this);
    const { layerIndex, blob, diffId, candidatePath, limits } = o;
    w.post({
      t: 'start',
      id,
      layerIndex,
      blob: { digest: blob.digest, mediaType: blob.mediaType },
      diffId,
      candidatePath,
      limits,
    });
  }

  onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'ack':
        if (m.buf) this.w.spares.give(m.buf);
        this.inflight -= m.bytes;
        if (this.inflight < INFLIGHT) this.release();
        return;
      case 'progress':
        this.o.onProgress({ tarBytes: m.tarBytes, entries: m.entries });
        return;
      case 'warning':
        this.o.onWarning(m.code, m.message);
        return;
      case 'done':
        this.w.remove(this.id);
        if (m.phases) addPhases(m.phases);
        this.kind = m.kind;
        this.stopped = true;
        this.release();
        if (!m.ok) this.resolveDone({ ok: false, error: fromWire(m.error) });
        else {
          const value = m.value as ConvertedLayer;
          if (value.root) value.root = reviveTree(value.root as DirNode);
          this.resolveDone({ ok: true, value });
        }
    }
  }

  onDeath(err: Error): void {
    this.stopped = true;
    this.release();
    this.resolveDone({
      ok: false,
      error: new InternalError(`the layer conversion worker failed: ${err.message}`, err),
    });
  }

  private release(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /**
   * Sends what is gathered. The chunks are copied into one new ArrayBuffer, which is transferred:
   * the caller's chunks stay usable (the `.part` writer holds the same ones).
   */
  private send(): void {
    if (this.gatherLen === 0) return;
    const u8 = this.w.spares.take(this.gatherLen);
    let off = 0;
    for (const c of this.gather) {
      u8.set(c, off);
      off += c.length;
    }
    this.gather = [];
    this.gatherLen = 0;
    this.inflight += u8.length;
    this.w.post({ t: 'data', id: this.id, buf: u8 }, [u8.buffer as ArrayBuffer]);
  }

  write(chunk: Buffer): Promise<void> | undefined {
    if (this.stopped) return undefined;
    this.gather.push(chunk);
    this.gatherLen += chunk.length;
    if (this.gatherLen < DECODE_CHUNK) return undefined;
    this.send();
    if (this.inflight < INFLIGHT) return undefined;
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  finish(): Promise<Settled<ConvertedLayer>> {
    if (!this.stopped) {
      this.send();
      this.w.post({ t: 'end', id: this.id });
    }
    return this.done;
  }

  destroy(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.gather = [];
    this.release();
    this.w.post({ t: 'abort', id: this.id, reason: toWire(err) });
  }

  async settle(): Promise<void> {
    await this.done;
  }
}

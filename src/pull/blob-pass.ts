/**
 * One pass of the single-pass pipeline (blob-pipeline.ts has the whole picture and the retry rules
 * around passes): open the blob at the `.part`'s length, re-feed the `.part` prefix, then stream
 * the body into the `.part`, the compressed hash and the layer conversion; finally judge the
 * outcome in the order of docs/pull.md §7.
 */
import { createReadStream } from 'node:fs';
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import type { Hash } from 'node:crypto';
import { AbortedError, DigestMismatchError, LayerInvalidError, toIoError } from '../errors.js';
import { digestAlgorithm, newHash } from '../util/digest.js';
import { phaseEnd, phaseStart } from '../util/profile.js';
import { startConversion, type LayerConversion } from './conversion.js';
import { PartWriter } from './part-writer.js';
import type { Limits } from '../limits.js';
import type { Compression } from '../oci/media-types.js';
import type { PullEmitter } from './events.js';
import type { ConvertedLayer, ConverterDeps } from './conversion.js';

/**
 * The blob as a stream of events (the registry client's `readBlob`): `open{rangeStart}` first and
 * again after every transparent resume (rangeStart = bytes already delivered) or restart
 * (rangeStart 0: everything delivered so far must be discarded); `data{chunk}` in order; at most
 * size + 1 bytes in all.
 */
export type BlobEvent =
  | { type: 'open'; rangeStart: number; endpointIndex: number; isMirror: boolean; source: string }
  | { type: 'data'; chunk: Buffer };

type OpenEvent = Extract<BlobEvent, { type: 'open' }>;

/** Opens the blob from byte `offset` (Range when > 0), trying endpoints from `startEndpoint`. */
export type BlobSource = (
  offset: number,
  opts: { signal: AbortSignal; startEndpoint: number },
) => AsyncIterable<BlobEvent>;

export interface BlobDescriptor {
  digest: string;
  size: number;
  mediaType: string;
}

export interface PipelineOptions {
  layerIndex: number;
  blob: BlobDescriptor;
  diffId: string;
  partPath: string;
  candidatePath: string;
  source: BlobSource;
  deps: ConverterDeps;
  emitter: PullEmitter;
  signal: AbortSignal;
  /** `pull.retries`: bound on restarts from zero (a 200 answer to a Range request). */
  retries?: number;
  /** Tar limits for the writer (docs/api.md §6). */
  limits?: Partial<Limits>;
  /** Called for warnings (MEDIA_TYPE_MISMATCH, MIRROR_FALLBACK, the writer's XATTR_DROPPED…). */
  onWarning?: (code: string, message: string) => void;
}

export interface PipelineResult extends ConvertedLayer {
  compression: Compression;
  /** Compressed bytes taken from the network in this call (0 when the `.part` was complete). */
  networkBytes: number;
  resumedFrom: number;
}

export interface PassStart {
  /** Forget the .part (restart, digest retry). */
  fromZero: boolean;
  /** Endpoint to start from (a mirror that served a bad blob is abandoned, docs/pull.md §12). */
  startEndpoint: number;
  /** An iterator already re-opened at byte 0 by the source (carried over from a restart). */
  carried: { it: AsyncIterator<BlobEvent>; open: OpenEvent } | null;
}

/**
 * Thrown inside a pass when the source restarted from byte 0 (a 200 answer to a Range request):
 * the pass is torn down and the next one continues on the same, already re-opened, iterator.
 */
export class RestartFromZero extends Error {
  constructor(
    readonly reason: string,
    readonly it: AsyncIterator<BlobEvent>,
    readonly open: OpenEvent,
  ) {
    super(reason);
  }
}

/** The length of an existing `.part` (null when there is none; a non-file in its place is removed). */
async function partSize(path: string): Promise<number | null> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) {
      await unlink(path).catch(() => {});
      return null;
    }
    return st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toIoError(err, path);
  }
}

export class BlobPass {
  private readonly hash: Hash;
  private count = 0;
  private networkBytes = 0;
  private tooLong = false;
  /** Bytes of `.part` re-fed before the body (the resume point). */
  private prefix = 0;
  private it: AsyncIterator<BlobEvent> | null = null;
  private itDone = false;
  private part: FileHandle | null = null;
  private partWriter: PartWriter | null = null;
  private conv: LayerConversion | null = null;

  constructor(
    private readonly o: PipelineOptions,
    /** The endpoint that served the bytes (the retry rules abandon a bad mirror). */
    private readonly lastEndpoint: { index: number; isMirror: boolean; source: string },
  ) {
    this.hash = newHash(digestAlgorithm(o.blob.digest));
  }

  private abortError(): AbortedError {
    return new AbortedError(this.o.signal.reason);
  }

  private setEndpoint(ev: OpenEvent): void {
    Object.assign(this.lastEndpoint, { index: ev.endpointIndex, isMirror: ev.isMirror, source: ev.source });
  }

  async run(start: PassStart): Promise<PipelineResult> {
    const { signal } = this.o;
    if (signal.aborted) throw this.abortError();
    await this.openSource(start);
    this.emitStarted();
    await this.openPart();
    const conv = startConversion(this.o.deps, {
      layerIndex: this.o.layerIndex,
      blob: this.o.blob,
      diffId: this.o.diffId,
      candidatePath: this.o.candidatePath,
      limits: this.o.limits,
      signal,
      onProgress: (p) =>
        this.o.emitter.progress({
          type: 'layerMaterializeProgress',
          layerIndex: this.o.layerIndex,
          diffId: this.o.diffId,
          tarBytes: p.tarBytes,
          entries: p.entries,
        }),
      onWarning: (code, message) => this.o.onWarning?.(code, message),
    });
    this.conv = conv;
    const onAbort = () => conv.destroy(this.abortError());
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.replayPrefix();
      await this.readBody();
      if (signal.aborted) throw this.abortError();
      await this.closePart();
      this.emitDownloaded();
      return await this.judge(conv);
    } catch (err) {
      conv.destroy(err instanceof Error ? err : new Error(String(err)));
      await conv.settle();
      if (signal.aborted) throw this.abortError();
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (this.part) await this.part.close().catch(() => {});
    }
  }

  /** Steps 1–2: what is on disk, and a request for the rest (none when the `.part` is complete). */
  private async openSource(start: PassStart): Promise<void> {
    const { blob, signal } = this.o;
    // A .part longer than the blob is discarded.
    let n = start.fromZero ? 0 : ((await partSize(this.o.partPath)) ?? 0);
    if (n > blob.size) {
      await unlink(this.o.partPath).catch(() => {});
      n = 0;
    }
    if (start.carried) {
      this.it = start.carried.it;
      this.setEndpoint(start.carried.open);
      this.prefix = 0;
      return;
    }
    this.prefix = n;
    if (n > 0 && n === blob.size) return; // the "416 at n = size" case, decided locally
    const it = this.o.source(n, { signal, startEndpoint: start.startEndpoint })[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || first.value.type !== 'open') {
      await it.return?.().catch(() => {});
      throw new LayerInvalidError(`blob ${blob.digest}: the source yielded no response`, { diffId: this.o.diffId });
    }
    const op = first.value;
    this.setEndpoint(op);
    if (op.rangeStart !== n) this.prefix = 0; // the server ignored Range: start over, nothing was fed yet
    this.it = it;
    if (this.prefix > 0 && op.rangeStart === blob.size) {
      await it.return?.().catch(() => {});
      this.it = null;
    }
  }

  private emitStarted(): void {
    const { emitter, layerIndex, blob } = this.o;
    emitter.resetProgress(layerIndex, 'download');
    emitter.resetProgress(layerIndex, 'materialize');
    emitter.emit({
      type: 'layerDownloadStarted',
      layerIndex,
      digest: blob.digest,
      totalBytes: blob.size,
      resumeFrom: this.prefix,
    });
    emitter.emit({ type: 'layerMaterializeStarted', layerIndex, diffId: this.o.diffId });
  }

  /** Step 3: the .part, appended after a 206, truncated otherwise (none when nothing is fetched). */
  private async openPart(): Promise<void> {
    if (!this.it) return;
    try {
      this.part = await open(this.o.partPath, this.prefix > 0 ? 'a' : 'w', 0o644);
    } catch (err) {
      await this.it.return?.().catch(() => {});
      throw toIoError(err, this.o.partPath);
    }
    this.partWriter = new PartWriter(this.part, this.o.partPath);
  }

  /** One chunk to the hash, the `.part` (network bytes only) and the conversion, with backpressure. */
  private async feed(chunk: Buffer, fromNetwork: boolean): Promise<void> {
    const { blob, layerIndex } = this.o;
    let c = chunk;
    if (this.count + c.length > blob.size) {
      c = c.subarray(0, blob.size + 1 - this.count);
      this.tooLong = true;
    }
    this.count += c.length;
    const th = phaseStart();
    this.hash.update(c);
    phaseEnd('blob-hash', th, layerIndex);
    let w: Promise<unknown> | undefined;
    if (fromNetwork) {
      this.networkBytes += c.length;
      // The byte past `size` is never written: the .part stays a prefix of a valid blob.
      const keep = this.tooLong ? c.subarray(0, Math.max(0, c.length - 1)) : c;
      if (keep.length > 0) w = this.partWriter!.add(keep);
    }
    const d = this.conv!.write(c);
    if (w) {
      const tw = phaseStart();
      await w;
      phaseEnd('part-write', tw, layerIndex);
    }
    if (d) {
      const td = phaseStart();
      await d;
      phaseEnd('decode-backpressure', td, layerIndex);
    }
    this.o.emitter.progress({
      type: 'layerDownloadProgress',
      layerIndex,
      digest: blob.digest,
      downloadedBytes: Math.min(this.count, blob.size),
      totalBytes: blob.size,
    });
  }

  /** The `.part` prefix of a resume, hashed and converted again from byte 0. */
  private async replayPrefix(): Promise<void> {
    if (this.prefix === 0) return;
    const rs = createReadStream(this.o.partPath, { start: 0, end: this.prefix - 1, highWaterMark: 256 * 1024 });
    try {
      for await (const c of rs) {
        if (this.o.signal.aborted) throw this.abortError();
        await this.feed(c as Buffer, false);
      }
    } finally {
      rs.destroy();
    }
  }

  /** The body: data until the end (or size + 1 bytes), open events for resumes and restarts. */
  private async readBody(): Promise<void> {
    const it = this.it;
    if (!it) return;
    const { signal, blob, layerIndex } = this.o;
    try {
      for (;;) {
        if (signal.aborted) throw this.abortError();
        const tn = phaseStart();
        const r = await it.next();
        phaseEnd('network-wait', tn, layerIndex);
        if (r.done) {
          this.itDone = true;
          return;
        }
        const ev = r.value;
        if (ev.type === 'open') {
          this.setEndpoint(ev);
          if (ev.rangeStart === this.count) continue; // a transparent resume after a cut-off body
          this.it = null; // handed over to the next pass
          throw new RestartFromZero(`the server restarted blob ${blob.digest} from byte ${ev.rangeStart}`, it, ev);
        }
        await this.feed(ev.chunk, true);
        if (this.tooLong) return; // reading stops at size + 1 (§7)
      }
    } finally {
      if (this.it && !this.itDone) await this.it.return?.().catch(() => {});
    }
  }

  private async closePart(): Promise<void> {
    await this.partWriter?.end();
    // No fsync: the .part is a transient resume aid; a torn one fails the blob digest and is
    // fetched again from zero (docs/pull.md §4), so durability buys nothing here.
    await this.part?.close();
    this.part = null;
  }

  private emitDownloaded(): void {
    const { emitter, layerIndex, blob } = this.o;
    const downloadedBytes = Math.min(this.count, blob.size);
    emitter.flushProgress(layerIndex, 'download', {
      type: 'layerDownloadProgress',
      layerIndex,
      digest: blob.digest,
      downloadedBytes,
      totalBytes: blob.size,
    });
    emitter.emit({ type: 'layerDownloadComplete', layerIndex, digest: blob.digest, downloadedBytes });
  }

  /** Step 4: the conversion's outcome, judged only after the blob's size and digest (§7). */
  private async judge(conv: LayerConversion): Promise<PipelineResult> {
    const { blob, signal, layerIndex } = this.o;
    const tf = phaseStart();
    const converted = await conv.finish();
    phaseEnd('convert-tail', tf, layerIndex);
    if (signal.aborted) throw this.abortError();
    const actual = `${digestAlgorithm(blob.digest)}:${this.hash.digest('hex')}`;
    if (this.count !== blob.size) {
      throw new DigestMismatchError(
        'blob',
        blob.digest,
        actual,
        `blob ${blob.digest} has ${this.tooLong ? 'more than ' : ''}${this.count} bytes, the descriptor says ${blob.size}`,
      );
    }
    if (actual !== blob.digest) throw new DigestMismatchError('blob', blob.digest, actual);
    if (!converted.ok) throw converted.error;
    const layer = converted.value;
    if (layer.diffId !== this.o.diffId) throw new DigestMismatchError('diffId', this.o.diffId, layer.diffId);
    this.o.emitter.flushProgress(layerIndex, 'materialize');
    return { ...layer, compression: conv.kind ?? 'none', networkBytes: this.networkBytes, resumedFrom: this.prefix };
  }
}

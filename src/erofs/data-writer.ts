/**
 * Streams regular-file data into blocks 1…F of a layer image (docs/erofs.md §5). Positions only ever
 * grow (files are laid out in arrival order, sparse segments ascend), so data is copied into
 * block-aligned 1 MiB staging windows; a full window is written with positional writes of its
 * non-zero block runs — all-zero blocks are never written and stay holes. At most `maxInFlight`
 * windows (4 MiB) are being written at once; `write` returns a promise only when the caller must
 * wait for one to drain, which pauses the tar parser and, through it, the source: backpressure.
 *
 * An optional `WriteObserver` sees every window's bytes (zero blocks included) and the gaps
 * between windows as zero ranges, before they are written: the content digest is computed from it
 * while writing (docs/storage.md §10.1).
 */
import type { FileHandle } from 'node:fs/promises';
import { BLOCK_SIZE } from './format.js';

const WINDOW = 1 << 20;
const SYNC_EVERY = 32 << 20;
const ZERO = Buffer.alloc(BLOCK_SIZE);

/**
 * Sees every byte range an EROFS writer puts into its file, exactly once each and in any order:
 * `data` for bytes (the buffer may be reused once the call returns or its promise resolves),
 * `zero` for a hole the writer skips. Ranges never reported read as zero (the file's holes).
 */
export interface WriteObserver {
  data(pos: number, buf: Buffer): void | Promise<void>;
  zero(pos: number, len: number): void;
}

interface Window {
  buf: Buffer;
  start: number;
  hi: number;
}

export class BlockDataWriter {
  private readonly free: Buffer[] = [];
  private waiters: Array<() => void> = [];
  private cur: Window | null = null;
  private error: unknown = null;
  private readonly pending = new Set<Promise<void>>();
  /** Bytes actually written (non-hole), for tests and stats. */
  bytesWritten = 0;
  private sinceSync = 0;
  private syncing = false;

  /** End of the last window reported to the observer (gaps after it are reported as zero). */
  private observedEnd = -1;

  constructor(
    private readonly fh: FileHandle,
    private readonly maxInFlight = 4,
    private readonly observer: WriteObserver | null = null,
  ) {}

  /** Copies `data` to file position `pos` (≥ every earlier position). */
  write(pos: number, data: Buffer): Promise<void> | void {
    if (this.error) throw this.error;
    while (data.length > 0) {
      const w = this.cur;
      if (w === null || pos >= w.start + WINDOW) {
        if (w) this.submit(w);
        let buf = this.free.pop();
        if (!buf && this.allocated < this.maxInFlight) {
          buf = Buffer.alloc(WINDOW);
          this.allocated++;
        }
        if (!buf) return this.waitThenWrite(pos, data);
        this.cur = { buf, start: pos - (pos % BLOCK_SIZE), hi: 0 };
        continue;
      }
      const rel = pos - w.start;
      if (rel < 0) throw new Error('BlockDataWriter: position went backwards');
      // Staging buffers are reused without clearing: zero only the gaps (file padding, holes).
      if (rel > w.hi) w.buf.fill(0, w.hi, rel);
      const n = Math.min(data.length, WINDOW - rel);
      data.copy(w.buf, rel, 0, n);
      if (rel + n > w.hi) w.hi = rel + n;
      pos += n;
      data = data.subarray(n);
    }
  }

  private allocated = 0;

  private async waitThenWrite(pos: number, data: Buffer): Promise<void> {
    await new Promise<void>((resolve) => this.waiters.push(resolve));
    const r = this.write(pos, data);
    if (r) await r;
  }

  /** Writes the non-zero block runs of a window, then recycles its buffer. */
  private submit(w: Window): void {
    this.cur = null;
    const nblocks = Math.ceil(w.hi / BLOCK_SIZE);
    w.buf.fill(0, w.hi, nblocks * BLOCK_SIZE);
    const obs = this.observer;
    if (obs && this.observedEnd >= 0 && w.start > this.observedEnd)
      obs.zero(this.observedEnd, w.start - this.observedEnd);
    if (obs) this.observedEnd = w.start + nblocks * BLOCK_SIZE;
    const p = (async () => {
      try {
        const seen = obs?.data(w.start, w.buf.subarray(0, nblocks * BLOCK_SIZE));
        if (seen) await seen;
        let b = 0;
        while (b < nblocks) {
          while (b < nblocks && isZero(w.buf, b)) b++;
          const runStart = b;
          while (b < nblocks && !isZero(w.buf, b)) b++;
          if (b > runStart) {
            let off = runStart * BLOCK_SIZE;
            const end = b * BLOCK_SIZE;
            while (off < end) {
              const { bytesWritten } = await this.fh.write(w.buf, off, end - off, w.start + off);
              off += bytesWritten;
            }
            this.bytesWritten += end - runStart * BLOCK_SIZE;
            this.sinceSync += end - runStart * BLOCK_SIZE;
          }
        }
        this.backgroundSync();
      } catch (err) {
        this.error ??= err;
      } finally {
        this.free.push(w.buf);
        const wake = this.waiters.shift();
        if (wake) wake();
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /**
   * Starts an fdatasync every SYNC_EVERY written bytes, not awaited by the writer: the disk flushes
   * while the stream is still being decoded, so the final fsync (docs/erofs.md §5) has little left.
   */
  private backgroundSync(): void {
    if (this.syncing || this.sinceSync < SYNC_EVERY) return;
    this.syncing = true;
    this.sinceSync = 0;
    const p = this.fh
      .datasync()
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => {
        this.syncing = false;
      });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Writes the last window and waits for every write; throws the first write error. */
  async flush(): Promise<void> {
    if (this.cur) this.submit(this.cur);
    while (this.pending.size) await Promise.all([...this.pending]);
    if (this.error) throw this.error;
  }

  /** Waits for in-flight writes without writing the open window (used on error paths). */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}

function isZero(buf: Buffer, block: number): boolean {
  const o = block * BLOCK_SIZE;
  // Fast reject on the first and last words, then memcmp.
  if (buf[o] !== 0 || buf[o + BLOCK_SIZE - 1] !== 0) return false;
  return buf.compare(ZERO, 0, BLOCK_SIZE, o, o + BLOCK_SIZE) === 0;
}

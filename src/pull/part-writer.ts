/**
 * The `.part` file of a blob download (docs/pull.md §4, §7): network bytes appended in order, in
 * batches of ~1 MiB with at most one write in flight, so the download does not pay one thread-pool
 * round trip per network chunk. Memory: ≤ 2 batches.
 */
import type { FileHandle } from 'node:fs/promises';
import { toIoError } from '../errors.js';

/** .part bytes gathered before one `writev` (network chunks are 16–64 KiB). */
const PART_BATCH = 1 << 20;

export class PartWriter {
  private pending: Buffer[] = [];
  private bytes = 0;
  private inflight: Promise<void> | null = null;
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
  ) {}

  /** Queues `buf`; resolves once the previous batch is on disk when a new one had to start. */
  add(buf: Buffer): Promise<void> | undefined {
    this.pending.push(buf);
    this.bytes += buf.length;
    if (this.bytes >= PART_BATCH) return this.flush();
    return undefined;
  }

  private async flush(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.bytes === 0) return;
    const bufs = this.pending;
    this.pending = [];
    this.bytes = 0;
    this.inflight = writevAll(this.fh, bufs, this.path);
    // Awaited by the next flush or by end(); an abort may never get there.
    this.inflight.catch(() => {});
  }

  async end(): Promise<void> {
    await this.flush();
    if (this.inflight) await this.inflight;
    this.inflight = null;
  }
}

async function writevAll(fh: FileHandle, bufs: Buffer[], path: string): Promise<void> {
  try {
    let rest = bufs;
    while (rest.length > 0) {
      let { bytesWritten } = await fh.writev(rest);
      // A short write: drop what was written and go on with the remainder.
      while (rest.length > 0 && bytesWritten >= rest[0]!.length) {
        bytesWritten -= rest[0]!.length;
        rest = rest.slice(1);
      }
      if (rest.length > 0 && bytesWritten > 0) rest = [rest[0]!.subarray(bytesWritten), ...rest.slice(1)];
    }
  } catch (err) {
    throw toIoError(err, path);
  }
}

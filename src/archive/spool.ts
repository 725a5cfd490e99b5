/**
 * The spool of a load (docs/archives.md §2): one directory, `cache/tmp/load-<pid>-<rand>/` (a lease
 * item of the caller, created only when something must be spooled), holding at most a few files —
 * a stream's bytes as they arrived (`archive`), and `members`, the bodies of the members that were
 * read out of a compressed archive. Every byte written is charged to ONE budget,
 * `maxArchiveSpoolBytes`; a body is charged in full when its header is seen, so a huge member is
 * refused before any of it is written. Write failures (a full disk) are IoError naming the file.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LimitExceededError, toIoError } from '../errors.js';

export class Spool {
  private used = 0;
  private readonly files: SpoolFile[] = [];
  private dir: string | null = null;

  constructor(
    private readonly max: number,
    /** Creates the directory (after leasing it) and returns its path; called at the first file. */
    private readonly makeDir: () => Promise<string>,
  ) {}

  /** Charges `n` bytes to the budget (LIMIT_EXCEEDED `maxArchiveSpoolBytes` beyond it). */
  charge(n: number): void {
    this.used += n;
    if (this.used > this.max)
      throw new LimitExceededError('maxArchiveSpoolBytes', this.used, this.max, 'archive spool');
  }

  /** Creates the spool file `name` (O_EXCL, 0600). */
  async file(name: string): Promise<SpoolFile> {
    this.dir ??= await this.makeDir();
    const path = join(this.dir, name);
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx+', 0o600);
    } catch (err) {
      throw toIoError(err, path);
    }
    const f = new SpoolFile(path, fh, this);
    this.files.push(f);
    return f;
  }

  /** Closes every file (the caller removes the directory, which it leased). */
  async close(): Promise<void> {
    for (const f of this.files.splice(0)) await f.close();
  }
}

export class SpoolFile {
  /** Bytes reserved so far (the next append lands here). */
  size = 0;
  private closed = false;
  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly spool: Spool,
  ) {}

  /** Reserves `n` bytes at the end (charged now); returns their offset. */
  reserve(n: number): number {
    this.spool.charge(n);
    const at = this.size;
    this.size += n;
    return at;
  }

  /** Writes `data` at `pos` (inside a reservation). */
  async writeAt(data: Buffer, pos: number): Promise<void> {
    try {
      let off = 0;
      while (off < data.length) off += (await this.fh.write(data, off, data.length - off, pos + off)).bytesWritten;
    } catch (err) {
      throw toIoError(err, this.path);
    }
  }

  /** Reserves and writes `data` at the end. */
  async append(data: Buffer): Promise<void> {
    await this.writeAt(data, this.reserve(data.length));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => {});
  }
}

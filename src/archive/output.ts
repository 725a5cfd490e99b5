/**
 * Where export writes (docs/storage.md §12), as save does (docs/archives.md §8): a path gets
 * `<path>.<rand>.partial`, fsynced and renamed into place only on success (removed on failure); a
 * stream is written directly, honouring its backpressure, through save's buffered `Out`.
 */
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { AbortedError, toIoError } from '../errors.js';
import { renameDurable } from '../util/fs.js';
import { Out } from './save-writer.js';

export { Out };

/** An output being written: `out`, then `commit()` (a path: fsync + rename) or `abort()`. */
export interface ArchiveOutput {
  out: Out;
  commit(signal?: AbortSignal): Promise<void>;
  abort(): Promise<void>;
}

/** Opens a path (as its `.partial` sibling) or wraps a stream. */
export async function openOutput(output: string | NodeJS.WritableStream): Promise<ArchiveOutput> {
  if (typeof output !== 'string') {
    const out = new Out(null, output, '<stream>');
    return { out, commit: () => out.flush(), abort: async () => undefined };
  }
  const partial = `${output}.${randomBytes(6).toString('hex')}.partial`;
  let fh: FileHandle | null;
  try {
    fh = await open(partial, 'wx', 0o644);
  } catch (err) {
    throw toIoError(err, partial);
  }
  const out = new Out(fh, null, partial);
  let done = false;
  return {
    out,
    async commit(signal) {
      await out.flush();
      try {
        await fh!.sync();
      } catch (err) {
        throw toIoError(err, partial);
      }
      await fh!.close();
      fh = null;
      if (signal?.aborted) throw new AbortedError(signal.reason);
      await renameDurable(partial, output);
      done = true;
    },
    async abort() {
      if (fh) await fh.close().catch(() => undefined);
      fh = null;
      if (!done) await unlink(partial).catch(() => undefined);
    },
  };
}

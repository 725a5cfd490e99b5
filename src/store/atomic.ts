/**
 * Atomic publication of one file (docs/storage.md §4): an O_EXCL candidate in `tmp/` (named in the
 * lease first), written, fsynced, validated, renamed over the final name, then the directory is
 * fsynced. The candidate is unlinked in `finally` whatever happens. Index rows are written by the
 * caller only after this resolves.
 */
import { constants as C, promises as fsp } from 'node:fs';
import { throwIfAborted, toIoError } from '../errors.js';
import { renameDurable } from '../util/fs.js';
import type { Lease } from './lease.js';

export interface AtomicPublishOptions {
  /** Candidate path (from tmpPath(); lives in cache/tmp/ on the cache's filesystem). */
  candidate: string;
  /** Lease item value of the candidate (its name in tmp/); registered before creation. */
  candidateName?: string;
  lease?: Lease;
  finalPath: string;
  /** Writes the content through the open handle (do not close it). */
  write(handle: fsp.FileHandle, path: string): Promise<void>;
  /** Structural check of the written candidate (docs/storage.md §5); throw to refuse it. */
  validate?(path: string): Promise<void>;
  /**
   * When the final file already exists and this resolves true (it is valid), and `force` is not
   * set, the candidate is dropped: losing the race to another publisher counts as success.
   */
  existingIsValid?(path: string): Promise<boolean>;
  force?: boolean;
  signal?: AbortSignal | undefined;
}

/** Returns `published: false` when an existing valid file was kept instead. */
export async function atomicPublish(o: AtomicPublishOptions): Promise<{ published: boolean; path: string }> {
  throwIfAborted(o.signal);
  if (o.lease && o.candidateName) await o.lease.addItem('temp', o.candidateName);
  let created = false;
  try {
    let h: fsp.FileHandle;
    try {
      h = await fsp.open(o.candidate, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644);
    } catch (err) {
      throw toIoError(err, o.candidate);
    }
    created = true;
    try {
      await o.write(h, o.candidate);
      throwIfAborted(o.signal);
      try {
        await h.sync();
      } catch (err) {
        throw toIoError(err, o.candidate);
      }
    } finally {
      await h.close().catch(() => {});
    }
    if (o.validate) await o.validate(o.candidate);
    throwIfAborted(o.signal);
    if (!o.force && o.existingIsValid) {
      let exists = false;
      try {
        await fsp.lstat(o.finalPath);
        exists = true;
      } catch {
        /* absent */
      }
      if (exists && (await o.existingIsValid(o.finalPath))) return { published: false, path: o.finalPath };
    }
    await renameDurable(o.candidate, o.finalPath);
    created = false;
    return { published: true, path: o.finalPath };
  } finally {
    if (created) await fsp.unlink(o.candidate).catch(() => {});
  }
}

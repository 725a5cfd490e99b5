/**
 * Durable file publication, the one home of "write a temporary file, fsync it, rename it over the
 * final name, fsync the directory" (docs/storage.md §4). A rename is only durable once its
 * directory is fsynced; every helper here does both and reports failures as IoError naming the
 * final path.
 */
import {
  closeSync,
  constants as C,
  fsyncSync,
  openSync,
  promises as fsp,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { toIoError } from '../errors.js';

/** fsync a directory (makes a rename in it durable). */
export async function fsyncDir(dir: string): Promise<void> {
  let h: fsp.FileHandle | null = null;
  try {
    h = await fsp.open(dir, C.O_RDONLY | C.O_DIRECTORY);
    await h.sync();
  } catch (err) {
    throw toIoError(err, dir);
  } finally {
    await h?.close().catch(() => {});
  }
}

/** Renames a finished (already fsynced) temporary file over `finalPath`, then fsyncs the directory. */
export async function renameDurable(tempPath: string, finalPath: string): Promise<void> {
  try {
    await fsp.rename(tempPath, finalPath);
  } catch (err) {
    throw toIoError(err, finalPath);
  }
  await fsyncDir(dirname(finalPath));
}

/** Creates `path` exclusively (O_EXCL) with `data`, fsynced. */
export async function writeNewFile(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
  } catch (err) {
    throw toIoError(err, path);
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    throw toIoError(err, path);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Replaces `path` with `data` atomically and durably, synchronously (small settings files): a
 * temporary file beside it (O_EXCL|O_NOFOLLOW, `mode`), fsync, rename, fsync of the directory.
 */
export function writeFileAtomicSync(path: string, data: string | Buffer, mode = 0o600): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
    const dfd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw toIoError(e, path);
  }
}

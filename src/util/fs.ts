/**
 * Durable file publication, the one home of "write a temporary file, fsync it, rename it over the
 * final name, fsync the directory" (docs/storage.md §4). A rename is only durable once its
 * directory is fsynced; every helper here does both and reports failures as IoError naming the
 * final path.
 *
 * Also the one reader of small files we are told to trust (settings, CA certificates, secrets, the
 * docker config, the cache marker): `readSmallFileSync`.
 */
import {
  accessSync,
  chmodSync,
  closeSync,
  constants as C,
  fstatSync,
  mkdirSync,
  fsyncSync,
  openSync,
  promises as fsp,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { IoError, LimitExceededError, toIoError } from '../errors.js';

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

/** What a small file turned out to be, in words (for "is not a regular file (…)"). */
function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

export interface SmallFileOptions {
  /** More bytes than this → LimitExceededError naming `limitName` (a key of FIXED_LIMITS). */
  maxBytes: number;
  limitName: string;
  /** Refuse a symlink as the last component (O_NOFOLLOW → errno ELOOP). */
  noFollow?: boolean;
}

/**
 * Reads a small regular file whole, without ever blocking or growing without bound: the open is
 * `O_RDONLY|O_NONBLOCK` (close-on-exec, as every libuv open; a FIFO opens at once instead of waiting for a writer), `fstat`
 * must show a regular file (a FIFO, device, socket or directory is refused before any read), and at
 * most `maxBytes + 1` bytes are read (a file that grows while read is still caught).
 *
 * Errors: IoError (errno of open/read; `EINVAL` with "is not a regular file (a FIFO)" for the wrong
 * kind of file) and LimitExceededError. Callers re-type them (SettingsError naming their key).
 * Returns the bytes and the mode bits (a secret's permissions are checked by its caller).
 */
export function readSmallFileSync(path: string, o: SmallFileOptions): { data: Buffer; mode: number } {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NONBLOCK | (o.noFollow ? C.O_NOFOLLOW : 0));
  } catch (err) {
    throw toIoError(err, path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new IoError(path, 'EINVAL', `${path} is not a regular file (${fileKind(st)})`);
    if (st.size > o.maxBytes) throw new LimitExceededError(o.limitName, st.size, o.maxBytes, path);
    let buf = Buffer.alloc(Math.min(o.maxBytes, st.size) + 1);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got > o.maxBytes) throw new LimitExceededError(o.limitName, got, o.maxBytes, path);
      if (got === buf.length) {
        // The file grew since fstat: keep reading, never past maxBytes + 1.
        const next = Buffer.alloc(Math.min(o.maxBytes + 1, buf.length * 2));
        buf.copy(next, 0, 0, got);
        buf = next;
      }
    }
    return { data: buf.subarray(0, got), mode: st.mode };
  } catch (err) {
    throw toIoError(err, path);
  } finally {
    closeSync(fd);
  }
}

/**
 * `mkdir -p` whose every created directory gets exactly `mode` (0700 or 0755), whatever the umask:
 * created with `mode`, then chmod-ed (a umask of 000 would leave 0777, one of 077 would hide a cache
 * from the VMM's user). Directories that already exist are left as they are.
 */
export function ensureDirSync(path: string, mode: number): void {
  const missing: string[] = [];
  for (let p = resolve(path); ; ) {
    let st: Stats | undefined;
    try {
      st = statSync(p, { throwIfNoEntry: false });
    } catch (err) {
      throw toIoError(err, p);
    }
    if (st) {
      if (!st.isDirectory()) throw new IoError(p, 'ENOTDIR', `ENOTDIR: ${p}: not a directory`);
      break;
    }
    missing.push(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, mode);
      chmodSync(d, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // created by a concurrent process
      throw toIoError(err, d);
    }
  }
}

/** Why `dir` cannot be written by this process (EROFS, EACCES, ENOENT, …), or null when it can. */
export function writeErrnoSync(dir: string): string | null {
  try {
    accessSync(dir, C.W_OK);
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'EACCES';
  }
}

/**
 * `Image.mount` / `Image.unmount` (docs/storage.md §13): a read-only host mount of an image's merged
 * tree, root only. The fsmeta is the file system and each layer file one of its extra devices, in
 * manifest order — the same layout a guest sees through the VMDK, without concatenating files:
 *
 *   losetup --find --show --read-only <layer k>     one loop device per position
 *   mount -t erofs -o ro,device=/dev/loopA,… <fsmeta> DIR   (mount loops the fsmeta itself)
 *   losetup -d <each layer loop>                     busy, so only marked to go at umount
 *
 * Loop devices, not the layer paths: util-linux always loops a regular-file source, and then EROFS
 * refuses `device=<regular file>`; a loop path also never holds the commas a cache path may. After
 * the mount every loop device is auto-clearing, so `umount DIR` alone releases everything; a mount
 * that fails detaches the loops at once. `unmount` refuses a directory that is not an EROFS mount
 * whose source is an fsmeta file. The mounted files stay open: prune or a repair may replace or
 * unlink them meanwhile; the mount keeps reading what it opened, and the space returns at umount.
 */
import { execFile } from 'node:child_process';
import { readFileSync, realpathSync, lstatSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { promisify } from 'node:util';
import { ImageNotFoundError, InvalidArgumentError, IoError, UnsupportedError } from '../errors.js';
import { findManifest, findRef, manifestLayers } from '../catalog/queries.js';
import { parseImageSelector } from '../reference/reference.js';
import { createLease } from '../store/lease.js';
import type { StoreOpener } from '../store/store.js';
import { digestFromPathForm } from '../util/digest.js';
import { validateImageFiles } from './export.js';

const run = promisify(execFile);
const TIMEOUT_MS = 60_000;

/** Where `Image.mount` mounted an image and the loop devices it holds (docs/storage.md §13). */
export interface MountResult {
  mountpoint: string;
  manifestDigest: string;
  fsmetaPath: string;
  /** The loop devices of the layers, in manifest order (they go away at umount). */
  devices: string[];
}

/** Root, and a kernel that knows EROFS (loading the module once if needed); else UnsupportedError. */
async function requireMountable(operation: string): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new UnsupportedError(
      operation,
      'local',
      `${operation} needs root (uid 0); exporting the tree (export) needs no privilege`,
    );
  const has = () => /\terofs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  if (has()) return;
  await run('modprobe', ['erofs'], { timeout: TIMEOUT_MS }).catch(() => undefined);
  if (!has())
    throw new UnsupportedError(operation, 'local', `${operation}: this kernel has no EROFS (modprobe erofs failed)`);
}

function directory(dir: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (err) {
    throw new InvalidArgumentError('dir', `${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!lstatSync(real).isDirectory()) throw new InvalidArgumentError('dir', `${dir} is not a directory`);
  return real;
}

async function tool(cmd: string, args: string[], what: string, path: string): Promise<string> {
  try {
    return (await run(cmd, args, { timeout: TIMEOUT_MS, encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new IoError(path, 'EMOUNT', `${what} failed: ${(e.stderr || e.message).trim()}`, err);
  }
}

/** Mounts `reference`'s merged tree read-only on `dir` (an existing directory). */
export async function mountImage(backend: StoreOpener, reference: string, dir: string): Promise<MountResult> {
  const sel = parseImageSelector(reference);
  const shown = sel.kind === 'digest' ? sel.digest : sel.familiar;
  await requireMountable('mounting an image');
  const mountpoint = directory(dir);
  return backend._run(async () => {
    if (!(await backend._open('read'))) throw new ImageNotFoundError(shown);
    const store = await backend._open('write');
    const { index } = store;
    const found = await index.read(() => {
      const digest = sel.kind === 'digest' ? sel.digest : (findRef(index, sel.canonical)?.digest ?? '');
      const m = findManifest(index, digest);
      return m
        ? { digest: m.digest, fsmetaBytes: m.fsmeta_bytes, diffIds: manifestLayers(index, m.id).map((l) => l.diff_id) }
        : null;
    });
    if (!found) throw new ImageNotFoundError(shown);
    const lease = await createLease(store, 'save');
    const devices: string[] = [];
    try {
      await lease.addItems([
        { kind: 'manifest', value: found.digest },
        ...[...new Set(found.diffIds)].map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
      await validateImageFiles(store, found.digest, found.diffIds, found.fsmetaBytes, undefined);
      for (const d of found.diffIds) {
        const path = store.paths.layer(d);
        devices.push((await tool('losetup', ['--find', '--show', '--read-only', path], 'losetup', path)).trim());
      }
      const fsmetaPath = store.paths.fsmeta(found.digest);
      const opts = ['ro', ...devices.map((l) => `device=${l}`)].join(',');
      await tool('mount', ['-t', 'erofs', '-o', opts, fsmetaPath, mountpoint], 'mount', mountpoint);
      return { mountpoint, manifestDigest: found.digest, fsmetaPath, devices };
    } finally {
      // Mounted: each loop is only marked to detach at umount. Not mounted: detached now.
      for (const l of devices) await run('losetup', ['-d', l], { timeout: TIMEOUT_MS }).catch(() => undefined);
      await lease.release();
    }
  });
}

/** mountinfo's octal escapes (`\040` for a space). */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Unmounts `dir` if it is an image `mountImage` mounted; InvalidArgumentError otherwise. */
export async function unmountImage(dir: string): Promise<void> {
  await requireMountable('unmounting an image');
  const mountpoint = directory(dir);
  const entry = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 9 && unescapeMountinfo(f[4]!) === mountpoint)
    .pop();
  const sep = entry?.indexOf('-') ?? -1;
  const fstype = entry?.[sep + 1];
  const source = entry?.[sep + 2] ?? '';
  const loop = /^\/dev\/(loop\d+)$/.exec(source)?.[1];
  let backing = '';
  if (fstype === 'erofs' && loop) {
    try {
      backing = readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8')
        .trim()
        .replace(/ \(deleted\)$/, '');
    } catch {
      /* not a loop with a file */
    }
  }
  if (basename(dirname(backing)) !== 'fsmeta' || !digestFromPathForm(basename(backing), '.erofs'))
    throw new InvalidArgumentError('dir', `${dir} is not an image mount made by mount`);
  await tool('umount', [mountpoint], 'umount', mountpoint);
}

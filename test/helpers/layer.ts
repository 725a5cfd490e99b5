/**
 * Test helpers around the layer converter: convert an in-memory tar, mount the result with the
 * kernel, run fsck.erofs 1.9.4, and assert typed errors with no stray files.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MsbError } from '../../src/errors.js';
import { writeLayer, type WriteLayerOptions, type WriteLayerResult } from '../../src/erofs/layer-writer.js';
import { erofsUtils, mountErofs, runStatus } from './env.js';

/** Yields a buffer in pieces of `chunk` bytes (exercises header/body splits across chunks). */
export async function* chunks(buf: Buffer, chunk = 1 << 20): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
}

export async function convertBuffer(
  tarBuf: Buffer,
  out: string,
  opts: WriteLayerOptions & { chunk?: number } = {},
): Promise<WriteLayerResult> {
  return writeLayer(chunks(tarBuf, opts.chunk), out, opts);
}

export function fsckOk(img: string, extra: string[] = []): void {
  const r = runStatus(erofsUtils('fsck.erofs'), [...extra, img]);
  assert.equal(r.status, 0, `fsck.erofs ${img}: ${r.stdout}${r.stderr}`);
}

/** Mounts `img`, runs `fn(dir)`, always unmounts. */
export async function withMount<T>(img: string, fn: (dir: string) => T | Promise<T>): Promise<T> {
  const m = mountErofs(img);
  try {
    return await fn(m.dir);
  } finally {
    m.umount();
  }
}

/** Asserts a typed rejection with `code` (and reason/message match) and that `dir` holds no file named like `out`. */
export async function rejectsTyped(
  p: Promise<unknown>,
  code: string,
  match?: RegExp,
  noFileIn?: { dir: string; prefix: string },
): Promise<MsbError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(
    caught instanceof MsbError,
    `expected an MsbError ${code}, got ${caught === undefined ? 'success' : String(caught)}`,
  );
  assert.equal(caught.code, code, `expected ${code}, got ${String(caught)}`);
  if (match) assert.match(caught.message, match);
  if (noFileIn)
    assert.deepEqual(
      readdirSync(noFileIn.dir).filter((n) => n.startsWith(noFileIn.prefix)),
      [],
    );
  return caught;
}

export function p(dir: string, ...rest: string[]): string {
  return join(dir, ...rest);
}

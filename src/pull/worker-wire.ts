/**
 * The messages between the conversion pool (worker-pool.ts) and its workers (convert-worker.ts),
 * and what structured cloning loses on the way: the class of an error (an `MsbError` arrives as a
 * plain object) and the `Buffer` prototype of the tree's byte fields (they arrive as
 * `Uint8Array`). Both are restored here, on the receiving side.
 */
import * as errors from '../errors.js';
import { isDir, type DirNode, type Entry } from '../erofs/tree.js';
import type { Limits } from '../limits.js';
import type { Compression } from '../oci/media-types.js';
import type { WriteLayerResult } from '../erofs/layer-writer.js';
import type { PhaseLine } from '../util/profile.js';

/** pool → worker */
export type ToWorker =
  | {
      t: 'start';
      id: number;
      layerIndex: number;
      blob: { digest: string; mediaType: string };
      diffId: string;
      candidatePath: string;
      limits?: Partial<Limits> | undefined;
    }
  /** Compressed bytes; the ArrayBuffer is transferred. */
  | { t: 'data'; id: number; buf: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'abort'; id: number; reason: WireError };

/** The result of a conversion, tree included (cloned). */
export interface WireLayer extends Omit<WriteLayerResult, 'root' | 'contentDigest'> {
  root?: unknown;
  /** `msb-chunked-sha256` of the layer file, computed in the worker while writing. */
  contentDigest?: string | null | undefined;
}

/** worker → pool */
export type FromWorker =
  /** A chunk of `bytes` was consumed: the pool may send as many more, and reuse `buf` (transferred back). */
  | { t: 'ack'; id: number; bytes: number; buf?: ArrayBuffer }
  | { t: 'progress'; id: number; tarBytes: number; entries: number }
  | { t: 'warning'; id: number; code: string; message: string }
  | ({ t: 'done'; id: number; kind: Compression | null; phases?: PhaseLine[] | undefined } & (
      | { ok: true; value: WireLayer }
      | { ok: false; error: WireError }
    ));

export interface WireError {
  name: string;
  message: string;
  stack?: string | undefined;
  /** MsbError fields (absent for other errors). */
  code?: string | undefined;
  details?: Record<string, unknown> | undefined;
  cause?: WireError | undefined;
}

/** An error as a cloneable object (causes followed a few levels). */
export function toWire(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const w: WireError = { name: err.name, message: err.message, stack: err.stack };
  if (err instanceof errors.MsbError) {
    w.code = err.code;
    w.details = err.details;
  } else if (typeof (err as NodeJS.ErrnoException).code === 'string') {
    w.code = (err as NodeJS.ErrnoException).code;
  }
  if (err.cause !== undefined && depth < 4) w.cause = toWire(err.cause, depth + 1);
  return w;
}

type AnyClass = abstract new (...args: never[]) => errors.MsbError;

/** The MsbError subclass named `name`, if errors.ts has one. */
function msbClass(name: string): AnyClass | null {
  const c = (errors as unknown as Record<string, unknown>)[name];
  return typeof c === 'function' && (c === errors.MsbError || c.prototype instanceof errors.MsbError)
    ? (c as AnyClass)
    : null;
}

/**
 * The error again, of its own class when it was an `MsbError` (typed fields restored from its
 * details, as every subclass stores them), else a plain Error with the same name and message.
 */
export function fromWire(w: WireError): Error {
  const cls = w.code !== undefined && w.details !== undefined ? msbClass(w.name) : null;
  let e: Error;
  if (cls) {
    e = Object.create(cls.prototype) as errors.MsbError;
    Object.assign(e, w.details, { code: w.code, details: w.details });
    Object.defineProperty(e, 'name', { value: w.name, writable: true, configurable: true, enumerable: false });
  } else {
    e = new Error(w.message);
    e.name = w.name;
    if (w.code !== undefined) (e as NodeJS.ErrnoException).code = w.code;
  }
  Object.defineProperty(e, 'message', { value: w.message, writable: true, configurable: true, enumerable: false });
  if (w.stack !== undefined) e.stack = w.stack;
  if (w.cause !== undefined) {
    Object.defineProperty(e, 'cause', {
      value: fromWire(w.cause),
      writable: true,
      configurable: true,
      enumerable: false,
    });
  }
  return e;
}

const asBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Gives the byte fields of a cloned tree (xattr names and values, symlink targets) back their `Buffer` type. */
export function reviveTree(root: DirNode): DirNode {
  const seen = new Set<Entry>();
  const stack: Entry[] = [root];
  while (stack.length) {
    const e = stack.pop()!;
    if (seen.has(e)) continue; // hardlink aliases share one Inode
    seen.add(e);
    for (const x of e.meta.xattrs) {
      x.suffix = asBuffer(x.suffix);
      x.value = asBuffer(x.value);
    }
    if (isDir(e)) for (const c of e.children.values()) stack.push(c);
    else if (e.target !== undefined) e.target = asBuffer(e.target);
  }
  return root;
}

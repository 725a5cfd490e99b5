/**
 * STUB (written by the index engineer so that Image.pull / Sandbox.create compile and delegate
 * here): the pull engineer replaces both bodies with the pipeline of pull.md §8. Signatures are the
 * contract the API layer calls.
 */
import { MsbError } from '../errors.js';
import type { LocalBackend } from '../api/backend.js';
import type { PullOperation, PullOptions, PullResult } from '../api/types.js';
import { makeOperation } from './events.js';

/**
 * Pulls `reference` into `backend`'s cache and publishes it (publishImage). `lease`, when given,
 * is the caller's lease (Sandbox.create) to use instead of creating one.
 */
export async function pullImage(backend: LocalBackend, reference: string, options: PullOptions & { lease?: unknown }): Promise<PullResult> {
  void backend; void reference; void options;
  throw new MsbError('UNSUPPORTED', 'pull is not implemented yet');
}

/** The PullOperation form (events as an async iterator, `result`, `abort`). */
export function startPull(backend: LocalBackend, reference: string, options: PullOptions): PullOperation {
  return makeOperation(options.signal, (signal) => pullImage(backend, reference, { ...options, signal }));
}

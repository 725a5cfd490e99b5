/**
 * Backend resolution for commands (docs/cli.md intro): `--home DIR` forces a local backend on that
 * home; otherwise the ambient rules of docs/api.md §8 applied to the command's environment. A cloud
 * backend makes image, sandbox and snapshot commands exit 6 (UNSUPPORTED) with the documented line.
 */
import { UnsupportedError } from '../errors.js';
import { backendFromEnv, LocalBackend } from '../api/backend.js';
import type { CliContext } from './context.js';

export function localBackendFor(ctx: CliContext, command: string): LocalBackend {
  const b = backendFromEnv(ctx.env, ctx.home);
  if (b instanceof LocalBackend) return b;
  const err = new UnsupportedError(command, 'cloud');
  err.message = 'this command needs a local backend; the active backend is cloud (MSB_BACKEND=cloud)';
  throw err;
}

/** Runs `fn` with the command's local backend and always closes it. */
export async function withLocalBackend<T>(
  ctx: CliContext,
  command: string,
  fn: (b: LocalBackend) => Promise<T>,
): Promise<T> {
  const b = localBackendFor(ctx, command);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

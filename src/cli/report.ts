/**
 * Errors as the CLI prints them (docs/cli.md §2–§3): one line `msb: <code>: <message>`, a
 * `hint:` line when there is one, the cause chain under `--debug`, and the exit status of the
 * error's code. Text from errors is passed through `termSafe` (error messages quote tar entry
 * names, tags and registry text). Where an API message advises an API option (`details.option`,
 * src/errors.ts), the CLI replaces that advice with its own flag.
 */
import { MsbError, toMsbError, type ErrorCode } from '../errors.js';
import { UsageError, type CliContext } from './context.js';
import { termSafe } from './escape.js';

/** docs/cli.md §3: error code → exit status (anything else: 1). */
export const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 2,
  INVALID_REFERENCE: 2,
  IMAGE_NOT_FOUND: 3,
  NOT_CACHED: 3,
  PIN_NOT_FOUND: 3,
  PLATFORM_NOT_FOUND: 3,
  IMAGE_IN_USE: 4,
  REGISTRY_AUTH: 5,
  UNSUPPORTED: 6,
};

/** The CLI's advice for an API option named by an error, by code. */
const FLAG_ADVICE: Record<string, Partial<Record<ErrorCode, string>>> = {
  force: {
    IMAGE_IN_USE:
      'use -f to untag anyway (the image stays cached until its pins are removed with msb sandbox rm / msb snapshot rm)',
    IMAGE_REFERENCED: 'use -f to untag them all, or remove one reference at a time (msb rmi NAME:TAG)',
  },
  repair: { CACHE_CORRUPT: 'run msb image verify --repair' },
  tag: {
    ARCHIVE_INVALID: 'pass --tag to name it',
    INVALID_ARGUMENT: '--tag needs a single-image archive',
  },
};

export function exitCodeFor(err: unknown, signal?: AbortSignal): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof MsbError) {
    if (err.code === 'ABORTED') return signal?.reason === 'SIGTERM' ? 143 : 130;
    return EXIT_BY_CODE[err.code] ?? 1;
  }
  return 1;
}

/** The message and hint the CLI prints for an MsbError. */
export function cliWording(err: MsbError): { message: string; hint: string | null } {
  const d = err.details as { hint?: unknown; option?: unknown };
  let message = err.message;
  let hint = typeof d.hint === 'string' ? d.hint : null;
  const advice = typeof d.option === 'string' ? FLAG_ADVICE[d.option]?.[err.code] : undefined;
  if (advice !== undefined) {
    const cut = message.lastIndexOf('; ');
    if (cut > 0) message = message.slice(0, cut);
    hint = advice;
  }
  return { message, hint };
}

/** Prints one error (plus a hint, plus details under --debug) and returns the exit status. */
export function reportError(raw: unknown, ctx: CliContext): number {
  // The CLI's one wrapping point: anything not an MsbError (or usage error) is typed first.
  const err = raw instanceof UsageError ? raw : toMsbError(raw);
  const status = exitCodeFor(err, ctx.signal);
  if (err instanceof UsageError) {
    ctx.stderr.write(`msb: ${termSafe(err.message)}\n`);
    if (err.usage) ctx.stderr.write(err.usage.endsWith('\n') ? err.usage : err.usage + '\n');
  } else if (err instanceof MsbError) {
    const { message, hint } = cliWording(err);
    ctx.stderr.write(`msb: ${err.code}: ${termSafe(message)}\n`);
    if (hint !== null) ctx.stderr.write(`hint: ${termSafe(hint)}\n`);
  } else {
    ctx.stderr.write(`msb: ${termSafe((err as Error)?.message ?? String(err))}\n`);
  }
  if (ctx.debug && err instanceof Error) {
    let e: unknown = err;
    while (e instanceof Error) {
      ctx.stderr.write(`${(e.stack ?? e.message).split('\n').map(termSafe).join('\n')}\n`);
      e = e.cause;
      if (e !== undefined) ctx.stderr.write('caused by: ');
    }
  }
  return status;
}

/**
 * Runs `fn` for every argument of a multi-argument command (rmi, inspect, sandbox rm, snapshot rm):
 * a failed argument is reported and the others still run; the first failure's exit status is
 * returned (0 when all succeeded). A signal or internal error (≥ 128) stops at once.
 */
export async function forEachArgument(
  ctx: CliContext,
  args: readonly string[],
  fn: (arg: string) => Promise<void>,
): Promise<number> {
  let status = 0;
  for (const a of args) {
    try {
      await fn(a);
    } catch (err) {
      if (exitCodeFor(err, ctx.signal) >= 128) throw err;
      const s = reportError(err, ctx);
      if (status === 0) status = s;
    }
  }
  return status;
}

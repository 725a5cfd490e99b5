/**
 * `msb` entry point (docs/cli.md §1–§3): global flags, help, dispatch through the command table
 * (src/cli/command-table.ts), error printing and exit codes, signals and closed pipes.
 */
import { MsbError, toMsbError } from '../errors.js';
import { helpText, parseCommandArgs } from './command.js';
import { COMMAND_MODULES, GROUPS, loadSpec } from './command-table.js';
import { UsageError, type CliContext } from './context.js';
import { globalHelp, groupHelp } from './help.js';
import { termSafe } from './escape.js';
import { reportError } from './report.js';
import { packageVersion } from './version-info.js';
import { markEntry, markTeardown, timed } from '../util/profile.js';

export { EXIT_BY_CODE, exitCodeFor, forEachArgument, reportError } from './report.js';

/** A write error that means "the reader went away" (`msb images | head -1`). */
function isClosedPipe(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED') return true;
  }
  return false;
}

interface Output {
  /** The reader of stdout or stderr went away. */
  closed: boolean;
  /** Another write error (EIO, ENOSPC on a redirected file). */
  error: Error | null;
}

/**
 * A closed stdout or stderr ends the command quietly, exit 0, like `git log | head` (docs/cli.md
 * §2): the running operation is aborted and nothing more is printed. Any other write error aborts
 * too and is reported once, on stderr if it still works.
 */
function watchOutput(ctx: CliContext, ac: AbortController): Output {
  const o: Output = { closed: false, error: null };
  for (const s of [ctx.stdout, ctx.stderr]) {
    s.on('error', (err: Error) => {
      if (isClosedPipe(err)) o.closed = true;
      else o.error ??= err;
      if (!ac.signal.aborted) ac.abort(o.closed ? 'EPIPE' : 'output error');
    });
  }
  return o;
}

/** Leading global flags; returns the rest, or a number to exit with. */
async function globalFlags(args: string[], ctx: CliContext): Promise<string[] | number> {
  while (args.length && args[0]!.startsWith('-')) {
    const a = args.shift()!;
    if (a === '--home') {
      const v = args.shift();
      if (!v) throw new UsageError('--home needs a directory', await globalHelp());
      ctx.home = v;
    } else if (a.startsWith('--home=')) ctx.home = a.slice(7);
    else if (a === '--debug') ctx.debug = true;
    else if (a === '--no-color') ctx.color = false;
    else if (a === '--help' || a === '-h') {
      ctx.stdout.write(await globalHelp());
      return 0;
    } else if (a === '--version' || a === '-v') {
      ctx.stdout.write(`msb ${packageVersion()}\n`);
      return 0;
    } else throw new UsageError(`unknown flag ${a}`, await globalHelp());
  }
  return args;
}

/** `msb help [WORDS…]`: the help of a command or group, or the global help. */
async function help(words: string[], ctx: CliContext): Promise<number> {
  const w = words.join(' ');
  if (w === '') ctx.stdout.write(await globalHelp());
  else if (GROUPS[w] !== undefined) ctx.stdout.write(await groupHelp(w));
  else if (COMMAND_MODULES[w] !== undefined) ctx.stdout.write(helpText(await loadSpec(w)));
  else throw new UsageError(`unknown command ${JSON.stringify(w)}`, await globalHelp());
  return 0;
}

/** `--help`/`-h` among the command's arguments (before a `--`). */
function asksHelp(rest: readonly string[]): boolean {
  const end = rest.indexOf('--');
  return (end < 0 ? rest : rest.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** The hidden `msb __complete WORD... CURRENT` the completion scripts run (src/cli/completion.ts). */
async function completeWords(words: string[], ctx: CliContext): Promise<number> {
  const { complete } = await import('./completion.js');
  const r = await complete(words.slice(0, -1), words[words.length - 1] ?? '', ctx.env);
  ctx.stdout.write([...r.items, ...(r.files ? [':files'] : [])].map((x) => `${x}\n`).join(''));
  return 0;
}

async function dispatch(argv: string[], ctx: CliContext): Promise<number> {
  if (argv[0] === '__complete') return completeWords(argv.slice(1), ctx);
  const parsed = await globalFlags([...argv], ctx);
  if (typeof parsed === 'number') return parsed;
  const args = parsed;
  if (args.length === 0) {
    ctx.stderr.write(await globalHelp());
    return 2;
  }
  if (args[0] === 'help') return help(args.slice(1), ctx);
  const group = GROUPS[args[0]!] !== undefined ? args[0]! : null;
  if (group !== null && (args.length === 1 || args[1] === '--help' || args[1] === '-h')) {
    ctx.stdout.write(await groupHelp(group));
    return 0;
  }
  const two = args.length >= 2 ? `${args[0]} ${args[1]}` : '';
  const words = COMMAND_MODULES[two] !== undefined ? two : COMMAND_MODULES[args[0]!] !== undefined ? args[0]! : null;
  if (words === null) {
    const shown = group !== null ? two : args[0]!;
    throw new UsageError(
      `unknown command ${JSON.stringify(shown)}`,
      group !== null ? await groupHelp(group) : await globalHelp(),
    );
  }
  const spec = await timed('module-load', () => loadSpec(words));
  const rest = args.slice(words.split(' ').length);
  if (asksHelp(rest)) {
    ctx.stdout.write(helpText(spec));
    return 0;
  }
  const status = await spec.run(parseCommandArgs(spec, rest), ctx);
  markTeardown();
  return status;
}

/** Runs `msb argv`; resolves to the exit status. `io` replaces the process streams (tests). */
export async function main(argv: string[], io: Partial<CliContext> = {}): Promise<number> {
  markEntry();
  const ac = new AbortController();
  const ctx: CliContext = {
    debug: false,
    color: !process.env.NO_COLOR,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    signal: ac.signal,
    env: io.env ?? process.env,
  };
  if (ctx.env.NO_COLOR) ctx.color = false;
  const out = watchOutput(ctx, ac);
  let interrupted = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted++;
    if (interrupted > 1 && sig === 'SIGINT') process.exit(130);
    ac.abort(sig);
  };
  const installSignals = io.signal === undefined;
  if (installSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  // A caller's signal (tests, embedders) aborts like SIGINT/SIGTERM would.
  if (io.signal?.aborted) ac.abort(io.signal.reason);
  else io.signal?.addEventListener('abort', () => ac.abort(io.signal!.reason), { once: true });
  try {
    const status = await dispatch(argv, ctx);
    return out.closed ? 0 : status;
  } catch (err) {
    if (out.closed || isClosedPipe(err)) return 0;
    if (err instanceof MsbError && err.code === 'ABORTED' && out.error !== null)
      return reportError(new MsbError('IO', `cannot write the output: ${out.error.message}`), ctx);
    return reportError(err, ctx);
  } finally {
    if (installSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

/**
 * For the `msb` process only (bin/msb.js): an exception nothing caught, or a rejection nothing
 * handled, is a bug; it is printed as one `msb: INTERNAL: …` line (the stack only with MSB_DEBUG=1),
 * never as Node's stack dump, and the process exits with status 1.
 */
export function installCrashGuard(stderr: NodeJS.WritableStream = process.stderr): void {
  const die = (err: unknown) => {
    const e = toMsbError(err);
    stderr.write(`msb: ${e.code}: ${termSafe(e.message)}\n`); // the message may quote an image's bytes
    if (process.env.MSB_DEBUG === '1' && err instanceof Error)
      stderr.write(`${(err.stack ?? '').split('\n').map(termSafe).join('\n')}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
}

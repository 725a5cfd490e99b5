/**
 * `msb` entry point: global flags, command dispatch, error printing and exit codes (docs/cli.md §1–§3).
 * Each command lives in its own module under ./commands and is imported lazily, so `msb layer
 * convert` never loads SQLite and `msb --help` loads nothing.
 */
import { readFileSync } from 'node:fs';
import { MsbError, toMsbError, type ErrorCode } from '../errors.js';
import { UsageError, type CliContext } from './context.js';

interface CommandModule {
  run(args: string[], ctx: CliContext): Promise<number>;
  usage: string;
}

/** command words → module file (without extension). Aliases map to the same module. */
const COMMANDS: Record<string, { module: string; summary: string }> = {
  pull: { module: 'pull', summary: 'Pull an image from a registry' },
  images: { module: 'images', summary: 'List cached images' },
  'image ls': { module: 'images', summary: 'List cached images (alias of images)' },
  'image pull': { module: 'pull', summary: 'Pull an image (alias of pull)' },
  'image inspect': { module: 'inspect', summary: 'Show details of one or more images' },
  rmi: { module: 'rmi', summary: 'Remove one or more images' },
  'image rm': { module: 'rmi', summary: 'Remove one or more images (alias of rmi)' },
  'image prune': { module: 'prune', summary: 'Remove images not used by a sandbox or snapshot' },
  'image df': { module: 'df', summary: 'Show cache disk usage' },
  'image digest': { module: 'digest', summary: 'Print the digest a reference resolves to in its registry' },
  'manifest inspect': { module: 'manifest', summary: 'Show the index or manifest of a remote image' },
  'ls-tags': { module: 'ls-tags', summary: 'List the tags of a remote repository' },
  tag: { module: 'tag', summary: 'Create a tag TARGET that refers to SOURCE' },
  'image tag': { module: 'tag', summary: 'Create a tag (alias of tag)' },
  load: { module: 'load', summary: 'Load images from a docker-save or OCI archive' },
  'image load': { module: 'load', summary: 'Load images (alias of load)' },
  save: { module: 'save', summary: 'Save images to an archive' },
  'image save': { module: 'save', summary: 'Save images (alias of save)' },
  'sandbox ls': { module: 'sandbox', summary: 'List sandboxes (image pins)' },
  'sandbox rm': { module: 'sandbox', summary: 'Remove sandbox pins' },
  'snapshot ls': { module: 'snapshot', summary: 'List snapshots (image pins)' },
  'snapshot rm': { module: 'snapshot', summary: 'Remove snapshot pins' },
  'registry login': { module: 'registry', summary: 'Store credentials for a registry' },
  'registry logout': { module: 'registry', summary: 'Remove stored credentials for a registry' },
  'registry ls': { module: 'registry', summary: 'List configured registries' },
  'layer convert': { module: 'layer', summary: 'Convert a layer tar into a layer EROFS image' },
  'layer stitch': { module: 'layer', summary: 'Stitch layer EROFS images into fsmeta + VMDK' },
};

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

export function exitCodeFor(err: unknown, signal?: AbortSignal): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof MsbError) {
    if (err.code === 'ABORTED') return abortExitCode(signal);
    return EXIT_BY_CODE[err.code] ?? 1;
  }
  return 1;
}

function abortExitCode(signal?: AbortSignal): number {
  return signal?.reason === 'SIGTERM' ? 143 : 130;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

function globalUsage(): string {
  const lines = ['Usage: msb [--home DIR] [--debug] [--no-color] <command> [args]', '', 'Commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  for (const [k, v] of Object.entries(COMMANDS)) lines.push(`  ${k.padEnd(width)}  ${v.summary}`);
  lines.push('', 'Run `msb <command> --help` for the flags of a command.');
  return lines.join('\n') + '\n';
}

/**
 * Prints one error line `msb: CODE: message` (plus a hint, plus the stack only under --debug) and
 * returns the exit status. The CLI's one wrapping point: anything that is not an MsbError (or a
 * usage error) is typed by `toMsbError` first (an fs error → IO, anything else → INTERNAL).
 */
export function reportError(raw: unknown, ctx: CliContext): number {
  const err = raw instanceof UsageError ? raw : toMsbError(raw);
  const status = exitCodeFor(err, ctx.signal);
  if (err instanceof UsageError) {
    ctx.stderr.write(`msb: ${err.message}\n`);
    if (err.usage) ctx.stderr.write(err.usage.endsWith('\n') ? err.usage : err.usage + '\n');
  } else {
    ctx.stderr.write(`msb: ${err.code}: ${err.message}\n`);
    const hint = (err.details as { hint?: unknown }).hint;
    if (typeof hint === 'string') ctx.stderr.write(`hint: ${hint}\n`);
  }
  if (ctx.debug && err instanceof Error) {
    let e: unknown = err;
    while (e instanceof Error) {
      ctx.stderr.write(`${e.stack ?? e.message}\n`);
      e = e.cause;
      if (e !== undefined) ctx.stderr.write('caused by: ');
    }
  }
  return status;
}

/**
 * Runs `fn` for every argument of a multi-argument command (rmi, sandbox rm, snapshot rm): a
 * failed argument is reported and the others still run; the first failure's exit status is
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

export async function main(argv: string[], io: Partial<CliContext> = {}): Promise<number> {
  const ac = new AbortController();
  const ctx: CliContext = {
    debug: false,
    color: !process.env.NO_COLOR,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stdin: io.stdin ?? process.stdin,
    signal: io.signal ?? ac.signal,
    env: io.env ?? process.env,
  };
  if (ctx.env.NO_COLOR) ctx.color = false;
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
  try {
    const args = [...argv];
    while (args.length && args[0]!.startsWith('-')) {
      const a = args.shift()!;
      if (a === '--home') {
        const v = args.shift();
        if (!v) throw new UsageError('--home needs a directory', globalUsage());
        ctx.home = v;
      } else if (a.startsWith('--home=')) ctx.home = a.slice(7);
      else if (a === '--debug') ctx.debug = true;
      else if (a === '--no-color') ctx.color = false;
      else if (a === '--help' || a === '-h') {
        ctx.stdout.write(globalUsage());
        return 0;
      } else if (a === '--version' || a === '-v') {
        ctx.stdout.write(`msb ${version()}\n`);
        return 0;
      } else throw new UsageError(`unknown flag ${a}`, globalUsage());
    }
    if (args.length === 0) {
      ctx.stderr.write(globalUsage());
      return 2;
    }
    const two = args.length >= 2 ? `${args[0]} ${args[1]}` : '';
    let cmd = COMMANDS[two];
    let rest: string[];
    if (cmd) rest = args.slice(2);
    else {
      cmd = COMMANDS[args[0]!];
      rest = args.slice(1);
      if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(args.slice(0, 2).join(' '))}`, globalUsage());
    }
    // Sub-command modules (sandbox, snapshot, registry, layer) receive their verb as the first argument.
    if (['sandbox', 'snapshot', 'registry', 'layer'].includes(cmd.module)) rest = [args[1]!, ...rest];
    const mod = (await import(`./commands/${cmd.module}.js`)) as CommandModule;
    if (rest.includes('--help') || rest.includes('-h')) {
      ctx.stdout.write(mod.usage.endsWith('\n') ? mod.usage : mod.usage + '\n');
      return 0;
    }
    return await mod.run(rest, ctx);
  } catch (err) {
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
    stderr.write(`msb: ${e.code}: ${e.message}\n`);
    if (process.env.MSB_DEBUG === '1' && err instanceof Error) stderr.write(`${err.stack ?? ''}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
}

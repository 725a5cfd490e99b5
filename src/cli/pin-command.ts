/**
 * `msb sandbox` and `msb snapshot` (docs/cli.md §5) are the same command over two kinds of pin: `ls`
 * (a table or JSON) and `rm ARG…` (every argument processed, the first failure's exit status).
 * Only the columns, the API calls and the wording differ.
 */
import type { LocalBackend } from '../api/backend.js';
import { withLocalBackend } from './backend.js';
import { UsageError, type CliContext } from './context.js';
import { formatOption, parseFlags, table, writeJson } from './format.js';
import { forEachArgument } from './main.js';

export interface PinCommand<T> {
  noun: 'sandbox' | 'snapshot';
  usage: string;
  list(b: LocalBackend): Promise<T[]>;
  columns: string[];
  row(item: T, now: number): string[];
  /** What `rm` takes, for its usage error: "NAME", "NAME or DIGEST". */
  rmArgs: string;
  remove(b: LocalBackend, arg: string): Promise<unknown>;
}

export async function runPinCommand<T>(cmd: PinCommand<T>, args: string[], ctx: CliContext): Promise<number> {
  const { noun, usage } = cmd;
  const [verb, ...rest] = args;
  if (verb === 'ls') {
    const { values, positionals } = parseFlags(rest, { format: { kind: 'value', names: ['--format'] } }, usage);
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
    const format = formatOption(values.format, usage);
    const list = await withLocalBackend(ctx, `msb ${noun} ls`, (b) => cmd.list(b));
    if (format === 'json') {
      writeJson(ctx, list);
      return 0;
    }
    const now = Date.now();
    ctx.stdout.write(
      table(
        cmd.columns,
        list.map((x) => cmd.row(x, now)),
      ),
    );
    return 0;
  }
  if (verb === 'rm') {
    const { positionals } = parseFlags(rest, {}, usage);
    if (positionals.length === 0) throw new UsageError(`msb ${noun} rm needs at least one ${cmd.rmArgs}`, usage);
    return withLocalBackend(ctx, `msb ${noun} rm`, (b) =>
      forEachArgument(ctx, positionals, async (arg) => {
        await cmd.remove(b, arg);
        ctx.stdout.write(`${arg}\n`);
      }),
    );
  }
  throw new UsageError(`unknown command "${noun} ${verb ?? ''}"`, usage);
}

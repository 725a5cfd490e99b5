/**
 * `msb sandbox` and `msb snapshot` (docs/cli.md §5) are the same commands over two kinds of pin: `ls`
 * (a table or JSON) and `rm ARG…` (every argument processed, the first failure's exit status).
 * Only the columns, the API calls and the wording differ.
 */
import type { LocalBackend } from '../api/backend.js';
import { withLocalBackend } from './backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec } from './command.js';
import { UsageError } from './context.js';
import { termSafe } from './escape.js';
import { table, writeJson } from './format.js';
import { forEachArgument } from './report.js';

export interface PinCommand<T> {
  noun: 'sandbox' | 'snapshot';
  list(b: LocalBackend): Promise<T[]>;
  /** What JSON holds: "SandboxHandle". */
  jsonType: string;
  columns: string[];
  row(item: T, now: number): string[];
  /** What `rm` takes, for its synopsis and usage error: "NAME", "NAME|DIGEST". */
  rmArgs: string;
  rmHelp: string;
  remove(b: LocalBackend, arg: string): Promise<unknown>;
}

/** The `ls` and `rm` specs of one kind of pin. */
export function pinCommands<T>(cmd: PinCommand<T>): CommandSpec[] {
  const { noun } = cmd;
  return [
    {
      name: `${noun} ls`,
      summary: `List ${noun === 'sandbox' ? 'sandboxes' : 'snapshots'} (image pins)`,
      synopsis: `${noun} ls [--format table|json]`,
      description: `Columns: ${cmd.columns.join(' ')}. JSON: an array of ${cmd.jsonType} objects.`,
      flags: [FORMAT_FLAG],
      operands: 'none',
      async run({ values, positionals, usage }, ctx) {
        if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
        const format = formatValue(values.format, usage);
        const list = await withLocalBackend(ctx, `msb ${noun} ls`, (b) => cmd.list(b));
        if (format === 'json') writeJson(ctx, list);
        else {
          const now = Date.now();
          ctx.stdout.write(
            table(
              cmd.columns,
              list.map((x) => cmd.row(x, now)),
            ),
          );
        }
        return 0;
      },
    },
    {
      name: `${noun} rm`,
      summary: `Remove ${noun} pins (the images stay cached until prune)`,
      synopsis: `${noun} rm ${cmd.rmArgs}...`,
      description: cmd.rmHelp,
      flags: [],
      operands: 'other',
      async run({ positionals, usage }, ctx) {
        if (positionals.length === 0)
          throw new UsageError(`msb ${noun} rm needs at least one ${cmd.rmArgs.replace('|', ' or ')}`, usage);
        return withLocalBackend(ctx, `msb ${noun} rm`, (b) =>
          forEachArgument(ctx, positionals, async (arg) => {
            await cmd.remove(b, arg);
            ctx.stdout.write(`${termSafe(arg)}\n`);
          }),
        );
      },
    },
  ];
}

/**
 * `msb sandbox ls [--format table|json]` / `msb sandbox rm NAME…` (cli.md §5): thin wrappers over
 * Sandbox.list and Sandbox.remove. `rm` processes every name; an unknown one exits 3 at the end.
 */
import { Sandbox } from '../../api/sandbox.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { exitCodeFor, reportError } from '../main.js';
import { formatOption, parseFlags, platformString, relativeTime, showDigest, table, writeJson } from '../format.js';

export const usage = `Usage:
  msb sandbox ls [--format table|json]     list sandboxes (image pins)
  msb sandbox rm NAME...                   remove sandbox pins (the images stay cached)

Flags:
      --format F     table (default) or json (an array of SandboxHandle objects)
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'ls') {
    const { values, positionals } = parseFlags(rest, { format: { kind: 'value', names: ['--format'] } }, usage);
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
    const format = formatOption(values.format, usage);
    const list = await withLocalBackend(ctx, 'msb sandbox ls', (b) => Sandbox.listLocal(b));
    if (format === 'json') { writeJson(ctx, list); return 0; }
    const now = Date.now();
    ctx.stdout.write(table(['NAME', 'REFERENCE', 'DIGEST', 'PLATFORM', 'CREATED'], list.map((s) => [
      s.name, s.reference, showDigest(s.manifestDigest), platformString(s.platform), relativeTime(s.createdAt, now),
    ])));
    return 0;
  }
  if (verb === 'rm') {
    const { positionals } = parseFlags(rest, {}, usage);
    if (positionals.length === 0) throw new UsageError('msb sandbox rm needs at least one NAME', usage);
    let status = 0;
    await withLocalBackend(ctx, 'msb sandbox rm', async (b) => {
      for (const name of positionals) {
        try {
          await Sandbox.removeLocal(b, name);
          ctx.stdout.write(`${name}\n`);
        } catch (err) {
          if (exitCodeFor(err, ctx.signal) >= 128) throw err;
          const s = reportError(err, ctx);
          if (status === 0) status = s;
        }
      }
    });
    return status;
  }
  throw new UsageError(`unknown command "sandbox ${verb ?? ''}"`, usage);
}

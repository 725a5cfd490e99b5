/**
 * `msb snapshot ls [--format table|json]` / `msb snapshot rm NAME|DIGEST…` (cli.md §5): thin
 * wrappers over Snapshot.list and Snapshot.remove. An argument that parses as `alg:hex` is a
 * digest, anything else a name. Unknown snapshots exit 3 after the other arguments are processed.
 */
import { Snapshot } from '../../api/sandbox.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { exitCodeFor, reportError } from '../main.js';
import { formatOption, parseFlags, relativeTime, showDigest, table, writeJson } from '../format.js';

export const usage = `Usage:
  msb snapshot ls [--format table|json]    list snapshots (image pins)
  msb snapshot rm NAME|DIGEST...           remove snapshot pins (the images stay cached)

Flags:
      --format F     table (default) or json (an array of SnapshotHandle objects)
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === 'ls') {
    const { values, positionals } = parseFlags(rest, { format: { kind: 'value', names: ['--format'] } }, usage);
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
    const format = formatOption(values.format, usage);
    const list = await withLocalBackend(ctx, 'msb snapshot ls', (b) => Snapshot.listLocal(b));
    if (format === 'json') { writeJson(ctx, list); return 0; }
    const now = Date.now();
    ctx.stdout.write(table(['DIGEST', 'NAME', 'IMAGE', 'REFERENCE', 'CREATED'], list.map((s) => [
      showDigest(s.digest), s.name ?? '-', showDigest(s.imageManifestDigest), s.reference ?? '-', relativeTime(s.createdAt, now),
    ])));
    return 0;
  }
  if (verb === 'rm') {
    const { positionals } = parseFlags(rest, {}, usage);
    if (positionals.length === 0) throw new UsageError('msb snapshot rm needs at least one NAME or DIGEST', usage);
    let status = 0;
    await withLocalBackend(ctx, 'msb snapshot rm', async (b) => {
      for (const x of positionals) {
        try {
          await Snapshot.removeLocal(b, x);
          ctx.stdout.write(`${x}\n`);
        } catch (err) {
          if (exitCodeFor(err, ctx.signal) >= 128) throw err;
          const s = reportError(err, ctx);
          if (status === 0) status = s;
        }
      }
    });
    return status;
  }
  throw new UsageError(`unknown command "snapshot ${verb ?? ''}"`, usage);
}

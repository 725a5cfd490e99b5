/** `msb images [-q] [--format table|json] [--no-trunc]` (cli.md §5): Image.list, newest first. */
import { Image } from '../../api/image.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { formatOption, formatSize, parseFlags, platformString, relativeTime, showDigest, table, writeJson } from '../format.js';

export const usage = `Usage: msb images [-q] [--format table|json] [--no-trunc]

List cached images (alias: msb image ls), newest first.

Flags:
  -q, --quiet        print only familiar references, one per line
      --format F     table (default) or json (an array of image handles)
      --no-trunc     show full digests
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    quiet: { kind: 'bool', names: ['-q', '--quiet'] },
    format: { kind: 'value', names: ['--format'] },
    noTrunc: { kind: 'bool', names: ['--no-trunc'] },
  }, usage);
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
  const format = formatOption(values.format, usage);
  const list = await withLocalBackend(ctx, 'msb images', (b) => Image.listLocal(b));
  if (format === 'json') { writeJson(ctx, list); return 0; }
  if (values.quiet) {
    for (const h of list) ctx.stdout.write(`${h.reference}\n`);
    return 0;
  }
  const now = Date.now();
  ctx.stdout.write(table(['REFERENCE', 'DIGEST', 'PLATFORM', 'LAYERS', 'SIZE', 'CREATED', 'LAST USED'], list.map((h) => [
    h.reference, showDigest(h.manifestDigest, values.noTrunc === true), platformString(h), String(h.layerCount),
    formatSize(h.sizeBytes), relativeTime(h.createdAt, now), relativeTime(h.lastUsedAt, now),
  ])));
  return 0;
}

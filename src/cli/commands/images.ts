/** `msb images [-q] [--format table|json] [--no-trunc]` (docs/cli.md §5): Image.list, newest first. */
import { Image } from '../../api/image.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import {
  formatOption,
  formatSize,
  parseFlags,
  platformString,
  relativeTime,
  showDigest,
  table,
  writeJson,
} from '../format.js';

export const usage = `Usage: msb images [-q] [--format table|json] [--no-trunc]

List cached images (alias: msb image ls), newest first.

Flags:
  -q, --quiet        print only familiar references, one per line
      --format F     table (default) or json (an array of image handles)
      --no-trunc     show full digests
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      quiet: { kind: 'bool', names: ['-q', '--quiet'] },
      format: { kind: 'value', names: ['--format'] },
      noTrunc: { kind: 'bool', names: ['--no-trunc'] },
    },
    usage,
  );
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
  const format = formatOption(values.format, usage);
  const list = await withLocalBackend(ctx, 'msb images', (b) => Image.listLocal(b));
  if (format === 'json') {
    writeJson(ctx, list);
    return 0;
  }
  if (values.quiet) {
    for (const h of list) ctx.stdout.write(`${h.reference}\n`);
    return 0;
  }
  const now = Date.now();
  // Per-manifest cells and per-second relative times repeat across rows: compute each once, which
  // keeps `msb images` over 10,000 refs well inside its budget (allocation, not I/O, dominates).
  const perManifest = new Map<string, string[]>();
  const rel = new Map<number, string>();
  const ago = (d: Date) => {
    const k = Math.floor((now - d.getTime()) / 1000);
    let v = rel.get(k);
    if (v === undefined) {
      v = relativeTime(d, now);
      rel.set(k, v);
    }
    return v;
  };
  const noTrunc = values.noTrunc === true;
  ctx.stdout.write(
    table(
      ['REFERENCE', 'DIGEST', 'PLATFORM', 'LAYERS', 'SIZE', 'CREATED', 'LAST USED'],
      list.map((h) => {
        let m = perManifest.get(h.manifestDigest);
        if (!m) {
          m = [showDigest(h.manifestDigest, noTrunc), platformString(h), String(h.layerCount), formatSize(h.sizeBytes)];
          perManifest.set(h.manifestDigest, m);
        }
        return [h.reference, m[0]!, m[1]!, m[2]!, m[3]!, ago(h.createdAt), ago(h.lastUsedAt)];
      }),
    ),
  );
  return 0;
}

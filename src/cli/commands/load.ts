/**
 * `msb load [-i FILE|-] [-t TAG]… [--platform P] [-q]` (docs/cli.md §6): Image.loadLocal from FILE or
 * stdin; prints `Loaded image: <familiar ref>` per loaded name (`-q`: the refs only). Warnings go
 * to stderr. `-t` on a multi-image archive exits 2 (INVALID_ARGUMENT); an unnamed image exits 1
 * (ARCHIVE_INVALID) with the hint `pass --tag`.
 */
import { Image } from '../../api/image.js';
import type { PullEvent } from '../../pull/events.js';
import { withLocalBackend } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { parseFlags } from '../format.js';

export const usage = `Usage: msb load [-i FILE|-] [-t TAG]... [--platform P] [-q]

Load images from a docker-save or OCI-layout archive (plain, gzip or zstd) into the cache
(alias: msb image load). Reads stdin when -i is absent or -.

Flags:
  -i, --input FILE    archive to read (default: stdin)
  -t, --tag TAG       name the image TAG (repeatable; single-image archives only)
      --platform P    os/arch[/variant] to pick from an index (default: the host's)
  -q, --quiet         print only the loaded references
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      input: { kind: 'value', names: ['-i', '--input'] },
      tag: { kind: 'multi', names: ['-t', '--tag'] },
      platform: { kind: 'value', names: ['--platform'] },
      quiet: { kind: 'bool', names: ['-q', '--quiet'] },
    },
    usage,
  );
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
  const file = values.input as string | undefined;
  const quiet = values.quiet === true;
  const input = file === undefined || file === '-' ? ctx.stdin : file;
  const handles = await withLocalBackend(ctx, 'msb load', (b) =>
    Image.loadLocal(b, input, {
      ...(values.tag !== undefined ? { tag: values.tag as string[] } : {}),
      ...(values.platform !== undefined ? { platform: values.platform as string } : {}),
      signal: ctx.signal,
      onProgress: (e: PullEvent) => {
        if (e.type === 'warning') ctx.stderr.write(`msb: warning: ${e.message}\n`);
      },
    }),
  );
  for (const h of handles) ctx.stdout.write(quiet ? `${h.reference}\n` : `Loaded image: ${h.reference}\n`);
  return 0;
}

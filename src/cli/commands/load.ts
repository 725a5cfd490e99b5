/**
 * `msb load [-i FILE|-] [-t TAG]… [--platform P] [-q]` (docs/cli.md §6): Image.loadLocal from FILE or
 * stdin; prints `Loaded image: <familiar ref>` per loaded name (`-q`: the refs only). Warnings go
 * to stderr. Reading an archive from a terminal is refused at once (exit 2), as `save` refuses to
 * write one to a terminal. `-t` on a multi-image archive exits 2 (INVALID_ARGUMENT); an unnamed
 * image exits 1 (ARCHIVE_INVALID) with the hint `pass --tag`.
 */
import { Image } from '../../api/image.js';
import type { PullEvent } from '../../pull/events.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { termSafe } from '../escape.js';
import { PLATFORM_FLAG, warn } from '../remote-flags.js';

export const commands: CommandSpec[] = [
  {
    name: 'load',
    aliases: ['image load'],
    summary: 'Load images from a docker-save or OCI archive',
    synopsis: 'load [-i FILE|-] [-t TAG]... [--platform P] [-q]',
    description:
      'Loads a docker-save or OCI-layout archive (plain, gzip or zstd) into the cache. Reads stdin when\n-i is absent or -; a terminal is refused (use -i or a pipe).',
    flags: [
      {
        name: 'input',
        short: 'i',
        type: 'string',
        value: 'FILE',
        help: 'archive to read (default: stdin)',
        complete: 'file',
      },
      {
        name: 'tag',
        short: 't',
        type: 'string',
        multiple: true,
        value: 'TAG',
        help: 'name the image TAG (repeatable; single-image archives only)',
      },
      { ...PLATFORM_FLAG, help: "os/arch[/variant] to pick from an index (default: the host's)" },
      { name: 'quiet', short: 'q', type: 'boolean', help: 'print only the loaded references' },
    ],
    operands: 'none',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
      const file = values.input as string | undefined;
      const quiet = values.quiet === true;
      const fromStdin = file === undefined || file === '-';
      if (fromStdin && ctx.stdin.isTTY)
        throw new UsageError('refusing to read an archive from a terminal; use -i FILE or a pipe', usage);
      const input = fromStdin ? ctx.stdin : file;
      const handles = await withLocalBackend(ctx, 'msb load', (b) =>
        Image.loadLocal(b, input, {
          ...(values.tag !== undefined ? { tag: values.tag as string[] } : {}),
          ...(values.platform !== undefined ? { platform: values.platform as string } : {}),
          signal: ctx.signal,
          onProgress: (e: PullEvent) => {
            if (e.type === 'warning') warn(ctx, e.message);
          },
        }),
      );
      for (const h of handles)
        ctx.stdout.write(quiet ? `${termSafe(h.reference)}\n` : `Loaded image: ${termSafe(h.reference)}\n`);
      return 0;
    },
  },
];

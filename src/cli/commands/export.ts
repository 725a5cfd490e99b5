/**
 * `msb image export [-o FILE|-] IMAGE` (docs/cli.md §11, docs/storage.md §12): Image.export to FILE
 * (atomically), or to stdout when `-o` is absent or `-` — never to a terminal (exit 2).
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

export const commands: CommandSpec[] = [
  {
    name: 'image export',
    summary: "Write an image's root file system as one tar",
    synopsis: 'image export [-o FILE|-] IMAGE',
    description:
      "Writes the image's merged root file system as one tar, read from the cached artifacts (fsmeta\nand layer files): ordered and deterministic, owners, modes, times and xattrs as in the image.\nTo FILE (atomically) or stdout when -o is absent or - (never a terminal).",
    flags: [
      {
        name: 'output',
        short: 'o',
        type: 'string',
        value: 'FILE',
        help: 'write the tar to FILE (atomically); - for stdout',
        complete: 'file',
      },
    ],
    operands: 'image',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length !== 1)
        throw new UsageError(positionals.length ? 'one IMAGE only' : 'missing IMAGE', usage);
      const file = values.output as string | undefined;
      const toStdout = file === undefined || file === '-';
      if (toStdout && ctx.stdout.isTTY) throw new UsageError('refusing to write a tar to a terminal; use -o or a pipe');
      await withLocalBackend(ctx, 'msb image export', (b) =>
        Image.exportLocal(b, positionals[0]!, toStdout ? ctx.stdout : file!, { signal: ctx.signal }),
      );
      return 0;
    },
  },
];

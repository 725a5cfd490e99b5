/**
 * `msb save [-o FILE] [--format docker|oci] IMAGE…` (docs/cli.md §6): Image.saveLocal to FILE, or to
 * stdout when `-o` is absent — never to a terminal (exit 2). `--format` defaults to docker (the
 * dual docker + OCI layout). Every image is checked before anything is written.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

export const commands: CommandSpec[] = [
  {
    name: 'save',
    aliases: ['image save'],
    summary: 'Save images to an archive',
    synopsis: 'save [-o FILE] [--format docker|oci] IMAGE...',
    description:
      'Writes the images to an archive: FILE (atomically) or stdout when -o is absent (never a\nterminal). IMAGE is a reference, a digest or a short image ID; an image named by ID is saved\nwithout a name. Every image is checked before anything is written.',
    flags: [
      {
        name: 'output',
        short: 'o',
        type: 'string',
        value: 'FILE',
        help: 'write the archive to FILE',
        complete: 'file',
      },
      {
        name: 'format',
        type: 'string',
        value: 'F',
        help: 'docker (default: docker-save + OCI layout in one archive) or oci',
        complete: ['docker', 'oci'],
      },
    ],
    operands: 'image',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length === 0) throw new UsageError('missing IMAGE', usage);
      const format = (values.format as string | undefined) ?? 'docker';
      if (format !== 'docker' && format !== 'oci')
        throw new UsageError(`--format must be docker or oci, not ${JSON.stringify(format)}`, usage);
      const file = values.output as string | undefined;
      const toStdout = file === undefined || file === '-';
      if (toStdout && ctx.stdout.isTTY)
        throw new UsageError('refusing to write an archive to a terminal; use -o or a pipe');
      await withLocalBackend(ctx, 'msb save', (b) =>
        Image.saveLocal(b, positionals, toStdout ? ctx.stdout : file!, { format, signal: ctx.signal }),
      );
      return 0;
    },
  },
];

/** `msb tag SOURCE TARGET` (docker tag): Image.tag. Prints nothing on success, like docker. */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

export const commands: CommandSpec[] = [
  {
    name: 'tag',
    aliases: ['image tag'],
    summary: 'Create a tag TARGET that refers to the image SOURCE',
    synopsis: 'tag SOURCE TARGET',
    description:
      'SOURCE is any image argument: a reference, a digest, or a short image ID (4+ hex digits).\nPrints nothing on success.',
    flags: [],
    operands: 'image',
    async run({ positionals, usage }, ctx) {
      if (positionals.length !== 2) throw new UsageError('msb tag needs SOURCE and TARGET', usage);
      await withLocalBackend(ctx, 'msb tag', (b) => Image.tagLocal(b, positionals[0]!, positionals[1]!));
      return 0;
    },
  },
];

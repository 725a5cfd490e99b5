/**
 * `msb image mount IMAGE DIR` / `msb image umount DIR` (docs/cli.md §11, docs/storage.md §13): a
 * read-only host mount of an image's merged tree, root only. Not root, or a kernel without EROFS,
 * exits 6 (UNSUPPORTED) with the reason.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

export const commands: CommandSpec[] = [
  {
    name: 'image mount',
    summary: "Mount an image's root file system read-only (root)",
    synopsis: 'image mount IMAGE DIR',
    description:
      "Mounts the image's merged root file system read-only on the existing directory DIR, from the\ncached artifacts (fsmeta, with each layer file as one of its devices). Needs root and a kernel\nwith EROFS. Prints DIR.",
    flags: [],
    operands: 'image',
    async run({ positionals, usage }, ctx) {
      if (positionals.length !== 2) throw new UsageError('msb image mount needs IMAGE and DIR', usage);
      const r = await withLocalBackend(ctx, 'msb image mount', (b) =>
        Image.mountLocal(b, positionals[0]!, positionals[1]!),
      );
      ctx.stdout.write(`${r.mountpoint}\n`);
      return 0;
    },
  },
  {
    name: 'image umount',
    summary: 'Unmount what msb image mount mounted (root)',
    synopsis: 'image umount DIR',
    description: 'Unmounts an image msb image mount mounted on DIR and releases its loop devices.',
    flags: [],
    operands: 'file',
    async run({ positionals, usage }) {
      if (positionals.length !== 1) throw new UsageError('msb image umount needs DIR', usage);
      await Image.unmount(positionals[0]!);
      return 0;
    },
  },
];

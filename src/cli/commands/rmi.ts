/**
 * `msb rmi [-f|--force] IMAGE…` (docs/cli.md §5): Image.remove per IMAGE. Prints `Untagged: <ref>`
 * per removed tag, then `Deleted: <digest>` per manifest and layer deleted; when the image stays
 * cached because sandboxes or snapshots pin it, a note on stderr names them. Every argument is
 * processed; the exit status is the first failure's (IMAGE_IN_USE → 4, not found → 3, an ID naming
 * several references without -f → 1).
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { termSafe } from '../escape.js';
import { forEachArgument } from '../report.js';

export const commands: CommandSpec[] = [
  {
    name: 'rmi',
    aliases: ['image rm'],
    summary: 'Remove one or more images',
    synopsis: 'rmi [-f|--force] IMAGE...',
    description: `IMAGE is a reference (untags it), or a digest, short image ID or REPO@sha256:… (untags every
reference it names; with several, only with -f). The image and the layers only it uses are
deleted when no reference, sandbox or snapshot is left on it; a pinned image stays cached until
its pins are removed (msb sandbox rm, msb snapshot rm) and msb image prune runs.`,
    flags: [
      {
        name: 'force',
        short: 'f',
        type: 'boolean',
        help: 'untag even the last reference of a pinned image, and every reference an ID names',
      },
    ],
    operands: 'image',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length === 0) throw new UsageError('msb rmi needs at least one IMAGE', usage);
      const force = values.force === true;
      return withLocalBackend(ctx, 'msb rmi', (b) =>
        forEachArgument(ctx, positionals, async (ref) => {
          const r = await Image.removeLocal(b, ref, { force, signal: ctx.signal });
          for (const u of r.untagged) ctx.stdout.write(`Untagged: ${termSafe(u)}\n`);
          for (const m of r.deletedManifests) ctx.stdout.write(`Deleted: ${m}\n`);
          for (const l of r.deletedLayers) ctx.stdout.write(`Deleted: ${l}\n`);
          if (r.pinnedBy.length > 0) {
            const who = r.pinnedBy.map((p) => `${p.kind} '${p.name}'`).join(', ');
            ctx.stderr.write(
              `msb: note: the image itself stays cached: pinned by ${termSafe(who)}; ` +
                'remove the pins with msb sandbox rm / msb snapshot rm, then msb image prune reclaims it\n',
            );
          }
        }),
      );
    },
  },
];

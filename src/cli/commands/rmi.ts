/**
 * `msb rmi [-f|--force] REF…` (docs/cli.md §5): Image.remove per REF. Prints `Untagged: <ref>` per
 * removed tag, then `Deleted: <digest>` per manifest and layer deleted. Every argument is
 * processed; the exit status is the first failure's (IMAGE_IN_USE → 4, not found → 3).
 */
import { Image } from '../../api/image.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { forEachArgument } from '../main.js';
import { parseFlags } from '../format.js';

export const usage = `Usage: msb rmi [-f|--force] REF...

Remove one or more images (alias: msb image rm). A REF may be a reference or a manifest digest.

Flags:
  -f, --force        untag even if a sandbox or snapshot pins the image (the pinned manifest
                     stays cached until its pins are removed)
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, { force: { kind: 'bool', names: ['-f', '--force'] } }, usage);
  if (positionals.length === 0) throw new UsageError('msb rmi needs at least one REF', usage);
  const force = values.force === true;
  return withLocalBackend(ctx, 'msb rmi', (b) =>
    forEachArgument(ctx, positionals, async (ref) => {
      const pins = force
        ? await Image.inspectLocal(b, ref)
            .then((d) => d.pins)
            .catch(() => [])
        : [];
      const r = await Image.removeLocal(b, ref, { force, signal: ctx.signal });
      for (const u of r.untagged) ctx.stdout.write(`Untagged: ${u}\n`);
      for (const m of r.deletedManifests) ctx.stdout.write(`Deleted: ${m}\n`);
      for (const l of r.deletedLayers) ctx.stdout.write(`Deleted: ${l}\n`);
      if (pins.length > 0 && r.deletedManifests.length === 0) {
        const who = pins.map((p) => `${p.kind} '${p.name}'`).join(', ');
        ctx.stderr.write(
          `msb: note: the image stays cached while ${who} pin${pins.length > 1 ? '' : 's'} it; ` +
            'remove the pins with `msb sandbox rm` / `msb snapshot rm`, then `msb image prune` reclaims it\n',
        );
      }
    }),
  );
}

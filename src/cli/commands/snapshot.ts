/**
 * `msb snapshot ls [--format table|json]` / `msb snapshot rm NAME|DIGEST…` (docs/cli.md §5): thin
 * wrappers over Snapshot.list and Snapshot.remove. An argument that parses as `alg:hex` is a
 * digest, anything else a name. Unknown snapshots exit 3 after the other arguments are processed.
 */
import { Snapshot } from '../../api/sandbox.js';
import type { CliContext } from '../context.js';
import { relativeTime, showDigest } from '../format.js';
import { runPinCommand } from '../pin-command.js';

export const usage = `Usage:
  msb snapshot ls [--format table|json]    list snapshots (image pins)
  msb snapshot rm NAME|DIGEST...           remove snapshot pins (the images stay cached)

Flags:
      --format F     table (default) or json (an array of SnapshotHandle objects)
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  return runPinCommand(
    {
      noun: 'snapshot',
      usage,
      list: (b) => Snapshot.listLocal(b),
      columns: ['DIGEST', 'NAME', 'IMAGE', 'REFERENCE', 'CREATED'],
      row: (s, now) => [
        showDigest(s.digest),
        s.name ?? '-',
        showDigest(s.imageManifestDigest),
        s.reference ?? '-',
        relativeTime(s.createdAt, now),
      ],
      rmArgs: 'NAME or DIGEST',
      remove: (b, x) => Snapshot.removeLocal(b, x),
    },
    args,
    ctx,
  );
}

/**
 * `msb snapshot ls [--format table|json]` / `msb snapshot rm NAME|DIGEST…` (docs/cli.md §5): thin
 * wrappers over Snapshot.list and Snapshot.remove. An argument that parses as `alg:hex` is a
 * digest, anything else a name. Unknown snapshots exit 3 after the other arguments are processed.
 */
import { Snapshot } from '../../api/sandbox.js';
import type { CommandSpec } from '../command.js';
import { relativeTime, showDigest } from '../format.js';
import { pinCommands } from '../pin-command.js';

export const commands: CommandSpec[] = pinCommands({
  noun: 'snapshot',
  list: (b) => Snapshot.listLocal(b),
  jsonType: 'SnapshotHandle',
  columns: ['DIGEST', 'NAME', 'IMAGE', 'REFERENCE', 'CREATED'],
  row: (s, now) => [
    showDigest(s.digest),
    s.name ?? '-',
    showDigest(s.imageManifestDigest),
    s.reference ?? '-',
    relativeTime(s.createdAt, now),
  ],
  rmArgs: 'NAME|DIGEST',
  rmHelp:
    'Removes each snapshot pin, by digest (an alg:hex argument) or by name; the image stays cached\nuntil msb image prune. Unknown snapshots exit 3 after the other arguments are processed.',
  remove: (b, x) => Snapshot.removeLocal(b, x),
});

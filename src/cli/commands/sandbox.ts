/**
 * `msb sandbox ls [--format table|json]` / `msb sandbox rm NAME…` (docs/cli.md §5): thin wrappers over
 * Sandbox.list and Sandbox.remove. `rm` processes every name; an unknown one exits 3 at the end.
 */
import { Sandbox } from '../../api/sandbox.js';
import type { CommandSpec } from '../command.js';
import { platformString, relativeTime, showDigest } from '../format.js';
import { pinCommands } from '../pin-command.js';

export const commands: CommandSpec[] = pinCommands({
  noun: 'sandbox',
  list: (b) => Sandbox.listLocal(b),
  jsonType: 'SandboxHandle',
  columns: ['NAME', 'REFERENCE', 'DIGEST', 'PLATFORM', 'CREATED'],
  row: (s, now) => [
    s.name,
    s.reference,
    showDigest(s.manifestDigest),
    platformString(s.platform),
    relativeTime(s.createdAt, now),
  ],
  rmArgs: 'NAME',
  rmHelp:
    'Removes each named sandbox pin; the image stays cached until msb image prune. An unknown\nname exits 3 after the other names are processed.',
  remove: (b, x) => Sandbox.removeLocal(b, x),
});

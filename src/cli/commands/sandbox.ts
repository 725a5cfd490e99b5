/**
 * `msb sandbox ls [--format table|json]` / `msb sandbox rm NAME…` (docs/cli.md §5): thin wrappers over
 * Sandbox.list and Sandbox.remove. `rm` processes every name; an unknown one exits 3 at the end.
 */
import { Sandbox } from '../../api/sandbox.js';
import type { CliContext } from '../context.js';
import { platformString, relativeTime, showDigest } from '../format.js';
import { runPinCommand } from '../pin-command.js';

export const usage = `Usage:
  msb sandbox ls [--format table|json]     list sandboxes (image pins)
  msb sandbox rm NAME...                   remove sandbox pins (the images stay cached)

Flags:
      --format F     table (default) or json (an array of SandboxHandle objects)
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  return runPinCommand(
    {
      noun: 'sandbox',
      usage,
      list: (b) => Sandbox.listLocal(b),
      columns: ['NAME', 'REFERENCE', 'DIGEST', 'PLATFORM', 'CREATED'],
      row: (s, now) => [
        s.name,
        s.reference,
        showDigest(s.manifestDigest),
        platformString(s.platform),
        relativeTime(s.createdAt, now),
      ],
      rmArgs: 'NAME',
      remove: (b, x) => Sandbox.removeLocal(b, x),
    },
    args,
    ctx,
  );
}

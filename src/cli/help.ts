/** `msb --help`, `msb GROUP` and `msb help …` texts (docs/cli.md §1), built from the command specs. */
import { EXIT_CODES_HELP, flagLines, GLOBAL_FLAGS, type CommandSpec } from './command.js';
import { allSpecs, GROUPS, groupCommands } from './command-table.js';

function commandList(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([w]) => w.length));
  return rows.map(([w, s]) => `  ${w.padEnd(width)}   ${s}\n`).join('');
}

function aliasNote(spec: CommandSpec, shown: string): string {
  const others = [spec.name, ...(spec.aliases ?? [])].filter((n) => n !== shown);
  return others.length ? ` (also: ${others.join(', ')})` : '';
}

export async function globalHelp(): Promise<string> {
  const specs = await allSpecs();
  let out = `Usage: msb [--home DIR] [--debug] [--no-color] COMMAND [ARGS]
       msb help [COMMAND | GROUP]  |  msb COMMAND --help  |  msb version

msb-image: a verified OCI image cache for microVM sandboxes.

Commands:
`;
  out += commandList(specs.map((s) => [s.name, s.summary + aliasNote(s, s.name)]));
  out += `\nGroups (msb GROUP lists its commands):\n`;
  out += commandList(Object.entries(GROUPS));
  out += '\nGlobal flags:\n' + flagLines(GLOBAL_FLAGS);
  out += '\nRun msb COMMAND --help for the flags of a command.\n\n' + EXIT_CODES_HELP;
  return out;
}

export async function groupHelp(group: string): Promise<string> {
  const cmds = await groupCommands(group);
  let out = `Usage: msb ${group} COMMAND [ARGS]\n\n${GROUPS[group]}.\n\nCommands:\n`;
  out += commandList(cmds.map(([w, s]) => [w, s.summary + aliasNote(s, w)]));
  out += `\nRun msb ${group} COMMAND --help for the flags of a command.\n`;
  return out;
}

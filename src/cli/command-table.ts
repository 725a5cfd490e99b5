/**
 * The command table (docs/cli.md §1): command words → the module under ./commands that exports the
 * command's spec (`commands: CommandSpec[]`, src/cli/command.ts). Modules load on demand, so
 * `msb layer convert` never loads SQLite.
 *
 * Adding a command: write `commands/<file>.ts` exporting `commands` (name, summary, synopsis,
 * flags, operands, run), then add its name and aliases here. Help, group help, `msb help`, shell
 * completion and docs/cli-reference.md (`npm run docs:cli`) follow from the spec.
 */
import type { CommandSpec } from './command.js';

export const COMMAND_MODULES: Readonly<Record<string, string>> = {
  pull: 'pull',
  'image pull': 'pull',
  images: 'images',
  'image ls': 'images',
  'image inspect': 'inspect',
  rmi: 'rmi',
  'image rm': 'rmi',
  tag: 'tag',
  'image tag': 'tag',
  'image prune': 'prune',
  'image df': 'df',
  'image verify': 'verify',
  'image export': 'export',
  'image mount': 'mount',
  'image umount': 'mount',
  'image digest': 'digest',
  load: 'load',
  'image load': 'load',
  save: 'save',
  'image save': 'save',
  'manifest inspect': 'manifest',
  'ls-tags': 'ls-tags',
  'sandbox ls': 'sandbox',
  'sandbox rm': 'sandbox',
  'snapshot ls': 'snapshot',
  'snapshot rm': 'snapshot',
  'registry login': 'registry',
  'registry logout': 'registry',
  'registry ls': 'registry',
  'layer convert': 'layer',
  'layer stitch': 'layer',
  completion: 'completion',
  version: 'version',
};

/** Command groups: `msb GROUP`, `msb GROUP --help` and `msb help GROUP` list their commands. */
export const GROUPS: Readonly<Record<string, string>> = {
  image: 'Manage cached images',
  manifest: 'Inspect manifests in a registry',
  sandbox: 'Manage sandbox pins',
  snapshot: 'Manage snapshot pins',
  registry: 'Manage registry credentials and settings',
  layer: 'Convert and stitch layer images without a cache',
};

/** The spec whose name or alias is `words`. */
export async function loadSpec(words: string): Promise<CommandSpec> {
  const file = COMMAND_MODULES[words];
  if (file === undefined) throw new Error(`no command ${words}`);
  const mod = (await import(`./commands/${file}.js`)) as { commands: CommandSpec[] };
  const spec = mod.commands.find((c) => c.name === words || c.aliases?.includes(words));
  if (!spec) throw new Error(`commands/${file} does not define ${words}`);
  return spec;
}

/** Every command spec, once each, in table order. */
export async function allSpecs(): Promise<CommandSpec[]> {
  const out: CommandSpec[] = [];
  for (const words of Object.keys(COMMAND_MODULES)) {
    const s = await loadSpec(words);
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** The commands whose name or an alias starts with `group `, as [words, spec] (table order). */
export async function groupCommands(group: string): Promise<[string, CommandSpec][]> {
  const out: [string, CommandSpec][] = [];
  for (const words of Object.keys(COMMAND_MODULES))
    if (words.startsWith(`${group} `)) out.push([words, await loadSpec(words)]);
  return out;
}

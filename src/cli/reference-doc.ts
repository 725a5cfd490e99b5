/**
 * docs/cli-reference.md, generated from the command specs (`npm run docs:cli`): the global help,
 * each group's list and every command's `--help` text, verbatim. A unit test regenerates it and
 * fails when the file differs, so the reference cannot drift from the CLI.
 */
import { helpText } from './command.js';
import { allSpecs, GROUPS } from './command-table.js';
import { globalHelp, groupHelp } from './help.js';

const fence = (text: string) => '```text\n' + text.trimEnd() + '\n```\n';

export async function cliReferenceMarkdown(): Promise<string> {
  let md = `# \`msb\` command reference

Generated from the commands' own help by \`npm run docs:cli\`; do not edit by hand (a test fails
when this file differs from the CLI). The contract behind it (output conventions, exit codes,
progress, \`config.json\`) is docs/cli.md.

## \`msb --help\`

${fence(await globalHelp())}`;
  for (const g of Object.keys(GROUPS)) md += `\n## \`msb ${g}\`\n\n${fence(await groupHelp(g))}`;
  for (const s of await allSpecs()) md += `\n## \`msb ${s.name}\`\n\n${fence(helpText(s))}`;
  return md;
}

/** `msb version [--format text|json]` (docs/cli.md §1): the package version; JSON adds the runtime. */
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { writeJson } from '../format.js';
import { packageVersion, versionInfo } from '../version-info.js';

export const commands: CommandSpec[] = [
  {
    name: 'version',
    summary: 'Print the version of msb',
    synopsis: 'version [--format text|json]',
    description:
      'text prints `msb <version>` (as msb --version does); json adds Node, its N-API and module ABI\nversions, the platform, the native modules (better-sqlite3, zstd-napi, fs-ext) and SQLite.',
    flags: [{ name: 'format', type: 'string', value: 'F', help: 'text (default) or json', complete: ['text', 'json'] }],
    operands: 'none',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
      const f = values.format ?? 'text';
      if (f === 'json') writeJson(ctx, versionInfo());
      else if (f === 'text') ctx.stdout.write(`msb ${packageVersion()}\n`);
      else throw new UsageError(`--format must be text or json, not ${JSON.stringify(f)}`, usage);
      return 0;
    },
  },
];

/**
 * `msb ls-tags [--format table|json] [--page-size N] REPO`: every tag of a remote repository
 * (`tags/list`, following the registry's `Link` pages), one per line in the registry's order
 * (escaped: registry text), or the RemoteTagList object with `--format json`. Nothing is pulled
 * and the cache is not touched.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { termSafe } from '../escape.js';
import { writeJson } from '../format.js';
import { REMOTE_FLAGS, remoteOptions } from '../remote-flags.js';

export const commands: CommandSpec[] = [
  {
    name: 'ls-tags',
    summary: 'List the tags of a remote repository',
    synopsis: 'ls-tags [--format table|json] [--page-size N] [--insecure] [--ca-certs FILE]... REPO',
    description: 'Lists the tags of REPO in its registry (e.g. msb ls-tags ghcr.io/org/app).',
    flags: [
      { ...FORMAT_FLAG, help: 'table (one tag per line, default) or json' },
      { name: 'page-size', type: 'string', value: 'N', help: "tags asked per page (default: the registry's page)" },
      ...REMOTE_FLAGS,
    ],
    operands: 'other',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length !== 1)
        throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REPO', usage);
      const format = formatValue(values.format, usage);
      let pageSize: number | undefined;
      if (values['page-size'] !== undefined) {
        if (!/^[1-9]\d{0,6}$/.test(values['page-size'] as string))
          throw new UsageError('--page-size must be an integer from 1 to 9999999', usage);
        pageSize = Number(values['page-size']);
      }
      const list = await withLocalBackend(ctx, 'msb ls-tags', (b) =>
        Image.listTagsLocal(b, positionals[0]!, {
          ...remoteOptions(values, ctx),
          ...(pageSize !== undefined ? { pageSize } : {}),
        }),
      );
      if (format === 'json') writeJson(ctx, list);
      else ctx.stdout.write(list.tags.map((t) => `${termSafe(t)}\n`).join(''));
      return 0;
    },
  },
];

/**
 * `msb ls-tags [--format table|json] [--page-size N] REPO`: every tag of a remote repository
 * (`tags/list`, following the registry's `Link` pages), one per line in the registry's order, or
 * the RemoteTagList object with `--format json`. Nothing is pulled and the cache is not touched.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { formatOption, parseFlags, writeJson } from '../format.js';
import { REMOTE_FLAGS, REMOTE_FLAGS_HELP, remoteOptions } from '../remote-flags.js';

export const usage = `Usage: msb ls-tags [--format table|json] [--page-size N] [--insecure] [--ca-certs FILE]... REPO

List the tags of a repository in its registry (e.g. msb ls-tags ghcr.io/org/app).

Flags:
      --format F       table (one tag per line, default) or json
      --page-size N    tags asked per page (default: the registry's page)
${REMOTE_FLAGS_HELP}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      format: { kind: 'value', names: ['--format'] },
      pageSize: { kind: 'value', names: ['--page-size'] },
      ...REMOTE_FLAGS,
    },
    usage,
  );
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REPO', usage);
  const format = formatOption(values.format, usage);
  let pageSize: number | undefined;
  if (values.pageSize !== undefined) {
    if (!/^[1-9]\d{0,6}$/.test(values.pageSize as string))
      throw new UsageError('--page-size must be an integer from 1 to 9999999', usage);
    pageSize = Number(values.pageSize);
  }
  const list = await withLocalBackend(ctx, 'msb ls-tags', (b) =>
    Image.listTagsLocal(b, positionals[0]!, {
      ...remoteOptions(values, ctx),
      ...(pageSize !== undefined ? { pageSize } : {}),
    }),
  );
  if (format === 'json') writeJson(ctx, list);
  else ctx.stdout.write(list.tags.map((t) => `${t}\n`).join(''));
  return 0;
}

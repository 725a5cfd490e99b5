/**
 * `msb manifest inspect [--platform P] [--raw] REF`: the index or manifest that REF names, fetched
 * through the pull's registry client (settings, credentials, mirrors) without pulling and without
 * touching the cache. `--raw` prints the exact bytes served (no newline added: `skopeo inspect
 * --raw` prints the same); otherwise the document is pretty-printed JSON. With `--platform`, an
 * index is followed to that platform's manifest.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { parseFlags } from '../format.js';
import { REMOTE_FLAGS, REMOTE_FLAGS_HELP, remoteOptions } from '../remote-flags.js';

export const usage = `Usage: msb manifest inspect [--platform P] [--raw] [--insecure] [--ca-certs FILE]... REF

Show the index or manifest REF names in its registry, without pulling it.

Flags:
      --platform P     follow an index to the manifest of os/arch[/variant]
      --raw            print the exact bytes the registry served
${REMOTE_FLAGS_HELP}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      platform: { kind: 'value', names: ['--platform'] },
      raw: { kind: 'bool', names: ['--raw'] },
      ...REMOTE_FLAGS,
    },
    usage,
  );
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REF', usage);
  const m = await withLocalBackend(ctx, 'msb manifest inspect', (b) =>
    Image.remoteManifestLocal(b, positionals[0]!, {
      ...remoteOptions(values, ctx),
      ...(values.platform !== undefined ? { platform: values.platform as string } : {}),
    }),
  );
  if (values.raw === true) ctx.stdout.write(m.raw);
  else ctx.stdout.write(JSON.stringify(JSON.parse(m.raw.toString('utf8')), null, 2) + '\n');
  return 0;
}

/**
 * `msb manifest inspect [--platform P] [--raw] REF`: the index or manifest that REF names, fetched
 * through the pull's registry client (settings, credentials, mirrors) without pulling and without
 * touching the cache. `--raw` prints the exact bytes served (no newline added: `skopeo inspect
 * --raw` prints the same); otherwise the document is pretty-printed JSON (JSON escapes control
 * characters itself). With `--platform`, an index is followed to that platform's manifest.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { PLATFORM_FLAG, REMOTE_FLAGS, remoteOptions } from '../remote-flags.js';

export const commands: CommandSpec[] = [
  {
    name: 'manifest inspect',
    summary: 'Show the index or manifest of a remote image',
    synopsis: 'manifest inspect [--platform P] [--raw] [--insecure] [--ca-certs FILE]... REF',
    description: 'Fetches the document REF names from its registry, without pulling it.',
    flags: [
      { ...PLATFORM_FLAG, help: 'follow an index to the manifest of os/arch[/variant]' },
      { name: 'raw', type: 'boolean', help: 'print the exact bytes the registry served' },
      ...REMOTE_FLAGS,
    ],
    operands: 'other',
    async run({ values, positionals, usage }, ctx) {
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
    },
  },
];

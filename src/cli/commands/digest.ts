/**
 * `msb image digest [--platform P] REF`: the digest REF resolves to in its registry, for pinning
 * (`name@digest`) in deployment files, like `crane digest`. Without `--platform` it is the digest
 * of the document REF names (the index of a multi-arch tag, as `skopeo inspect --format
 * '{{.Digest}}'` prints); with it, the manifest a pull on that platform would use. Nothing is
 * pulled and the cache is not touched.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { PLATFORM_FLAG, REMOTE_FLAGS, remoteOptions } from '../remote-flags.js';

export const commands: CommandSpec[] = [
  {
    name: 'image digest',
    summary: 'Print the digest a reference resolves to in its registry',
    synopsis: 'image digest [--platform P] [--insecure] [--ca-certs FILE]... REF',
    description:
      'Without --platform: the digest of the document REF names (the index of a multi-arch tag).\nWith it: the digest of the manifest a pull on that platform would use. Nothing is pulled.',
    flags: [
      { ...PLATFORM_FLAG, help: 'print the digest of the manifest for os/arch[/variant] instead' },
      ...REMOTE_FLAGS,
    ],
    operands: 'other',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length !== 1)
        throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REF', usage);
      const digest = await withLocalBackend(ctx, 'msb image digest', async (b) => {
        const o = remoteOptions(values, ctx);
        if (values.platform !== undefined)
          return (await Image.resolveLocal(b, positionals[0]!, { ...o, platform: values.platform as string }))
            .manifestDigest;
        return (await Image.remoteManifestLocal(b, positionals[0]!, o)).digest;
      });
      ctx.stdout.write(`${digest}\n`);
      return 0;
    },
  },
];

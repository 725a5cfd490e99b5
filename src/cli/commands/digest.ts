/**
 * `msb image digest [--platform P] REF`: the digest REF resolves to in its registry, for pinning
 * (`name@digest`) in deployment files, like `crane digest`. Without `--platform` it is the digest
 * of the document REF names (the index of a multi-arch tag, as `skopeo inspect --format
 * '{{.Digest}}'` prints); with it, the manifest a pull on that platform would use. Nothing is
 * pulled and the cache is not touched.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { parseFlags } from '../format.js';
import { REMOTE_FLAGS, REMOTE_FLAGS_HELP, remoteOptions } from '../remote-flags.js';

export const usage = `Usage: msb image digest [--platform P] [--insecure] [--ca-certs FILE]... REF

Print the digest REF resolves to in its registry (the index digest of a multi-arch tag).

Flags:
      --platform P     print the digest of the manifest for os/arch[/variant] instead
${REMOTE_FLAGS_HELP}`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    { platform: { kind: 'value', names: ['--platform'] }, ...REMOTE_FLAGS },
    usage,
  );
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
}

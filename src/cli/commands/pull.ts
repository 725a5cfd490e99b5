/**
 * `msb pull [-q] [--platform P] [--policy if-missing|always|never] [--force] [--insecure]
 * [--ca-certs FILE]… REF` (docs/cli.md §5): Image.pullLocal with progress on stderr (docs/cli.md §4) and the
 * result line on stdout.
 */
import { Image } from '../../api/image.js';
import type { PullPolicy } from '../../api/types.js';
import type { PullEvent } from '../../pull/events.js';
import { parseReference } from '../../reference/reference.js';
import { localBackendFor } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { parseFlags } from '../format.js';
import { ProgressRenderer } from '../progress.js';

export const usage = `Usage: msb pull [-q] [--platform P] [--policy if-missing|always|never] [--force] [--insecure] [--ca-certs FILE]... REF

Pull an image from a registry into the local cache (alias: msb image pull).

Flags:
  -q, --quiet          print only the image reference (no progress)
      --platform P     os/arch[/variant], e.g. linux/arm64/v8 (default: the host's)
      --policy P       if-missing (default), always (re-resolve the tag), never (cache only)
      --force          download and rebuild every artifact of the image
      --insecure       allow plain HTTP / unverified TLS for this registry
      --ca-certs FILE  extra PEM CA file to trust (repeatable)
`;

const POLICIES = new Set(['if-missing', 'always', 'never']);

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      quiet: { kind: 'bool', names: ['-q', '--quiet'] },
      platform: { kind: 'value', names: ['--platform'] },
      policy: { kind: 'value', names: ['--policy'] },
      force: { kind: 'bool', names: ['--force'] },
      insecure: { kind: 'bool', names: ['--insecure'] },
      caCerts: { kind: 'multi', names: ['--ca-certs'] },
    },
    usage,
  );
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REF', usage);
  const policy = values.policy as string | undefined;
  if (policy !== undefined && !POLICIES.has(policy))
    throw new UsageError(`--policy must be if-missing, always or never, not ${JSON.stringify(policy)}`, usage);
  if (values.force === true && policy === 'never')
    throw new UsageError('--force cannot be combined with --policy never', usage);
  const quiet = values.quiet === true;
  const ref = parseReference(positionals[0]!); // a bad reference exits 2 before any I/O

  const backend = localBackendFor(ctx, 'msb pull');
  let renderer: ProgressRenderer | null = null;
  try {
    if (!quiet) {
      renderer = new ProgressRenderer(ctx.stderr, {
        tty: ctx.stderr.isTTY === true,
        retries: backend.settings.pull.retries,
        columns: (ctx.stderr as { columns?: number }).columns ?? 0,
        displayName: ref.familiar,
      });
    }
    const r = renderer;
    const onProgress = (e: PullEvent) => {
      if (r) r.handle(e);
      else if (e.type === 'warning') ctx.stderr.write(`msb: warning: ${e.message}\n`);
    };
    let result: Awaited<ReturnType<typeof Image.pullLocal>>;
    try {
      result = await Image.pullLocal(backend, positionals[0]!, {
        ...(policy !== undefined ? { policy: policy as PullPolicy } : {}),
        ...(values.force === true ? { force: true } : {}),
        ...(values.platform !== undefined ? { platform: values.platform as string } : {}),
        ...(values.insecure === true ? { insecure: true } : {}),
        ...(values.caCerts !== undefined ? { caCerts: values.caCerts as string[] } : {}),
        signal: ctx.signal,
        onProgress,
      });
    } catch (err) {
      renderer?.fail();
      throw err;
    } finally {
      renderer?.close();
    }
    if (quiet) ctx.stdout.write(`${result.reference}\n`);
    else if (result.cached) ctx.stdout.write(`${result.reference} is up to date (cached)\n`);
    else
      ctx.stdout.write(
        `Pulled ${result.reference} (${result.manifestDigest})${result.source ? ` from ${result.source}` : ''}\n`,
      );
    return 0;
  } finally {
    await backend.close();
  }
}

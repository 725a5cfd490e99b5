/**
 * `msb pull [-q] [--platform P] [--policy if-missing|always|never] [--force] [--insecure]
 * [--ca-certs FILE]… REF` (docs/cli.md §5): Image.pullLocal with progress on stderr (docs/cli.md §4)
 * and the result line on stdout. The line says what happened: pulled (and from where), up to date
 * after asking the registry, or cached without asking it (the default policy never asks for a
 * cached tag).
 */
import { Image } from '../../api/image.js';
import type { PullPolicy, PullResult } from '../../api/types.js';
import type { PullEvent } from '../../pull/events.js';
import { parseReference } from '../../reference/reference.js';
import { localBackendFor } from '../backend.js';
import type { CommandSpec, ParsedArgs } from '../command.js';
import { UsageError, type CliContext } from '../context.js';
import { termSafe } from '../escape.js';
import { ProgressRenderer } from '../progress.js';
import { PLATFORM_FLAG, REMOTE_FLAGS, warn } from '../remote-flags.js';
import { markTeardown } from '../../util/profile.js';

const POLICIES = ['if-missing', 'always', 'never'] as const;

/** The result line (docs/cli.md §5). */
export function pullResultLine(r: PullResult): string {
  if (!r.cached) return `Pulled ${r.reference} (${r.manifestDigest})${r.source ? ` from ${termSafe(r.source)}` : ''}`;
  if (r.source === null) return `${r.reference} is cached; not checked against the registry (use --policy always)`;
  return `${r.reference} is up to date (checked against ${termSafe(r.source)})`;
}

async function run({ values, positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length !== 1)
    throw new UsageError(positionals.length ? `unexpected argument ${positionals[1]}` : 'missing REF', usage);
  const policy = values.policy as string | undefined;
  if (policy !== undefined && !(POLICIES as readonly string[]).includes(policy))
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
      else if (e.type === 'warning') warn(ctx, e.message);
    };
    let result: PullResult;
    try {
      result = await Image.pullLocal(backend, positionals[0]!, {
        ...(policy !== undefined ? { policy: policy as PullPolicy } : {}),
        ...(values.force === true ? { force: true } : {}),
        ...(values.platform !== undefined ? { platform: values.platform as string } : {}),
        ...(values.insecure === true ? { insecure: true } : {}),
        ...(values['ca-certs'] !== undefined ? { caCerts: values['ca-certs'] as string[] } : {}),
        signal: ctx.signal,
        onProgress,
      });
      markTeardown();
    } catch (err) {
      renderer?.fail();
      throw err;
    } finally {
      renderer?.close();
    }
    ctx.stdout.write(quiet ? `${result.reference}\n` : `${pullResultLine(result)}\n`);
    return 0;
  } finally {
    await backend.close();
  }
}

export const commands: CommandSpec[] = [
  {
    name: 'pull',
    aliases: ['image pull'],
    summary: 'Pull an image from a registry',
    synopsis:
      'pull [-q] [--platform P] [--policy if-missing|always|never] [--force] [--insecure]\n     [--ca-certs FILE]... REF',
    description:
      'Pulls REF into the local cache: progress on stderr, the result on stdout. With the default\npolicy a cached tag is used without asking the registry; --policy always asks whether it moved.',
    flags: [
      { name: 'quiet', short: 'q', type: 'boolean', help: 'print only the image reference (no progress)' },
      PLATFORM_FLAG,
      {
        name: 'policy',
        type: 'string',
        value: 'P',
        help: 'if-missing (default: use a cached tag as is), always (ask the registry whether the tag moved), never (cache only)',
        complete: POLICIES,
      },
      { name: 'force', type: 'boolean', help: 'download and rebuild every artifact of the image' },
      ...REMOTE_FLAGS,
    ],
    operands: 'other',
    run,
  },
];

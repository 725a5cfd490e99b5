/**
 * `msb image prune [-y|--yes] [--dry-run] [--format table|json] [--filter reference=GLOB]…
 * [--unused-for DUR] [--grace DUR]` (docs/cli.md §5): Image.prune.
 *
 * Confirmation: on a TTY (stdin) without `-y` it asks on stderr (the reference count comes from a
 * dry run); only `y`/`yes` continues. Without a TTY and without `-y` it exits 2. `--dry-run`
 * never asks. The report says what was removed, which pinned images were kept and by what, and
 * how many items another operation held (skipped, retried by the next prune). A report with
 * per-item errors exits 1. `--budget` enforces the size budget instead (prune-budget.ts).
 */
import { Image } from '../../api/image.js';
import { throwIfAborted } from '../../errors.js';
import type { ImagePruneReport, PruneOptions } from '../../api/types.js';
import type { LocalBackend } from '../../api/backend.js';
import { withLocalBackend } from '../backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec, type ParsedArgs } from '../command.js';
import { UsageError, type CliContext } from '../context.js';
import { termSafe } from '../escape.js';
import { formatSize, showDigest, writeJson } from '../format.js';

/** Reads one line from `stdin` (the prompt answer); an abort (SIGINT) ends the wait. */
function readLine(stdin: NodeJS.ReadableStream, signal: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.off('end', done);
      signal.removeEventListener('abort', done);
      stdin.pause();
      resolve(buf.split('\n')[0] ?? '');
    };
    const onData = (c: Buffer | string) => {
      buf += c.toString();
      if (buf.includes('\n')) done();
    };
    stdin.on('data', onData);
    stdin.on('end', done);
    signal.addEventListener('abort', done, { once: true });
    stdin.resume();
  });
}

function hasAnything(r: ImagePruneReport): boolean {
  const n =
    r.imageRefsRemoved +
    r.manifestsRemoved +
    r.layersRemoved +
    r.fsmetaRemoved +
    r.vmdkRemoved +
    r.tempRemoved +
    r.orphansRemoved +
    r.skippedInUse;
  return n > 0 || r.bytesReclaimed !== null || r.errors.length > 0;
}

/** `Kept (pinned): …` lines: each pinned image, its references and its pins. */
function keptLines(r: ImagePruneReport, indent: string): string {
  if (r.keptPinned.length === 0) return '';
  let out = `${indent}Kept ${r.keptPinned.length} pinned image(s):\n`;
  for (const k of r.keptPinned) {
    const names = k.references.length ? k.references.join(', ') : '<none>';
    const pins = k.pins.map((p) => `${p.kind} '${p.name}'`).join(', ');
    out += `${indent}  ${termSafe(names)} (${showDigest(k.manifestDigest)}): pinned by ${termSafe(pins)}\n`;
  }
  return out;
}

function dryRunText(r: ImagePruneReport): string {
  let out = 'Would remove:\n';
  for (const x of r.removed.references) out += `  reference ${termSafe(x)}\n`;
  for (const x of r.removed.manifests) out += `  manifest  ${x}\n`;
  for (const x of r.removed.layers) out += `  layer     ${x}\n`;
  if (r.tempRemoved) out += `  ${r.tempRemoved} temporary file(s)\n`;
  if (r.orphansRemoved) out += `  ${r.orphansRemoved} orphaned artifact file(s)\n`;
  return out + keptLines(r, '') + `Would reclaim ${formatSize(r.bytesReclaimed ?? 0)}\n`;
}

function realRunText(r: ImagePruneReport): string {
  let out = '';
  for (const x of r.removed.references) out += `Untagged: ${termSafe(x)}\n`;
  for (const x of r.removed.manifests) out += `Deleted: ${x}\n`;
  for (const x of r.removed.layers) out += `Deleted: ${x}\n`;
  out +=
    `References removed: ${r.imageRefsRemoved}\nManifests removed: ${r.manifestsRemoved}\n` +
    `Layers removed: ${r.layersRemoved}\nfsmeta files removed: ${r.fsmetaRemoved}\nVMDK files removed: ${r.vmdkRemoved}\n` +
    `Temporary files removed: ${r.tempRemoved}\nOrphaned files removed: ${r.orphansRemoved}\n`;
  if (r.skippedInUse)
    out += `Skipped (held by another running operation; the next prune retries them): ${r.skippedInUse}\n`;
  out += keptLines(r, '');
  return out + (r.bytesReclaimed === null ? 'Reclaimed: unknown\n' : `Reclaimed ${formatSize(r.bytesReclaimed)}\n`);
}

/** PruneOptions from the flags (UsageError on a bad filter or duration). */
function pruneOptions(values: ParsedArgs['values'], usage: string, signal: AbortSignal): PruneOptions {
  const globs: string[] = [];
  for (const f of (values.filter as string[] | undefined) ?? []) {
    if (!f.startsWith('reference=') || f.length === 'reference='.length)
      throw new UsageError(`unsupported filter ${JSON.stringify(f)} (expected reference=GLOB)`, usage);
    globs.push(f.slice('reference='.length));
  }
  for (const k of ['unused-for', 'grace'] as const) {
    const v = values[k];
    if (typeof v === 'string' && !/^\d+(s|m|h|d)$/.test(v))
      throw new UsageError(`--${k} takes <int>(s|m|h|d), not ${JSON.stringify(v)}`, usage);
  }
  return {
    ...(globs.length ? { filter: { reference: globs } } : {}),
    ...(typeof values['unused-for'] === 'string' ? { unusedFor: values['unused-for'] } : {}),
    ...(typeof values.grace === 'string' ? { tempGrace: values.grace } : {}),
    signal,
  };
}

/** Asks on a TTY; false when the user did not say yes. Exit 2 (by the caller) without a TTY. */
async function confirm(b: LocalBackend, opts: PruneOptions, ctx: CliContext): Promise<boolean> {
  const preview = await Image.pruneLocal(b, { ...opts, dryRun: true });
  const n = preview.imageRefsRemoved;
  const restricted = opts.filter !== undefined || opts.unusedFor !== undefined;
  ctx.stderr.write(
    restricted
      ? `This removes ${n} references matching the filters, and the images and layers only they use. Continue? [y/N] `
      : `This removes every image not used by a sandbox or snapshot (${n} references). Continue? [y/N] `,
  );
  const answer = (await readLine(ctx.stdin, ctx.signal)).trim().toLowerCase();
  return answer === 'y' || answer === 'yes';
}

async function run({ values, positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
  const format = formatValue(values.format, usage);
  if (values.budget === true) {
    for (const flag of ['filter', 'unused-for', 'grace'] as const)
      if (values[flag] !== undefined) throw new UsageError(`--budget cannot be combined with --${flag}`, usage);
    const { runBudget } = await import('./prune-budget.js');
    return runBudget(ctx, format, values['dry-run'] === true);
  }
  const opts = pruneOptions(values, usage, ctx.signal);
  const dryRun = values['dry-run'] === true;
  return withLocalBackend(ctx, 'msb image prune', async (b) => {
    if (!dryRun && values.yes !== true) {
      if (!ctx.stdin.isTTY) {
        ctx.stderr.write('msb: refusing to prune without confirmation; pass -y\n');
        return 2;
      }
      if (!(await confirm(b, opts, ctx))) {
        throwIfAborted(ctx.signal); // SIGINT at the prompt: 130, not 'Aborted.'
        ctx.stderr.write('Aborted.\n');
        return 0;
      }
    }
    const r = await Image.pruneLocal(b, { ...opts, dryRun });
    if (format === 'json') writeJson(ctx, r);
    else if (!hasAnything(r)) ctx.stdout.write('Nothing to prune.\n' + keptLines(r, ''));
    else ctx.stdout.write(dryRun ? dryRunText(r) : realRunText(r));
    if (format !== 'json')
      for (const e of r.errors)
        ctx.stderr.write(
          termSafe(`msb: error: ${e.kind} ${e.item}${e.path ? ` (${e.path})` : ''}: ${e.code}: ${e.message}`) + '\n',
        );
    return r.errors.length ? 1 : 0;
  });
}

export const commands: CommandSpec[] = [
  {
    name: 'image prune',
    summary: 'Remove images not used by a sandbox or snapshot',
    synopsis:
      'image prune [-y|--yes] [--dry-run] [--format table|json] [--filter reference=GLOB]...\n            [--unused-for DUR] [--grace DUR]\nimage prune --budget [--dry-run] [--format table|json]',
    description: `Removes every image no sandbox or snapshot pins, then unused layers, old temporary files and
orphaned artifacts. The report lists the pinned images kept, with their pins. DUR is
<int>(s|m|h|d). GLOB is docker's reference filter: a name without a tag matches every tag
(reference=busybox), * and ? never cross /, [a-z] classes and \\ escapes as in Go's path.Match.

With --budget, enforce the cache's size budget (cache.max_bytes, cache.high_watermark,
cache.low_watermark in config.json) instead: when the cache is above its high mark, evict images
no sandbox, snapshot or running operation holds, least recently used first, until it is under the
low mark. It never asks for confirmation.`,
    flags: [
      { name: 'yes', short: 'y', type: 'boolean', help: 'do not ask for confirmation' },
      { name: 'dry-run', type: 'boolean', help: 'report what would be removed; delete nothing' },
      { ...FORMAT_FLAG, help: 'table (default) or json (the ImagePruneReport)' },
      {
        name: 'filter',
        type: 'string',
        multiple: true,
        value: 'reference=GLOB',
        help: 'only references matching GLOB (familiar or canonical form, or their name); repeatable',
      },
      { name: 'unused-for', type: 'string', value: 'DUR', help: 'only references not used for DUR' },
      {
        name: 'grace',
        type: 'string',
        value: 'DUR',
        help: 'minimum age of temporary files to delete (default: config, else 1h)',
      },
      {
        name: 'budget',
        type: 'boolean',
        help: 'enforce the size budget (see above); not with --filter, --unused-for, --grace',
      },
    ],
    operands: 'none',
    run,
  },
];

/**
 * `msb image prune [-y|--yes] [--dry-run] [--format table|json] [--filter reference=GLOB]…
 * [--unused-for DUR] [--grace DUR]` (docs/cli.md §5): Image.prune.
 *
 * Confirmation: on a TTY (stdin) without `-y` it asks on stderr (the reference count comes from a
 * dry run); only `y`/`yes` continues. Without a TTY and without `-y` it exits 2. `--dry-run`
 * never asks. A report with per-item errors exits 1.
 */
import { Image } from '../../api/image.js';
import type { ImagePruneReport, PruneOptions } from '../../api/types.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { formatOption, formatSize, parseFlags, writeJson } from '../format.js';

export const usage = `Usage: msb image prune [-y|--yes] [--dry-run] [--format table|json]
                       [--filter reference=GLOB]... [--unused-for DUR] [--grace DUR]

Remove every image not used by a sandbox or snapshot, then unused layers, old temporary files
and orphaned artifacts. DUR is <int>(s|m|h|d).

Flags:
  -y, --yes                 do not ask for confirmation
      --dry-run             report what would be removed; delete nothing
      --format F            table (default) or json (the ImagePruneReport)
      --filter reference=G  only references matching glob G (familiar or canonical form); repeatable
      --unused-for DUR      only references not used for DUR
      --grace DUR           minimum age of temporary files to delete (default: config, else 1h)
`;

/** Reads one line from `stdin` (the prompt answer). */
function readLine(stdin: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.off('end', done);
      stdin.pause();
      resolve(buf.split('\n')[0] ?? '');
    };
    const onData = (c: Buffer | string) => {
      buf += c.toString();
      if (buf.includes('\n')) done();
    };
    stdin.on('data', onData);
    stdin.on('end', done);
    stdin.resume();
  });
}

function hasAnything(r: ImagePruneReport): boolean {
  return (
    r.imageRefsRemoved +
      r.manifestsRemoved +
      r.layersRemoved +
      r.fsmetaRemoved +
      r.vmdkRemoved +
      r.tempRemoved +
      r.orphansRemoved +
      r.skippedInUse >
      0 ||
    r.bytesReclaimed !== null ||
    r.errors.length > 0
  );
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      yes: { kind: 'bool', names: ['-y', '--yes'] },
      dryRun: { kind: 'bool', names: ['--dry-run'] },
      format: { kind: 'value', names: ['--format'] },
      filter: { kind: 'multi', names: ['--filter'] },
      unusedFor: { kind: 'value', names: ['--unused-for'] },
      grace: { kind: 'value', names: ['--grace'] },
    },
    usage,
  );
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
  const format = formatOption(values.format, usage);
  const globs: string[] = [];
  for (const f of (values.filter as string[] | undefined) ?? []) {
    if (!f.startsWith('reference=') || f.length === 'reference='.length)
      throw new UsageError(`unsupported filter ${JSON.stringify(f)} (expected reference=GLOB)`, usage);
    globs.push(f.slice('reference='.length));
  }
  const durRe = /^\d+(s|m|h|d)$/;
  for (const k of ['unusedFor', 'grace'] as const) {
    const v = values[k];
    if (typeof v === 'string' && !durRe.test(v))
      throw new UsageError(
        `--${k === 'grace' ? 'grace' : 'unused-for'} takes <int>(s|m|h|d), not ${JSON.stringify(v)}`,
        usage,
      );
  }
  const restricted = globs.length > 0 || values.unusedFor !== undefined;
  const opts: PruneOptions = {
    ...(globs.length ? { filter: { reference: globs } } : {}),
    ...(typeof values.unusedFor === 'string' ? { unusedFor: values.unusedFor } : {}),
    ...(typeof values.grace === 'string' ? { tempGrace: values.grace } : {}),
    signal: ctx.signal,
  };
  const dryRun = values.dryRun === true;
  return withLocalBackend(ctx, 'msb image prune', async (b) => {
    if (!dryRun && values.yes !== true) {
      if (!ctx.stdin.isTTY) {
        ctx.stderr.write('msb: refusing to prune without confirmation; pass -y\n');
        return 2;
      }
      const preview = await Image.pruneLocal(b, { ...opts, dryRun: true });
      const n = preview.imageRefsRemoved;
      ctx.stderr.write(
        restricted
          ? `This removes ${n} references matching the filters, and the images and layers only they use. Continue? [y/N] `
          : `This removes every image not used by a sandbox or snapshot (${n} references). Continue? [y/N] `,
      );
      const answer = (await readLine(ctx.stdin)).trim().toLowerCase();
      if (answer !== 'y' && answer !== 'yes') {
        ctx.stderr.write('Aborted.\n');
        return 0;
      }
    }
    const r = await Image.pruneLocal(b, { ...opts, dryRun });
    if (format === 'json') {
      writeJson(ctx, r);
      return r.errors.length ? 1 : 0;
    }
    if (!hasAnything(r)) {
      ctx.stdout.write('Nothing to prune.\n');
      return 0;
    }
    if (dryRun) {
      ctx.stdout.write('Would remove:\n');
      for (const x of r.removed.references) ctx.stdout.write(`  reference ${x}\n`);
      for (const x of r.removed.manifests) ctx.stdout.write(`  manifest  ${x}\n`);
      for (const x of r.removed.layers) ctx.stdout.write(`  layer     ${x}\n`);
      if (r.tempRemoved) ctx.stdout.write(`  ${r.tempRemoved} temporary file(s)\n`);
      if (r.orphansRemoved) ctx.stdout.write(`  ${r.orphansRemoved} orphaned artifact file(s)\n`);
      ctx.stdout.write(`Would reclaim ${formatSize(r.bytesReclaimed ?? 0)}\n`);
      return 0;
    }
    for (const x of r.removed.references) ctx.stdout.write(`Untagged: ${x}\n`);
    for (const x of r.removed.manifests) ctx.stdout.write(`Deleted: ${x}\n`);
    for (const x of r.removed.layers) ctx.stdout.write(`Deleted: ${x}\n`);
    ctx.stdout.write(
      `References removed: ${r.imageRefsRemoved}\nManifests removed: ${r.manifestsRemoved}\n` +
        `Layers removed: ${r.layersRemoved}\nfsmeta files removed: ${r.fsmetaRemoved}\nVMDK files removed: ${r.vmdkRemoved}\n` +
        `Temporary files removed: ${r.tempRemoved}\nOrphaned files removed: ${r.orphansRemoved}\n` +
        (r.skippedInUse ? `Skipped (in use): ${r.skippedInUse}\n` : ''),
    );
    ctx.stdout.write(
      r.bytesReclaimed === null ? 'Reclaimed: unknown\n' : `Reclaimed ${formatSize(r.bytesReclaimed)}\n`,
    );
    for (const e of r.errors)
      ctx.stderr.write(`msb: error: ${e.kind} ${e.item}${e.path ? ` (${e.path})` : ''}: ${e.code}: ${e.message}\n`);
    return r.errors.length ? 1 : 0;
  });
}

/**
 * `msb image prune --budget [--dry-run] [--format table|json]` (docs/cli.md §11, docs/storage.md §11):
 * Image.prune({budget: true}). Prints where the cache stands against its budget, then the evicted
 * references and what was reclaimed; a warning when pinned or in-use images alone keep the cache
 * over budget. Per-item errors exit 1, like prune.
 */
import { Image } from '../../api/image.js';
import type { BudgetStatus } from '../../api/types.js';
import type { CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { termSafe } from '../escape.js';
import { formatSize, writeJson } from '../format.js';

/** One line: the budget and how far the cache is from it (also `msb image df`). */
export function budgetLine(b: BudgetStatus | null): string {
  if (!b?.configured) return 'Budget: none (set cache.max_bytes or cache.high_watermark in config.json)';
  const marks: string[] = [];
  if (b.maxBytes !== null) marks.push(`max ${formatSize(b.maxBytes)}`);
  if (b.highWatermark !== null)
    marks.push(
      `file system ${b.filesystem?.usedPercent ?? '?'}% used, watermarks ${b.highWatermark}%/${b.lowWatermark}%`,
    );
  const where =
    b.overBytes > 0
      ? `${formatSize(b.overBytes)} over the high mark (${formatSize(b.toFreeBytes)} to free)`
      : `${formatSize(b.headroomBytes)} below the high mark`;
  return `Budget: ${marks.join('; ')}; cache ${formatSize(b.cacheBytes)}, ${where}`;
}

export async function runBudget(ctx: CliContext, format: 'table' | 'json', dryRun: boolean): Promise<number> {
  const r = await withLocalBackend(ctx, 'msb image prune', (b) =>
    Image.pruneLocal(b, { budget: true, dryRun, signal: ctx.signal }),
  );
  if (format === 'json') {
    writeJson(ctx, r);
    return r.errors.length ? 1 : 0;
  }
  const b = r.budget ?? null;
  ctx.stdout.write(`${budgetLine(b)}\n`);
  for (const x of b?.evicted ?? []) ctx.stdout.write(`${dryRun ? 'Would evict' : 'Evicted'}: ${termSafe(x)}\n`);
  if (r.bytesReclaimed !== null)
    ctx.stdout.write(`${dryRun ? 'Would reclaim' : 'Reclaimed'} ${formatSize(r.bytesReclaimed)}\n`);
  if (b && !b.enough)
    ctx.stderr.write(
      `msb: warning: images in use hold ${formatSize(b.pinnedBytes)}; the cache stays over its budget\n`,
    );
  for (const e of r.errors)
    ctx.stderr.write(
      termSafe(`msb: error: ${e.kind} ${e.item}${e.path ? ` (${e.path})` : ''}: ${e.code}: ${e.message}`) + '\n',
    );
  return r.errors.length ? 1 : 0;
}

/**
 * `msb image df [-v] [--format table|json]` (docs/cli.md §5): Image.diskUsage. One row per type, then
 * TOTAL and RECLAIMABLE (= `msb image prune --dry-run`'s bytes, by construction). The `images`
 * row counts manifests and sizes the artifacts they use (layer, fsmeta and VMDK files with an
 * index row, each file once). A last line shows the size budget and how far the cache is from it
 * (docs/storage.md §11).
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { formatSize, showDigest, table, writeJson } from '../format.js';
import { budgetLine } from './prune-budget.js';

export const commands: CommandSpec[] = [
  {
    name: 'image df',
    summary: 'Show cache disk usage',
    synopsis: 'image df [-v] [--format table|json]',
    description:
      'Allocated bytes per type (images, layers, fsmeta, vmdk, temp, orphans), TOTAL and RECLAIMABLE\n(what msb image prune would free), then the size budget and how far the cache is from it. An\nimage no reference names shows as <none>; msb image inspect accepts its digest.',
    flags: [
      {
        name: 'verbose',
        short: 'v',
        type: 'boolean',
        help: 'add one row per image (REFERENCES DIGEST SIZE SHARED UNIQUE PINNED)',
      },
      { ...FORMAT_FLAG, help: 'table (default) or json (the DiskUsageReport)' },
    ],
    operands: 'none',
    async run({ values, positionals, usage }, ctx) {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`, usage);
      const format = formatValue(values.format, usage);
      const r = await withLocalBackend(ctx, 'msb image df', (b) => Image.diskUsageLocal(b));
      if (format === 'json') {
        writeJson(ctx, r);
        return 0;
      }
      const rows: string[][] = [
        ['images', String(r.images.length), formatSize(r.layers.bytes + r.fsmeta.bytes + r.vmdk.bytes)],
        ['layers', String(r.layers.count), formatSize(r.layers.bytes)],
        ['fsmeta', String(r.fsmeta.count), formatSize(r.fsmeta.bytes)],
        ['vmdk', String(r.vmdk.count), formatSize(r.vmdk.bytes)],
        ['temp', String(r.temp.count), formatSize(r.temp.bytes)],
        ['orphans', String(r.orphans.count), formatSize(r.orphans.bytes)],
        ['TOTAL', '', formatSize(r.totalBytes)],
        ['RECLAIMABLE', '', formatSize(r.reclaimableBytes ?? 0)],
      ];
      ctx.stdout.write(table(['TYPE', 'COUNT', 'SIZE'], rows));
      ctx.stdout.write(`${budgetLine(r.budget)}\n`);
      if (values.verbose) {
        ctx.stdout.write('\n');
        ctx.stdout.write(
          table(
            ['REFERENCES', 'DIGEST', 'SIZE', 'SHARED', 'UNIQUE', 'PINNED'],
            r.images.map((i) => [
              i.references.length ? i.references.join(',') : '<none>',
              showDigest(i.manifestDigest),
              formatSize(i.sizeBytes),
              formatSize(i.sharedBytes),
              formatSize(i.uniqueBytes),
              i.pinned ? 'yes' : 'no',
            ]),
          ),
        );
      }
      return 0;
    },
  },
];

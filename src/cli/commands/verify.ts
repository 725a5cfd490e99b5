/**
 * `msb image verify [IMAGE…] [--repair] [--format table|json]` (docs/cli.md §11, docs/storage.md §10):
 * Image.verify. The table form prints one line per step (checked, findings, time), then one line
 * per finding (with `--repair`, its outcome), then a summary. Exit 0 when nothing remains, 1 when
 * a finding remains (after the repair, with `--repair`); an unknown REF exits 3.
 */
import { Image } from '../../api/image.js';
import type { VerifyFinding, VerifyReport } from '../../api/types.js';
import type { CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec } from '../command.js';
import { termSafe } from '../escape.js';
import { formatSize, table, writeJson } from '../format.js';

function findingRow(f: VerifyFinding, repair: boolean): string[] {
  // A finding can name a file someone dropped into the cache: never let its name drive the terminal.
  const row = [f.kind, f.artifact, termSafe(f.message)];
  if (repair)
    row.push(f.repair ? termSafe(`${f.repair.result}${f.repair.message ? `: ${f.repair.message}` : ''}`) : '-');
  return row;
}

function printTable(ctx: CliContext, r: VerifyReport): void {
  ctx.stdout.write(
    table(
      ['STEP', 'CHECKED', 'FINDINGS', 'TIME'],
      r.steps.map((s) => [s.name, String(s.checked), String(s.findings), `${s.durationMs}ms`]),
    ),
  );
  if (r.findings.length) {
    ctx.stdout.write('\n');
    const head = ['KIND', 'ARTIFACT', 'FINDING'];
    if (r.repair) head.push('REPAIR');
    ctx.stdout.write(
      table(
        head,
        r.findings.map((f) => findingRow(f, r.repair)),
      ),
    );
  }
  const c = r.counts;
  ctx.stdout.write(
    `\n${c.layers} layers, ${c.fsmeta} fsmeta, ${c.vmdk} VMDK checked; ${formatSize(c.bytesHashed)} hashed` +
      (c.digestsRecorded ? `; ${c.digestsRecorded} digests recorded` : '') +
      '\n',
  );
  if (r.repair && c.findings)
    ctx.stdout.write(`Repaired ${c.fixed} of ${c.findings}; ${c.unfixable} unfixable, ${c.failed} failed\n`);
  ctx.stdout.write(r.ok ? 'Cache OK\n' : `${r.remaining.length} finding(s) remain\n`);
}

export const commands: CommandSpec[] = [
  {
    name: 'image verify',
    summary: 'Check the cache (and with --repair, fix it)',
    synopsis: 'image verify [IMAGE...] [--repair] [--format table|json]',
    description:
      "Checks the cache: every indexed layer, fsmeta and VMDK file exists, is a regular file of its\nrecorded length, passes the structure checks and matches its recorded content digest; no file in\nthe cache directories lacks an index row; no stale temporary file is left; the index passes\nSQLite's checks. With IMAGEs, only those images' artifacts are checked. Exits 0 when clean, 1\nwith findings (after the repair, with --repair).",
    flags: [
      {
        name: 'repair',
        type: 'boolean',
        help: 'fix what can be fixed, then check again: re-fetch a bad layer from the registry its image came from, rebuild fsmeta and the VMDK from the layer files, remove orphans, stale temporary files and foreign files',
      },
      {
        ...FORMAT_FLAG,
        help: "table (default) or json (the VerifyReport: each finding's kind, artifact, item, path, expected, actual, message and repair outcome)",
      },
    ],
    operands: 'image',
    async run({ values, positionals, usage }, ctx) {
      const format = formatValue(values.format, usage);
      const r = await withLocalBackend(ctx, 'msb image verify', (b) =>
        Image.verifyLocal(b, positionals, { repair: values.repair === true, signal: ctx.signal }),
      );
      if (format === 'json') writeJson(ctx, r);
      else printTable(ctx, r);
      return r.ok ? 0 : 1;
    },
  },
];

/**
 * `msb image inspect [--format json] REF…` (docs/cli.md §5): Image.inspect per REF. Every argument is
 * processed; failures are reported one per line and the exit status is the first failure's. JSON
 * is an array of the ImageDetail objects that were found (docker prints the found ones too).
 */
import { Image } from '../../api/image.js';
import type { ImageDetail } from '../../api/types.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { exitCodeFor, reportError } from '../main.js';
import {
  formatOption,
  formatSize,
  parseFlags,
  platformString,
  relativeTime,
  showDigest,
  table,
  writeJson,
} from '../format.js';

export const usage = `Usage: msb image inspect [--format table|json] REF...

Show details of one or more images: references, digest, platform, size, times, config, layers,
artifact paths (VMDK, fsmeta, layer EROFS files) and pins.

Flags:
      --format F     table (default, a readable summary) or json (an array of ImageDetail objects)
`;

function summary(d: ImageDetail, now: number): string {
  const h = d.handle;
  const c = d.config;
  const lines = [
    `Reference:     ${h.reference}`,
    `Canonical:     ${h.canonicalReference}`,
    `Digest:        ${h.manifestDigest}`,
    `Platform:      ${platformString(h)}`,
    `Size:          ${formatSize(h.sizeBytes)}`,
    `Created:       ${h.createdAt.toISOString()} (${relativeTime(h.createdAt, now)})`,
    `Last used:     ${h.lastUsedAt.toISOString()} (${relativeTime(h.lastUsedAt, now)})`,
    'Config:',
  ];
  if (!c) lines.push('  (the stored config cannot be parsed)');
  else {
    const j = (v: unknown) => (v === null ? '-' : JSON.stringify(v));
    lines.push(`  Digest:      ${c.digest}`);
    lines.push(`  Env:         ${c.env.length ? c.env[0] : '-'}`);
    for (const e of c.env.slice(1)) lines.push(`               ${e}`);
    lines.push(
      `  Cmd:         ${j(c.cmd)}`,
      `  Entrypoint:  ${j(c.entrypoint)}`,
      `  WorkingDir:  ${c.workingDir ?? '-'}`,
      `  User:        ${c.user ?? '-'}`,
      `  StopSignal:  ${c.stopSignal ?? '-'}`,
    );
    const labels = Object.entries(c.labels ?? {});
    lines.push(`  Labels:      ${labels.length ? `${labels[0]![0]}=${labels[0]![1]}` : '-'}`);
    for (const [k, v] of labels.slice(1)) lines.push(`               ${k}=${v}`);
  }
  lines.push('Layers:');
  const t = table(
    ['POS', 'DIFF_ID', 'BLOB', 'MEDIA TYPE', 'COMPRESSED', 'EROFS'],
    d.layers.map((l) => [
      String(l.position),
      showDigest(l.diffId),
      showDigest(l.blobDigest),
      l.mediaType ?? '-',
      formatSize(l.compressedSizeBytes),
      formatSize(l.erofsSizeBytes),
    ]),
  );
  lines.push(
    ...t
      .trimEnd()
      .split('\n')
      .map((s) => `  ${s}`),
  );
  lines.push('Artifacts:', `  VMDK:        ${d.artifacts.vmdkPath}`, `  fsmeta:      ${d.artifacts.fsmetaPath}`);
  for (const l of d.artifacts.layers)
    lines.push(`  layer ${l.position}:${' '.repeat(Math.max(1, 6 - String(l.position).length))}${l.path}`);
  lines.push(`Pins:          ${d.pins.length ? d.pins.map((p) => `${p.kind} '${p.name}'`).join(', ') : '-'}`);
  return lines.join('\n') + '\n';
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, { format: { kind: 'value', names: ['--format'] } }, usage);
  const format = formatOption(values.format, usage);
  if (positionals.length === 0) throw new UsageError('msb image inspect needs at least one REF', usage);
  const found: ImageDetail[] = [];
  let status = 0;
  await withLocalBackend(ctx, 'msb image inspect', async (b) => {
    for (const ref of positionals) {
      try {
        found.push(await Image.inspectLocal(b, ref));
      } catch (err) {
        if (exitCodeFor(err, ctx.signal) >= 128) throw err;
        const s = reportError(err, ctx);
        if (status === 0) status = s;
      }
    }
  });
  if (format === 'json') writeJson(ctx, found);
  else {
    const now = Date.now();
    ctx.stdout.write(found.map((d) => summary(d, now)).join('\n'));
  }
  return status;
}

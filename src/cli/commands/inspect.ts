/**
 * `msb image inspect [--format json] IMAGE…` (docs/cli.md §5): Image.inspect per IMAGE (a reference,
 * a digest or a short image ID). Every argument is processed; failures are reported one per line
 * and the exit status is the first failure's. JSON is an array of the ImageDetail objects that
 * were found (docker prints the found ones too). The summary comes from image content (Env,
 * Labels, User, …), so every line is escaped for the terminal; JSON is exact.
 */
import { Image } from '../../api/image.js';
import type { ImageDetail } from '../../api/types.js';
import { withLocalBackend } from '../backend.js';
import { FORMAT_FLAG, formatValue, type CommandSpec } from '../command.js';
import { UsageError } from '../context.js';
import { termSafe } from '../escape.js';
import { formatSize, platformString, relativeTime, showDigest, table, writeJson } from '../format.js';
import { forEachArgument } from '../report.js';

function summary(d: ImageDetail, now: number): string {
  const h = d.handle;
  const c = d.config;
  const lines = [
    `Reference:     ${h.reference === h.manifestDigest ? '<none>' : h.reference}`,
    `Canonical:     ${h.reference === h.manifestDigest ? '-' : h.canonicalReference}`,
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
  return lines.map(termSafe).join('\n') + '\n';
}

export const commands: CommandSpec[] = [
  {
    name: 'image inspect',
    summary: 'Show details of one or more images',
    synopsis: 'image inspect [--format table|json] IMAGE...',
    description:
      'Shows references, digest, platform, size, times, config, layers, artifact paths (VMDK, fsmeta,\nlayer EROFS files) and pins. IMAGE is a reference, a digest (sha256: optional), a short image\nID (4+ hex digits, as msb images shows) or REPO@sha256:… of any cached manifest of REPO.',
    flags: [{ ...FORMAT_FLAG, help: 'table (default, a readable summary) or json (an array of ImageDetail objects)' }],
    operands: 'image',
    async run({ values, positionals, usage }, ctx) {
      const format = formatValue(values.format, usage);
      if (positionals.length === 0) throw new UsageError('msb image inspect needs at least one IMAGE', usage);
      const found: ImageDetail[] = [];
      const status = await withLocalBackend(ctx, 'msb image inspect', (b) =>
        forEachArgument(ctx, positionals, async (ref) => {
          found.push(await Image.inspectLocal(b, ref));
        }),
      );
      if (format === 'json') writeJson(ctx, found);
      else {
        const now = Date.now();
        ctx.stdout.write(found.map((d) => summary(d, now)).join('\n'));
      }
      return status;
    },
  },
];

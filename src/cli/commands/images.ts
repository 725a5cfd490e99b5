/**
 * `msb images [-a] [-q] [--digests] [--no-trunc] [--filter K=V]... [--format F] [REPO[:TAG]]`
 * (docs/cli.md §5): Image.list, newest first. `-a` adds the images no reference names as `<none>`
 * rows; filters are src/cli/image-filters.ts; `--format` is table, json or a template
 * (src/cli/template.ts). The plain listing stays one query plus one write (it feeds completion).
 */
import { Image } from '../../api/image.js';
import type { ImageHandle } from '../../store/handle.js';
import { withLocalBackend } from '../backend.js';
import type { CommandSpec, ParsedArgs } from '../command.js';
import { UsageError, type CliContext } from '../context.js';
import { termSafe } from '../escape.js';
import { formatSize, platformString, relativeTime, showDigest, table, writeJson } from '../format.js';
import { applyImageFilters, hasFilters, isUntagged, parseImageFilters } from '../image-filters.js';
import { compileTemplate, type TemplateField } from '../template.js';

const shown = (h: ImageHandle) => (isUntagged(h) ? '<none>' : h.reference);

/** The template fields: every key of the JSON form, plus docker's names. */
export const IMAGE_FIELDS: Record<string, TemplateField<ImageHandle>> = {
  Reference: { header: 'REFERENCE', get: shown },
  CanonicalReference: { header: 'CANONICAL REFERENCE', get: (h) => h.canonicalReference },
  ManifestDigest: { header: 'MANIFEST DIGEST', get: (h) => h.manifestDigest },
  Architecture: { header: 'ARCHITECTURE', get: (h) => h.architecture },
  Os: { header: 'OS', get: (h) => h.os },
  Variant: { header: 'VARIANT', get: (h) => h.variant },
  LayerCount: { header: 'LAYERS', get: (h) => h.layerCount },
  SizeBytes: { header: 'SIZE BYTES', get: (h) => h.sizeBytes },
  CreatedAt: { header: 'CREATED AT', get: (h) => h.createdAt.toISOString() },
  LastUsedAt: { header: 'LAST USED AT', get: (h) => h.lastUsedAt.toISOString() },
  Digest: { header: 'DIGEST', get: (h) => h.manifestDigest },
  ID: { header: 'IMAGE ID', get: (h) => showDigest(h.manifestDigest) },
  Repository: {
    header: 'REPOSITORY',
    get: (h) => (isUntagged(h) ? '<none>' : h.reference.replace(/(@[^@]*)$/, '').replace(/:[^:/]*$/, '')),
  },
  Tag: {
    header: 'TAG',
    get: (h) => (isUntagged(h) ? '<none>' : (/:([^:/@]+)(@|$)/.exec(h.reference)?.[1] ?? '<none>')),
  },
  Platform: { header: 'PLATFORM', get: (h) => platformString(h) },
  Size: { header: 'SIZE', get: (h) => formatSize(h.sizeBytes) },
  CreatedSince: { header: 'CREATED', get: (h) => relativeTime(h.createdAt) },
  LastUsedSince: { header: 'LAST USED', get: (h) => relativeTime(h.lastUsedAt) },
};

function tableOf(list: readonly ImageHandle[], fullDigests: boolean): string {
  const now = Date.now();
  // Per-manifest cells and per-second relative times repeat across rows: compute each once, which
  // keeps `msb images` over 10,000 refs well inside its budget (allocation, not I/O, dominates).
  const perManifest = new Map<string, string[]>();
  const rel = new Map<number, string>();
  const ago = (d: Date) => {
    const k = Math.floor((now - d.getTime()) / 1000);
    let v = rel.get(k);
    if (v === undefined) {
      v = relativeTime(d, now);
      rel.set(k, v);
    }
    return v;
  };
  return table(
    ['REFERENCE', 'DIGEST', 'PLATFORM', 'LAYERS', 'SIZE', 'CREATED', 'LAST USED'],
    list.map((h) => {
      let m = perManifest.get(h.manifestDigest);
      if (!m) {
        m = [
          showDigest(h.manifestDigest, fullDigests),
          platformString(h),
          String(h.layerCount),
          formatSize(h.sizeBytes),
        ];
        perManifest.set(h.manifestDigest, m);
      }
      return [shown(h), m[0]!, m[1]!, m[2]!, m[3]!, ago(h.createdAt), ago(h.lastUsedAt)];
    }),
  );
}

async function run({ values, positionals, usage }: ParsedArgs, ctx: CliContext): Promise<number> {
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`, usage);
  const format = (values.format as string | undefined) ?? 'table';
  const template =
    format === 'table' || format === 'json' ? null : compileTemplate(format, IMAGE_FIELDS, (h) => h.toJSON(), usage);
  const filters = parseImageFilters((values.filter as string[] | undefined) ?? [], positionals, usage);
  const all = values.all === true || filters.dangling === true;
  const list = await withLocalBackend(ctx, 'msb images', async (b) => {
    const l = await Image.listLocal(b, { all });
    return hasFilters(filters) ? applyImageFilters(b, l, filters, ctx.signal) : l;
  });
  if (format === 'json') writeJson(ctx, list);
  else if (template) ctx.stdout.write(template.render(list));
  else if (values.quiet) ctx.stdout.write(list.map((h) => `${termSafe(h.reference)}\n`).join(''));
  else ctx.stdout.write(tableOf(list, values['no-trunc'] === true || values.digests === true));
  return 0;
}

export const commands: CommandSpec[] = [
  {
    name: 'images',
    aliases: ['image ls'],
    summary: 'List cached images',
    synopsis: 'images [-a] [-q] [--digests] [--no-trunc] [--filter KEY=VALUE]... [--format F] [REPO[:TAG]]',
    description: `Newest first. REPO[:TAG] lists only the matching references (like --filter reference=).
DIGEST is the manifest digest, the image ID that inspect, rmi, tag and save accept (4+ hex digits
are enough when unique).

Filters (docker's keys): reference=GLOB (a name without a tag matches every tag; * does not cross
/), dangling=true|false (images no reference names), before=IMAGE, since=IMAGE (created before or
after IMAGE), label=KEY or label=KEY=VALUE.

--format F: table (default), json (an array of ImageHandle objects), or a template such as
'{{.Reference}} {{.Digest}}' or 'table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}'. Fields: the keys of
the JSON form (.Reference .CanonicalReference .ManifestDigest .Architecture .Os .Variant
.LayerCount .SizeBytes .CreatedAt .LastUsedAt) and .Digest .ID .Repository .Tag .Platform .Size
.CreatedSince .LastUsedSince; {{json .}} prints the JSON of one image.`,
    flags: [
      { name: 'all', short: 'a', type: 'boolean', help: 'also list images no reference names, as <none>' },
      { name: 'quiet', short: 'q', type: 'boolean', help: 'print only references (digests for <none>), one per line' },
      { name: 'digests', type: 'boolean', help: 'show full manifest digests' },
      { name: 'no-trunc', type: 'boolean', help: 'truncate nothing (full digests)' },
      {
        name: 'filter',
        type: 'string',
        multiple: true,
        value: 'KEY=VALUE',
        help: 'reference=, dangling=, before=, since=, label= (see above)',
      },
      {
        name: 'format',
        type: 'string',
        value: 'F',
        help: 'table (default), json, or a template (see above)',
        complete: ['table', 'json'],
      },
    ],
    operands: 'image',
    run,
  },
];

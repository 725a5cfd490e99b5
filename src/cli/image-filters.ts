/**
 * `msb images --filter KEY=VALUE` (docs/cli.md §5), docker's keys:
 * - `reference=GLOB` (repeatable, any may match; a positional REPO[:TAG] is one more): docker's
 *   matching, the one of `image prune --filter` (src/reference/glob.ts): `busybox` matches every
 *   tag of busybox, `*` never crosses `/`;
 * - `dangling=true|false`: only images no reference names (they come with -a), or only named ones;
 * - `before=IMAGE` / `since=IMAGE`: created (first pulled or loaded) before / after IMAGE;
 * - `label=KEY` or `label=KEY=VALUE` (repeatable, all must hold): on the image config's labels.
 */
import { Image } from '../api/image.js';
import type { LocalBackend } from '../api/backend.js';
import type { ImageHandle } from '../store/handle.js';
import { compileGlob, referenceMatches, type Glob } from '../reference/glob.js';
import { forEachSliced } from '../util/abort.js';
import { UsageError } from './context.js';

export interface ImageFilters {
  references: Glob[];
  dangling: boolean | null;
  before: string[];
  since: string[];
  labels: { key: string; value: string | null }[];
}

/** Parses `--filter` values and positionals (as `reference=`); UsageError on an unknown key. */
export function parseImageFilters(
  filters: readonly string[],
  positionals: readonly string[],
  usage: string,
): ImageFilters {
  const f: ImageFilters = { references: [], dangling: null, before: [], since: [], labels: [] };
  const refs: string[] = [...positionals];
  for (const raw of filters) {
    const eq = raw.indexOf('=');
    const key = eq < 0 ? raw : raw.slice(0, eq);
    const value = eq < 0 ? '' : raw.slice(eq + 1);
    if (value === '') throw new UsageError(`--filter ${JSON.stringify(raw)}: expected KEY=VALUE`, usage);
    switch (key) {
      case 'reference':
        refs.push(value);
        break;
      case 'dangling':
        if (value !== 'true' && value !== 'false')
          throw new UsageError(`--filter dangling= takes true or false, not ${JSON.stringify(value)}`, usage);
        f.dangling = value === 'true';
        break;
      case 'before':
        f.before.push(value);
        break;
      case 'since':
        f.since.push(value);
        break;
      case 'label': {
        const i = value.indexOf('=');
        f.labels.push(i < 0 ? { key: value, value: null } : { key: value.slice(0, i), value: value.slice(i + 1) });
        break;
      }
      default:
        throw new UsageError(
          `unsupported filter ${JSON.stringify(key)} (keys: reference, dangling, before, since, label)`,
          usage,
        );
    }
  }
  f.references = refs.map(compileGlob); // malformed pattern → INVALID_ARGUMENT, exit 2
  return f;
}

export function hasFilters(f: ImageFilters): boolean {
  return f.references.length + f.before.length + f.since.length + f.labels.length > 0 || f.dangling !== null;
}

/** An untagged row (its reference is its digest). */
export function isUntagged(h: ImageHandle): boolean {
  return h.reference === h.manifestDigest;
}

/** The handles that pass every filter, in list order; label filters read each image's config once. */
export async function applyImageFilters(
  b: LocalBackend,
  list: readonly ImageHandle[],
  f: ImageFilters,
  signal: AbortSignal,
): Promise<ImageHandle[]> {
  const bound = async (sel: string[], pick: (...xs: number[]) => number) =>
    sel.length
      ? pick(...(await Promise.all(sel.map(async (s) => (await Image.getLocal(b, s)).createdAt.getTime()))))
      : null;
  const before = await bound(f.before, Math.min);
  const since = await bound(f.since, Math.max);
  const out: ImageHandle[] = [];
  await forEachSliced(
    list.length,
    (i) => {
      const h = list[i]!;
      const untagged = isUntagged(h);
      if (f.dangling !== null && f.dangling !== untagged) return;
      if (before !== null && !(h.createdAt.getTime() < before)) return;
      if (since !== null && !(h.createdAt.getTime() > since)) return;
      if (f.references.length && (untagged || !referenceMatches(f.references, h.canonicalReference, h.reference)))
        return;
      out.push(h);
    },
    signal,
  );
  if (f.labels.length === 0) return out;
  const labelsOf = new Map<string, Record<string, string>>();
  const kept: ImageHandle[] = [];
  for (const h of out) {
    let labels = labelsOf.get(h.manifestDigest);
    if (labels === undefined) {
      labels = (await Image.inspectLocal(b, h.manifestDigest)).config?.labels ?? {};
      labelsOf.set(h.manifestDigest, labels);
    }
    const l = labels;
    if (f.labels.every((x) => x.key in l && (x.value === null || l[x.key] === x.value))) kept.push(h);
  }
  return kept;
}

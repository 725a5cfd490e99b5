/**
 * Output helpers for `msb` (docs/cli.md §2): aligned tables with capitalised headers, decimal sizes with
 * 3 significant digits (`1.09MB`, `203MB`, `4.1kB`, `-` for null), docker-style relative times
 * ("3 hours ago"), 12-hex digests unless `--no-trunc`, and `--format json` = exactly
 * `JSON.stringify` of the API object plus a newline. Also the small flag parser the image commands
 * share (unknown flags and missing values are UsageErrors → exit 2).
 */
import { shortDigest } from '../util/digest.js';
import { UsageError, type CliContext } from './context.js';

/** Decimal units, 3 significant digits, trailing zeros trimmed. */
export function formatSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let v = Math.max(0, bytes);
  let u = 0;
  if (v < 1000) return `${Math.round(v)}B`;
  while (u < units.length - 1 && v >= 1000) {
    v /= 1000;
    u++;
  }
  let s = Number(v.toPrecision(3));
  if (s >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
    s = Number(v.toPrecision(3));
  }
  return `${s}${units[u]}`;
}

/** docker's HumanDuration + " ago": "Less than a second ago", "About a minute ago", "3 hours ago", … */
export function relativeTime(date: Date, now: number = Date.now()): string {
  const secs = Math.max(0, Math.floor((now - date.getTime()) / 1000));
  const d = (() => {
    if (secs < 1) return 'Less than a second';
    if (secs === 1) return '1 second';
    if (secs < 60) return `${secs} seconds`;
    const mins = Math.floor(secs / 60);
    if (mins === 1) return 'About a minute';
    if (mins < 60) return `${mins} minutes`;
    const hours = Math.round(secs / 3600);
    if (hours === 1) return 'About an hour';
    if (hours < 48) return `${hours} hours`;
    if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
    if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
    if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
    return `${Math.floor(hours / 24 / 365)} years`;
  })();
  return `${d} ago`;
}

/** 12 hex characters of a digest, or the full `alg:hex` with `noTrunc`. */
export function showDigest(d: string, noTrunc = false): string {
  return noTrunc ? d : shortDigest(d);
}

export function platformString(p: { os: string | null; architecture: string | null; variant: string | null }): string {
  if (!p.os && !p.architecture) return '-';
  return [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');
}

/** Columns separated by three spaces, each padded to its widest cell; the last is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const n = headers.length;
  const widths = headers.map((h) => h.length);
  for (const r of rows)
    for (let i = 0; i < n; i++) {
      const l = (r[i] ?? '').length;
      if (l > widths[i]!) widths[i] = l;
    }
  let out = '';
  const line = (cells: string[]) => {
    let s = '';
    for (let i = 0; i < n - 1; i++) s += (cells[i] ?? '').padEnd(widths[i]!) + '   ';
    s += cells[n - 1] ?? '';
    out += s.trimEnd() + '\n';
  };
  line(headers);
  for (const r of rows) line(r);
  return out;
}

/** `--format json`: exactly JSON.stringify of the API object, then a newline. */
export function writeJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(JSON.stringify(value) + '\n');
}

export type FlagKind = 'bool' | 'value' | 'multi';
export interface FlagDef {
  kind: FlagKind;
  names: string[];
}
export type ParsedFlags = { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };

/**
 * Parses `args` against `defs` (key → names such as ['-q', '--quiet']). Supports `--name=value`,
 * `--` (end of flags) and `-` as a positional. Unknown flags / missing values → UsageError.
 */
export function parseFlags(args: string[], defs: Record<string, FlagDef>, usage: string): ParsedFlags {
  const byName = new Map<string, [string, FlagDef]>();
  for (const [k, d] of Object.entries(defs)) for (const n of d.names) byName.set(n, [k, d]);
  const values: ParsedFlags['values'] = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const hit = byName.get(name);
    if (!hit) throw new UsageError(`unknown flag ${name}`, usage);
    const [key, def] = hit;
    if (def.kind === 'bool') {
      if (eq > 0) throw new UsageError(`flag ${name} takes no value`, usage);
      values[key] = true;
      continue;
    }
    let v: string | undefined;
    if (eq > 0) v = a.slice(eq + 1);
    else v = args[++i];
    if (v === undefined) throw new UsageError(`flag ${name} needs a value`, usage);
    if (def.kind === 'value') values[key] = v;
    else values[key] = [...((values[key] as string[] | undefined) ?? []), v];
  }
  return { values, positionals };
}

/** `--format table|json` → 'table' | 'json' (UsageError otherwise). */
export function formatOption(v: unknown, usage: string): 'table' | 'json' {
  if (v === undefined) return 'table';
  if (v === 'table' || v === 'json') return v;
  throw new UsageError(`--format must be table or json, not ${JSON.stringify(v)}`, usage);
}

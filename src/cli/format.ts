/**
 * Output helpers for `msb` (docs/cli.md §2): aligned tables with capitalised headers, decimal sizes with
 * 3 significant digits (`1.09MB`, `203MB`, `4.1kB`, `-` for null), docker-style relative times
 * ("3 hours ago"), 12-hex digests unless `--no-trunc`, and `--format json` = exactly
 * `JSON.stringify` of the API object plus a newline. Table cells are escaped for the terminal
 * (src/cli/escape.ts); JSON is not.
 */
import { shortDigest } from '../util/digest.js';
import type { CliContext } from './context.js';
import { termSafe } from './escape.js';

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
export function table(headers: string[], cells: string[][]): string {
  const n = headers.length;
  const rows = cells.map((r) => r.map(termSafe));
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

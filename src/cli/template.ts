/**
 * `--format` templates (docs/cli.md §2), the small part of Go templates docker users write:
 * `{{.Field}}`, `{{json .Field}}`, `{{json .}}`, literal text, `\t` and `\n` as tab and newline,
 * and a leading `table ` for aligned columns with a header row. Field names are matched without
 * regard to case. Anything else inside `{{ }}` is a UsageError (exit 2).
 */
import { UsageError } from './context.js';
import { termSafe } from './escape.js';
import { table } from './format.js';

/** A field: its header and how a row shows it. */
export interface TemplateField<T> {
  header: string;
  get(row: T): string | number | boolean | null;
}

type Part<T> = string | ((row: T) => string);

export interface Template<T> {
  /** Renders every row (a table when the format started with `table `). */
  render(rows: readonly T[]): string;
}

function compileAction<T>(
  action: string,
  fields: Record<string, TemplateField<T>>,
  toJson: (row: T) => unknown,
  usage: string,
): { part: (row: T) => string; header: string } {
  const m = /^(json\s+)?\.(\w*)$/.exec(action.trim());
  if (!m) throw new UsageError(`--format: unsupported template action {{${action}}}`, usage);
  const json = m[1] !== undefined;
  const name = m[2]!;
  if (name === '') {
    if (!json) throw new UsageError('--format: {{.}} needs json: {{json .}}', usage);
    return { part: (r) => JSON.stringify(toJson(r)), header: 'JSON' };
  }
  const key = Object.keys(fields).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined)
    throw new UsageError(`--format: unknown field .${name} (fields: ${Object.keys(fields).join(', ')})`, usage);
  const f = fields[key]!;
  if (json) return { part: (r) => JSON.stringify(f.get(r)), header: f.header };
  return { part: (r) => termSafe(String(f.get(r) ?? '')), header: f.header };
}

/** Compiles a `--format` template over rows of type T. */
export function compileTemplate<T>(
  format: string,
  fields: Record<string, TemplateField<T>>,
  toJson: (row: T) => unknown,
  usage: string,
): Template<T> {
  let text = format;
  const isTable = /^table(\s|$)/.test(text);
  if (isTable) text = text.replace(/^table\s*/, '');
  text = text.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const parts: Part<T>[] = [];
  const headers: string[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    if (open < 0) {
      parts.push(text.slice(i));
      break;
    }
    if (open > i) parts.push(text.slice(i, open));
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw new UsageError('--format: {{ without }}', usage);
    const a = compileAction(text.slice(open + 2, close), fields, toJson, usage);
    parts.push(a.part);
    headers.push(a.header);
    i = close + 2;
  }
  const line = (r: T) => parts.map((p) => (typeof p === 'string' ? p : p(r))).join('');
  return {
    render(rows) {
      if (!isTable) return rows.map((r) => `${line(r)}\n`).join('');
      // Columns are the tab-separated pieces; the header row names each piece's fields.
      const headerCells = splitHeader(parts, headers);
      return table(
        headerCells,
        rows.map((r) => line(r).split('\t')),
      );
    },
  };
}

/** The header of each tab-separated column: the headers of the actions in it. */
function splitHeader<T>(parts: Part<T>[], headers: string[]): string[] {
  const cols: string[] = [''];
  let h = 0;
  for (const p of parts) {
    if (typeof p === 'string') {
      const pieces = p.split('\t');
      for (let k = 1; k < pieces.length; k++) cols.push('');
    } else {
      const c = cols.length - 1;
      cols[c] = cols[c] ? `${cols[c]} ${headers[h]}` : headers[h]!;
      h++;
    }
  }
  return cols;
}

/**
 * How a command describes itself (docs/cli.md §1): every command module exports `commands`, an array
 * of `CommandSpec`. The spec is data (name, summary, synopsis, flags, what its operands are), and
 * the help text, the flag parser (`node:util` `parseArgs`), shell completion and the generated
 * reference (docs/cli-reference.md) are all derived from it, so they cannot disagree.
 */
import { parseArgs } from 'node:util';
import type { CliContext } from './context.js';
import { UsageError } from './context.js';

/** One flag. `name` is the long name without dashes; `short` one letter. */
export interface FlagSpec {
  name: string;
  short?: string;
  /** `boolean` flags take no value; `string` flags take one (`--x V`, `--x=V`, `-xV`). */
  type: 'boolean' | 'string';
  /** May be given several times (values collected in order). */
  multiple?: boolean;
  /** The value's placeholder in help (`FILE`, `DUR`). */
  value?: string;
  /** One line (wrapped by help). */
  help: string;
  /** What the value completes to: fixed words, files, or cached image references. */
  complete?: readonly string[] | 'file' | 'image';
}

/** What a command's operands complete to. */
export type OperandKind = 'image' | 'file' | 'none' | 'other';

export interface CommandSpec {
  /** Command words: `images`, `image inspect`, `registry login`. */
  name: string;
  /** Other spellings that run the same command (`image ls` for `images`). */
  aliases?: readonly string[];
  /** One line for command lists. */
  summary: string;
  /** Synopsis after `msb ` (one or more lines), e.g. `image inspect [--format F] IMAGE...`. */
  synopsis: string;
  /** Paragraphs after the synopsis. */
  description?: string;
  flags: readonly FlagSpec[];
  operands: OperandKind;
  run(args: ParsedArgs, ctx: CliContext): Promise<number>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** The command's help text, for UsageErrors. */
  usage: string;
}

/** The flags every command accepts (printed in every help). */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: 'home', type: 'string', value: 'DIR', help: 'the msb home (default: $MSB_HOME, else ~/.msb-image)' },
  { name: 'debug', type: 'boolean', help: 'print stack traces and cause chains of errors' },
  { name: 'no-color', type: 'boolean', help: 'no styling (also NO_COLOR)' },
  { name: 'help', short: 'h', type: 'boolean', help: 'print help' },
  { name: 'version', short: 'v', type: 'boolean', help: 'print the version' },
];

/** docs/cli.md §3, printed by `msb --help` and every command's help. */
export const EXIT_CODES_HELP = `Exit codes:
  0        success
  1        failure; also a prune whose report has errors, and rmi of an ID naming several
           references without -f
  2        usage: bad flags or arguments, invalid reference or argument, ambiguous image ID
  3        not found: image, pin, platform, not cached
  4        image in use by a sandbox or snapshot
  5        registry authentication failed
  6        unsupported on the active (cloud) backend
  130/143  interrupted by SIGINT/SIGTERM
`;

/** `  -f, --force FILE   help…` lines, help wrapped at `width` columns. */
export function flagLines(flags: readonly FlagSpec[], width = 100): string {
  const left = flags.map(
    (f) =>
      `  ${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.value ? ` ${f.value}` : ''}${f.multiple ? '...' : ''}`,
  );
  const col = Math.max(...left.map((l) => l.length)) + 3;
  let out = '';
  flags.forEach((f, i) => {
    const words = f.help.split(' ');
    let line = left[i]!.padEnd(col);
    let first = true;
    for (const w of words) {
      if (!first && line.length + 1 + w.length > width) {
        out += line.trimEnd() + '\n';
        line = ' '.repeat(col) + w;
      } else line += (first ? '' : ' ') + w;
      first = false;
    }
    out += line.trimEnd() + '\n';
  });
  return out;
}

/** The full `msb CMD --help` text. */
export function helpText(spec: CommandSpec): string {
  const syn = spec.synopsis.split('\n').map((l, i) => `${i === 0 ? 'Usage: ' : '       '}msb ${l}`);
  let out = syn.join('\n') + '\n\n' + spec.summary + '\n';
  if (spec.description) out += '\n' + spec.description.trimEnd() + '\n';
  if (spec.aliases?.length) out += `\nAliases: ${spec.aliases.map((a) => `msb ${a}`).join(', ')}\n`;
  if (spec.flags.length) out += '\nFlags:\n' + flagLines(spec.flags);
  out += '\nGlobal flags (before the command): --home DIR, --debug, --no-color; see msb --help\n\n';
  out += EXIT_CODES_HELP;
  return out;
}

/**
 * Parses `args` against the spec's flags with `node:util` `parseArgs` (strict): `--name=value`,
 * `-xVALUE`, clustered short booleans, `--` ends the flags, `-` is a positional. Unknown flags, a
 * missing value or a value given to a boolean flag are UsageErrors (exit 2).
 */
export function parseCommandArgs(spec: CommandSpec, args: string[]): ParsedArgs {
  const usage = helpText(spec);
  const options: Record<string, { type: 'boolean' | 'string'; short?: string; multiple?: boolean }> = {};
  for (const f of spec.flags)
    options[f.name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: r.values as ParsedArgs['values'], positionals: r.positionals, usage };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError(usageMessage(e.message ?? 'invalid arguments'), usage);
    throw err;
  }
}

/** parseArgs's message, first line, without its advice about `--` (our usage follows instead). */
function usageMessage(m: string): string {
  const first = m.split('\n')[0]!;
  const unknown = /^Unknown option '([^']+)'/.exec(first);
  if (unknown) return `unknown flag ${unknown[1]}`;
  return first.replace(/^Option '([^']+)'/, 'flag $1');
}

/** `--format` of list commands: `table` or `json`. */
export function formatValue(v: unknown, usage: string): 'table' | 'json' {
  if (v === undefined) return 'table';
  if (v === 'table' || v === 'json') return v;
  throw new UsageError(`--format must be table or json, not ${JSON.stringify(v)}`, usage);
}

/** The common `--format F` flag of list commands. */
export const FORMAT_FLAG: FlagSpec = {
  name: 'format',
  type: 'string',
  value: 'F',
  help: 'table (default) or json',
  complete: ['table', 'json'],
};

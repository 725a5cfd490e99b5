/**
 * Reference globs (docs/api.md §2.5): the pattern language of Go's `path.Match`, which docker's
 * `--filter reference=` uses, compiled once and matched without backtracking.
 *
 * - `*` matches any run of characters except `/`; `?` one character except `/`;
 *   `[abc]`, `[a-z]`, `[^a-z]` a character class (a class may match `/`, as in Go);
 *   `\c` the character `c`. Anything else matches itself. The whole string must match.
 * - A malformed pattern (an unclosed `[`, an empty class, a trailing `\`) is an
 *   InvalidArgumentError, whatever it would have matched; a pattern longer than
 *   `FIXED_LIMITS.globPatternChars` is a LimitExceededError.
 *
 * Matching follows `path.Match`'s algorithm: the pattern is split into star-led chunks and each
 * chunk takes its leftmost match; earlier chunks are never revisited. A chunk of k tokens is tried
 * at most once per position of the name, so a match costs O(name × pattern) at worst and never
 * explodes with the number of `*` (a regular expression `[^/]*…[^/]*` backtracks exponentially).
 * Runs of `*` are one `*`.
 */
import { InvalidArgumentError, LimitExceededError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import { referenceName } from './reference.js';

type Token =
  | { t: 'lit'; c: number }
  | { t: 'any' }
  | { t: 'class'; negated: boolean; ranges: number[] /* lo, hi pairs (code points) */ };

interface Chunk {
  /** Led by `*` (may skip characters before it). */
  star: boolean;
  tokens: Token[];
}

/** A compiled glob: match it with `globMatches`. */
export interface Glob {
  readonly source: string;
  readonly chunks: readonly Chunk[];
}

const SLASH = 0x2f;

function bad(pattern: string, why: string): never {
  throw new InvalidArgumentError('filter', `invalid reference pattern ${JSON.stringify(pattern)}: ${why}`);
}

/** One possibly escaped character of a class; returns [code point, next index]. */
function classChar(p: string, i: number, pattern: string): [number, number] {
  if (i >= p.length) bad(pattern, 'unclosed [');
  const c = p.codePointAt(i)!;
  if (c === 0x2d /* - */ || c === 0x5d /* ] */) bad(pattern, `unexpected ${p[i]} in a character class`);
  if (c === 0x5c /* \ */) {
    if (i + 1 >= p.length) bad(pattern, 'unclosed [');
    const e = p.codePointAt(i + 1)!;
    return [e, i + 1 + (e > 0xffff ? 2 : 1)];
  }
  return [c, i + (c > 0xffff ? 2 : 1)];
}

/** `[...]` starting at `i` (just after `[`); returns the token and the index after `]`. */
function parseClass(p: string, start: number, pattern: string): [Token, number] {
  let i = start;
  let negated = false;
  if (p[i] === '^') {
    negated = true;
    i++;
  }
  const ranges: number[] = [];
  for (;;) {
    if (p[i] === ']' && ranges.length > 0) return [{ t: 'class', negated, ranges }, i + 1];
    const [lo, j] = classChar(p, i, pattern);
    let hi = lo;
    i = j;
    if (p[i] === '-') [hi, i] = classChar(p, i + 1, pattern);
    if (i >= p.length) bad(pattern, 'unclosed [');
    ranges.push(lo, hi);
  }
}

/** Compiles `pattern` (validated whole). */
export function compileGlob(pattern: string): Glob {
  if (typeof pattern !== 'string' || pattern === '') bad(String(pattern), 'the pattern is empty');
  if (pattern.length > FIXED_LIMITS.globPatternChars)
    throw new LimitExceededError(
      'globPatternChars',
      pattern.length,
      FIXED_LIMITS.globPatternChars,
      'reference pattern',
    );
  const chunks: Chunk[] = [];
  let cur: Chunk = { star: false, tokens: [] };
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === '*') {
      if (cur.tokens.length > 0) {
        chunks.push(cur);
        cur = { star: true, tokens: [] };
      } else cur.star = true; // a run of `*` is one `*`
      i++;
    } else if (ch === '?') {
      cur.tokens.push({ t: 'any' });
      i++;
    } else if (ch === '[') {
      const [tok, j] = parseClass(pattern, i + 1, pattern);
      cur.tokens.push(tok);
      i = j;
    } else {
      if (ch === '\\') {
        i++;
        if (i >= pattern.length) bad(pattern, 'a trailing \\ escapes nothing');
      }
      const c = pattern.codePointAt(i)!;
      cur.tokens.push({ t: 'lit', c });
      i += c > 0xffff ? 2 : 1;
    }
  }
  if (cur.star || cur.tokens.length > 0) chunks.push(cur);
  return Object.freeze({ source: pattern, chunks: Object.freeze(chunks) });
}

/** Does chunk `k` match `s` at `pos`? Returns the index after it, or -1. */
function matchChunk(k: Chunk, s: string, pos: number): number {
  let i = pos;
  for (const tok of k.tokens) {
    if (i >= s.length) return -1;
    const c = s.codePointAt(i)!;
    if (tok.t === 'lit') {
      if (c !== tok.c) return -1;
    } else if (tok.t === 'any') {
      if (c === SLASH) return -1;
    } else {
      let hit = false;
      for (let r = 0; r < tok.ranges.length; r += 2)
        if (tok.ranges[r]! <= c && c <= tok.ranges[r + 1]!) {
          hit = true;
          break;
        }
      if (hit === tok.negated) return -1;
    }
    i += c > 0xffff ? 2 : 1;
  }
  return i;
}

/** Whether the whole of `name` matches `g` (Go's `path.Match`). */
export function globMatches(g: Glob, name: string): boolean {
  let pos = 0;
  const n = g.chunks.length;
  for (let ci = 0; ci < n; ci++) {
    const k = g.chunks[ci]!;
    const last = ci === n - 1;
    if (k.star && k.tokens.length === 0) return name.indexOf('/', pos) < 0; // trailing `*`
    let end = matchChunk(k, name, pos);
    if (end >= 0 && (!last || end === name.length)) {
      pos = end;
      continue;
    }
    if (!k.star) return false;
    // Skip characters (never `/`) before the chunk: its leftmost match wins, except that the
    // last chunk must end the name.
    let found = false;
    for (let i = pos; i < name.length && name.charCodeAt(i) !== SLASH; ) {
      i += (name.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
      end = matchChunk(k, name, i);
      if (end >= 0 && (!last || end === name.length)) {
        pos = end;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return pos === name.length;
}

/**
 * docker's `reference=` rule (`reference.FamiliarMatch`), on a canonical reference as stored: a
 * pattern matches the familiar form (`busybox:latest`) or the familiar name (`busybox`, so a
 * pattern without a tag matches every tag); we also try the canonical form and name
 * (`docker.io/library/busybox:latest`, `docker.io/library/busybox`).
 */
export function referenceMatches(globs: readonly Glob[], canonical: string, familiar: string): boolean {
  if (globs.length === 0) return false;
  const forms = [familiar, referenceName(familiar), canonical, referenceName(canonical)];
  for (const g of globs) for (const f of forms) if (globMatches(g, f)) return true;
  return false;
}

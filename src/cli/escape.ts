/**
 * The one escaping of untrusted text for the terminal (docs/cli.md §2). Anything that comes from an
 * image, an archive, a registry or an error message about them (config values, labels, tar entry
 * names, tags, warning text) may hold control characters: an OSC sequence retitles the terminal,
 * `ESC[2J` clears it, CR rewrites the line, a bidi override reorders what the reader sees. Every
 * text output path (tables, `inspect`, errors, warnings, progress lines) passes such values
 * through `termSafe`; `--format json` output is never escaped (JSON is exact).
 *
 * Escaped: C0 controls (U+0000–U+001F) as `\n`, `\r`, `\t` or `\x1b`-style; DEL as `\x7f`;
 * C1 controls (U+0080–U+009F, e.g. the one-byte CSI U+009B) as `\u009b`; the bidi embedding,
 * override and isolate controls (U+202A–U+202E, U+2066–U+2069) and the line and paragraph
 * separators (U+2028, U+2029) as `\u202e`-style. Everything else, backslashes included, is kept.
 */

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_TEST = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const c = ch.charCodeAt(0);
  const hex = c.toString(16).padStart(2, '0');
  return c <= 0x7f ? `\\x${hex}` : `\\u${hex.padStart(4, '0')}`;
}

/** `s` with every character a terminal would interpret shown as an escape (see the module comment). */
export function termSafe(s: string): string {
  // Most values are clean: test first, so the common case allocates nothing.
  return UNSAFE_TEST.test(s) ? s.replace(UNSAFE, escapeOne) : s;
}

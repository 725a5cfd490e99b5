/**
 * `WWW-Authenticate` parsing (docs/pull.md §2.2, RFC 9110 §11.6.1). Pure.
 *
 * A header may hold several challenges separated by commas, and a response may carry several
 * headers; auth-param values are tokens or quoted strings with `\` escapes. A token68 after the
 * scheme (rare in challenges) is kept as the `token68` param.
 */
export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Parameter names lowercased; values unescaped. */
  params: Record<string, string>;
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/** Parses every challenge of one or more `WWW-Authenticate` header values. Never throws. */
export function parseWwwAuthenticate(headers: string | string[] | undefined | null): Challenge[] {
  if (headers === undefined || headers === null) return [];
  const list = Array.isArray(headers) ? headers : [headers];
  const out: Challenge[] = [];
  for (const h of list) parseOne(String(h), out);
  return out;
}

function parseOne(s: string, out: Challenge[]): void {
  let i = 0;
  const n = s.length;
  const ws = () => {
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const token = (): string => {
    const st = i;
    while (i < n && TCHAR.test(s[i]!)) i++;
    return s.slice(st, i);
  };
  const quoted = (): string => {
    // s[i] === '"'
    i++;
    let v = '';
    while (i < n && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < n) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or end)
    return v;
  };
  while (i < n) {
    while (i < n && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= n) break;
    const scheme = token();
    if (!scheme) {
      i++;
      continue;
    } // junk character: skip it
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    ws();
    // auth-params, or a token68, until the next challenge's scheme.
    for (;;) {
      ws();
      if (i >= n) break;
      if (s[i] === ',') {
        // Either a separator between params or between challenges; look ahead.
        const save = i;
        i++;
        ws();
        const st = i;
        const name = token();
        ws();
        if (name && s[i] === '=' && s[i + 1] !== '=') {
          i = st;
          continue;
        } // next param
        i = save;
        break; // next challenge (or end)
      }
      const st = i;
      const name = token();
      ws();
      if (name && s[i] === '=' && s[i + 1] !== '=') {
        i++;
        ws();
        const value = s[i] === '"' ? quoted() : token();
        ch.params[name.toLowerCase()] = value;
        continue;
      }
      // token68 (e.g. `Negotiate abc==`): take it to the next comma.
      i = st;
      const end = s.indexOf(',', i);
      const t = (end < 0 ? s.slice(i) : s.slice(i, end)).trim();
      if (t) ch.params.token68 = t;
      i = end < 0 ? n : end;
      break;
    }
  }
}

/** Bearer is preferred over Basic (docs/pull.md §2.2); other schemes are not supported. */
export function pickChallenge(challenges: Challenge[]): Challenge | null {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? null;
}

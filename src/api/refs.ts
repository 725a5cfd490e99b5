/**
 * Reference helpers for the index layer. `familiarOf` is a fast path for strings that are ALREADY
 * canonical (as stored in `image_ref.reference`): `list()` maps 10,000 rows in a few ms, where a
 * full re-parse would dominate its budget. Its result equals `parseReference(c).familiar` for every
 * canonical `c` (tested against the parser).
 */
import { InvalidArgumentError } from '../errors.js';
import { parseImageSelector, parseReference, type ImageSelector, type ParsedReference } from '../reference/reference.js';

const DIGEST_SHAPE_RE = /^(?:sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/;

export function familiarOf(canonical: string): string {
  if (!canonical.startsWith('docker.io/')) return canonical;
  const rest = canonical.slice('docker.io/'.length);
  const cut = rest.search(/[:@]/);
  const name = cut < 0 ? rest : rest.slice(0, cut);
  const slash = name.indexOf('/');
  if (slash >= 0) {
    const first = name.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) return canonical;
  }
  if (name.startsWith('library/') && name.indexOf('/', 8) < 0) {
    const short = rest.slice(8);
    return DIGEST_SHAPE_RE.test(short) ? rest : short;
  }
  return rest;
}

export { parseReference, parseImageSelector, type ImageSelector, type ParsedReference };

/** Sandbox and snapshot names: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` (api.md §4). */
export const PIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkPinName(name: unknown, what: 'sandbox' | 'snapshot'): string {
  if (typeof name !== 'string' || !PIN_NAME_RE.test(name)) {
    throw new InvalidArgumentError('name', `invalid ${what} name ${JSON.stringify(name)}: expected [A-Za-z0-9][A-Za-z0-9_.-]{0,127}`);
  }
  return name;
}

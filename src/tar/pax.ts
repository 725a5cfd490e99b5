/**
 * PAX extended header records parsed as RAW BYTES (docs/erofs.md §6.2): `"<len> <key>=<value>\n"`,
 * len = decimal length of the whole record. Values are never decoded as text, so binary xattr
 * values (security.capability) survive byte-exact.
 */
import { LayerInvalidError } from '../errors.js';

export interface PaxRecord {
  key: string; // keys are ASCII in practice; latin1 keeps any byte 1:1
  value: Buffer;
}

export function parsePaxRecords(body: Buffer, entry?: string): PaxRecord[] {
  const out: PaxRecord[] = [];
  let pos = 0;
  const bad = (why: string) =>
    new LayerInvalidError(`malformed PAX record: ${why}`, entry === undefined ? {} : { entry });
  while (pos < body.length) {
    // Some writers pad the header body with NULs after the last record.
    if (body[pos] === 0) {
      for (let i = pos; i < body.length; i++) if (body[i] !== 0) throw bad('garbage after NUL padding');
      break;
    }
    let len = 0;
    let i = pos;
    while (i < body.length && body[i]! >= 0x30 && body[i]! <= 0x39) {
      len = len * 10 + (body[i]! - 0x30);
      if (len > body.length) throw bad('length beyond the header');
      i++;
    }
    if (i === pos || i >= body.length || body[i] !== 0x20) throw bad('no length');
    const end = pos + len;
    if (len <= i - pos + 1 || end > body.length) throw bad('length out of range');
    if (body[end - 1] !== 0x0a) throw bad('record does not end with a newline');
    const rec = body.subarray(i + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw bad('no key');
    out.push({ key: rec.subarray(0, eq).toString('latin1'), value: rec.subarray(eq + 1) });
    pos = end;
  }
  return out;
}

/** Strict unsigned decimal (PAX size/uid/gid/devmajor/...): returns a bigint or throws. */
export function paxUint(v: Buffer, key: string, entry?: string): bigint {
  const s = v.toString('latin1');
  if (!/^[0-9]+$/.test(s))
    throw new LayerInvalidError(`invalid PAX ${key} ${JSON.stringify(s)}`, entry === undefined ? {} : { entry });
  return BigInt(s);
}

/** PAX mtime: `-?digits(.digits)?`; the fraction (first 9 digits) becomes nanoseconds. */
export function paxTime(v: Buffer, entry?: string): { sec: bigint; nsec: number } {
  const s = v.toString('latin1');
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw new LayerInvalidError(`invalid PAX mtime ${JSON.stringify(s)}`, entry === undefined ? {} : { entry });
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  let sec = BigInt(m[2]!);
  let nsec = Number(frac);
  if (m[1] === '-') {
    // -1.5 s = -2 s + 0.5 s; the caller clamps any negative time to 0 anyway.
    sec = -sec;
    if (nsec > 0) {
      sec -= 1n;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}

/** Standard base64, with or without `=` padding (libarchive writes none); nothing else. */
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * Percent-decoding of a `LIBARCHIVE.xattr.` name to raw bytes (as latin1). A `%` not followed by
 * two hex digits is a malformed record: LAYER_INVALID (never kept literally, which would name a
 * different xattr than the writer meant).
 */
function percentDecode(s: string, where: string): string {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x25) {
      out.push(c & 0xff);
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex))
      throw new LayerInvalidError(`malformed PAX record: bad percent escape in LIBARCHIVE.xattr name (${where})`);
    out.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(out).toString('latin1');
}

/**
 * The xattr a PAX record carries (docs/erofs.md §6.2), or null when the record is not one:
 * `SCHILY.xattr.<name>` = raw value bytes; `LIBARCHIVE.xattr.<percent-encoded name>` = base64
 * value. Invalid base64 or a bad percent escape is a malformed record → LAYER_INVALID (`where`
 * locates it). Whether the NAME is acceptable is the ingest's rule (erofs/ingest.ts `mapXattr`).
 */
export function paxXattr(key: string, value: Buffer, where: string): [string, Buffer] | null {
  if (key.startsWith('SCHILY.xattr.')) return [key.slice(13), value];
  if (!key.startsWith('LIBARCHIVE.xattr.')) return null;
  const name = percentDecode(key.slice(17), where);
  const b64 = value.toString('latin1');
  if (!BASE64_RE.test(b64))
    throw new LayerInvalidError(`malformed PAX record: invalid base64 value of LIBARCHIVE.xattr.${name} (${where})`);
  return [name, Buffer.from(b64, 'base64')];
}

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

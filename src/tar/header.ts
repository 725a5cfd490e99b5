/**
 * Tar header decoding (docs/erofs.md §6.1): ustar / GNU / v7 headers, signed and unsigned checksums,
 * octal and GNU base-256 numbers, raw-byte names. Pure functions over one 512-byte block.
 */
import { LayerInvalidError } from '../errors.js';

export const BLOCK = 512;

export type TarFormat = 'posix' | 'gnu' | 'v7';

export interface RawHeader {
  /** Raw name bytes (POSIX: prefix + '/' + name), up to the first NUL of each field. */
  name: Buffer;
  linkname: Buffer;
  mode: number;
  uid: bigint;
  gid: bigint;
  size: bigint;
  mtime: bigint;
  typeflag: number;
  devmajor: bigint;
  devminor: bigint;
  format: TarFormat;
}

/** Bytes of `b[off, off+len)` up to the first NUL. */
export function cstr(b: Buffer, off: number, len: number): Buffer {
  const end = off + len;
  let i = off;
  while (i < end && b[i] !== 0) i++;
  return b.subarray(off, i);
}

export function isZeroBlock(b: Buffer, off = 0): boolean {
  for (let i = off; i < off + BLOCK; i += 4) if (b.readUInt32LE(i) !== 0) return false;
  return true;
}

function invalid(reason: string, at: number): LayerInvalidError {
  return new LayerInvalidError(`${reason} (tar header at byte ${at})`);
}

/**
 * A numeric field: octal ASCII (leading spaces, ended by NUL or space, empty = 0) or GNU base-256
 * (high bit set; 0xFF first byte = negative two's complement). Returns a bigint; `allowNegative`
 * only for mtime. Throws LAYER_INVALID on bad digits or a negative value elsewhere.
 */
export function parseNumber(
  b: Buffer,
  off: number,
  len: number,
  what: string,
  at: number,
  allowNegative = false,
): bigint {
  const first = b[off]!;
  if (first & 0x80) {
    // Base-256: the field minus its top bit is a big-endian two's complement number (bit 0x40 =
    // sign), as GNU tar and Go's archive/tar write it.
    let v = BigInt(first & 0x7f);
    for (let i = off + 1; i < off + len; i++) v = (v << 8n) | BigInt(b[i]!);
    if (first & 0x40) {
      v -= 1n << BigInt(8 * len - 1);
      if (!allowNegative) throw invalid(`negative ${what}`, at);
    }
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && b[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw invalid(`invalid octal number in ${what}`, at);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  // Octal fields are at most 12 digits (2^36), exact in a double.
  return digits === 0 ? 0n : BigInt(v);
}

/** True iff the block's checksum field matches (unsigned or signed sum, field read as spaces). */
export function checksumOk(b: Buffer, off = 0): boolean {
  let stored: bigint;
  try {
    stored = parseNumber(b, off + 148, 8, 'checksum', 0);
  } catch {
    return false;
  }
  // One pass: the unsigned sum and the count of bytes ≥ 0x80 (each is 256 less when signed).
  let u = 0;
  let high = 0;
  for (let i = off; i < off + 148; i++) {
    const c = b[i]!;
    u += c;
    high += c >>> 7;
  }
  for (let i = off + 156; i < off + BLOCK; i++) {
    const c = b[i]!;
    u += c;
    high += c >>> 7;
  }
  u += 8 * 0x20;
  const st = Number(stored);
  return st === u || st === u - 256 * high;
}

export function formatOf(b: Buffer, off = 0): TarFormat {
  if (b.subarray(off + 257, off + 265).equals(USTAR_GNU)) return 'gnu';
  // "ustar\0": POSIX, whatever the version bytes say.
  if (b.subarray(off + 257, off + 263).equals(USTAR_POSIX)) return 'posix';
  return 'v7';
}
const USTAR_POSIX = Buffer.from('ustar\0', 'latin1');
const USTAR_GNU = Buffer.from('ustar  \0', 'latin1');

/** Decodes one non-zero header block; verifies the checksum. `at` = stream offset for messages. */
export function decodeHeader(b: Buffer, off: number, at: number): RawHeader {
  if (!checksumOk(b, off)) throw invalid('bad header checksum', at);
  const format = formatOf(b, off);
  let name = cstr(b, off, 100);
  if (format === 'posix') {
    const prefix = cstr(b, off + 345, 155);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  const ustar = format !== 'v7';
  // Copies: the block may be a reused staging buffer.
  return {
    name: Buffer.from(name),
    linkname: Buffer.from(cstr(b, off + 157, 100)),
    mode: Number(parseNumber(b, off + 100, 8, 'mode', at) & 0o7777777n),
    uid: parseNumber(b, off + 108, 8, 'uid', at),
    gid: parseNumber(b, off + 116, 8, 'gid', at),
    size: parseNumber(b, off + 124, 12, 'size', at),
    mtime: parseNumber(b, off + 136, 12, 'mtime', at, true),
    typeflag: b[off + 156]!,
    devmajor: ustar ? parseNumber(b, off + 329, 8, 'devmajor', at) : 0n,
    devminor: ustar ? parseNumber(b, off + 337, 8, 'devminor', at) : 0n,
    format,
  };
}

/** Old GNU sparse header fields (typeflag 'S'): 4 map entries at 386, isextended 482, realsize 483. */
export function decodeOldGnuSparse(
  b: Buffer,
  off: number,
  at: number,
): { segments: Array<[bigint, bigint]>; isExtended: boolean; realSize: bigint } {
  return {
    segments: decodeSparseEntries(b, off + 386, 4, at),
    isExtended: b[off + 482] !== 0,
    realSize: parseNumber(b, off + 483, 12, 'sparse realsize', at),
  };
}

/** A GNU sparse extension block: 21 entries, isextended at 504. */
export function decodeSparseExtension(
  b: Buffer,
  off: number,
  at: number,
): { segments: Array<[bigint, bigint]>; isExtended: boolean } {
  return { segments: decodeSparseEntries(b, off, 21, at), isExtended: b[off + 504] !== 0 };
}

function decodeSparseEntries(b: Buffer, off: number, n: number, at: number): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  for (let i = 0; i < n; i++) {
    const o = off + i * 24;
    // An unused entry is all NULs: the map ends there.
    if (b[o] === 0 && b[o + 12] === 0) break;
    out.push([parseNumber(b, o, 12, 'sparse offset', at), parseNumber(b, o + 12, 12, 'sparse numbytes', at)]);
  }
  return out;
}

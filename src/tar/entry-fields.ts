/**
 * The pure parts of turning a tar header and its extension records into a `TarEntry` (reader.ts):
 * typeflags, PAX record sorting (xattrs, sparse pairs, overrides), the PAX sparse maps of
 * docs/erofs.md §6.3 and the number checks they share.
 */
import { LayerInvalidError } from '../errors.js';
import { paxUint, paxXattr, type PaxRecord } from './pax.js';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chr' | 'blk' | 'fifo';

export interface SparseSegment {
  offset: number;
  length: number;
}

export const TF = {
  REG: 0x30,
  AREG: 0,
  LINK: 0x31,
  SYM: 0x32,
  CHR: 0x33,
  BLK: 0x34,
  DIR: 0x35,
  FIFO: 0x36,
  CONT: 0x37,
  PAX: 0x78,
  GLOBAL: 0x67,
  LONGNAME: 0x4c,
  LONGLINK: 0x4b,
  SPARSE: 0x53,
  DUMPDIR: 0x44,
  VOLUME: 0x56,
} as const;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
export function toNum(v: bigint, what: string, entry?: string): number {
  if (v < 0n || v > MAX_SAFE) throw new LayerInvalidError(`${what} out of range`, entry === undefined ? {} : { entry });
  return Number(v);
}

const NO_PAX: ReadonlyMap<string, Buffer> = new Map();

/** PAX records split by meaning: overrides (last record wins; an empty value means "no override"), xattrs (empty values kept), GNU sparse 0.0 pairs in record order. */
export function splitPaxRecords(
  records: PaxRecord[],
  where: string,
): {
  pax: ReadonlyMap<string, Buffer>;
  xattrs: Map<string, Buffer>;
  sparse00: Array<[string, Buffer]>;
} {
  const pax = records.length ? new Map<string, Buffer>() : NO_PAX;
  const xattrs = new Map<string, Buffer>();
  const sparse00: Array<[string, Buffer]> = [];
  for (const r of records) {
    const x = paxXattr(r.key, r.value, where);
    if (x) {
      xattrs.set(x[0], x[1]);
    } else if (r.key === 'GNU.sparse.offset' || r.key === 'GNU.sparse.numbytes') {
      sparse00.push([r.key, r.value]);
    } else if (r.value.length === 0) {
      (pax as Map<string, Buffer>).delete(r.key);
    } else {
      (pax as Map<string, Buffer>).set(r.key, r.value);
    }
  }
  return { pax, xattrs, sparse00 };
}

export function entryKind(typeflag: number, basePath: Buffer, display: string): EntryKind {
  switch (typeflag) {
    case TF.REG:
    case TF.CONT:
    case TF.SPARSE:
      return 'file';
    case TF.AREG:
      return basePath.length > 0 && basePath[basePath.length - 1] === 0x2f ? 'dir' : 'file';
    case TF.LINK:
      return 'hardlink';
    case TF.SYM:
      return 'symlink';
    case TF.CHR:
      return 'chr';
    case TF.BLK:
      return 'blk';
    case TF.DIR:
    case TF.DUMPDIR:
      return 'dir';
    case TF.FIFO:
      return 'fifo';
    default:
      throw new LayerInvalidError(`unsupported tar typeflag ${JSON.stringify(String.fromCharCode(typeflag))}`, {
        entry: display,
      });
  }
}

/**
 * PAX sparse formats (docs/erofs.md §6.3) of a regular file: 0.0 offset/numbytes pairs, 0.1 map,
 * 1.0 map in the body (its segments are read later: `segs` null).
 */
export function paxSparseMap(
  pax: ReadonlyMap<string, Buffer>,
  sparse00: Array<[string, Buffer]>,
  display: string,
): { format: 'none' | '0.x' | '1.0'; realSize: number; segs: SparseSegment[] | null } {
  const major = pax.get('GNU.sparse.major')?.toString('latin1');
  const minor = pax.get('GNU.sparse.minor')?.toString('latin1');
  const rs = pax.get('GNU.sparse.realsize') ?? pax.get('GNU.sparse.size');
  let format: 'none' | '0.x' | '1.0' = 'none';
  if (major !== undefined && major !== '0') {
    if (major !== '1' || (minor ?? '0') !== '0') {
      throw new LayerInvalidError(`unsupported GNU sparse version ${major}.${minor ?? ''}`, { entry: display });
    }
    format = '1.0';
  } else if (pax.has('GNU.sparse.map') || sparse00.length > 0) {
    format = '0.x';
  }
  if (format === 'none') return { format, realSize: 0, segs: null };
  if (rs === undefined) throw new LayerInvalidError('sparse file without GNU.sparse.realsize', { entry: display });
  const realSize = toNum(paxUint(rs, 'GNU.sparse.realsize', display), 'sparse real size', display);
  if (format === '1.0') return { format, realSize, segs: null };
  const nums = sparse0xNumbers(pax.get('GNU.sparse.map'), sparse00, display);
  const segs: SparseSegment[] = [];
  for (let i = 0; i < nums.length; i += 2)
    segs.push({
      offset: toNum(nums[i]!, 'sparse offset', display),
      length: toNum(nums[i + 1]!, 'sparse length', display),
    });
  return { format, realSize, segs };
}

/** The numbers of a 0.1 map, or of the 0.0 pairs (offset then numbytes, in record order). */
function sparse0xNumbers(map: Buffer | undefined, sparse00: Array<[string, Buffer]>, display: string): bigint[] {
  const nums: bigint[] = [];
  if (map !== undefined) {
    for (const s of map.toString('latin1').split(','))
      nums.push(paxUint(Buffer.from(s, 'latin1'), 'GNU.sparse.map', display));
  } else {
    for (let i = 0; i < sparse00.length; i += 2) {
      const a = sparse00[i]!;
      const bb = sparse00[i + 1];
      if (a[0] !== 'GNU.sparse.offset' || !bb || bb[0] !== 'GNU.sparse.numbytes') {
        throw new LayerInvalidError('malformed GNU.sparse.offset/numbytes pairs', { entry: display });
      }
      nums.push(paxUint(a[1], 'GNU.sparse.offset', display), paxUint(bb[1], 'GNU.sparse.numbytes', display));
    }
  }
  if (nums.length % 2 !== 0) throw new LayerInvalidError('odd GNU.sparse.map', { entry: display });
  return nums;
}

/** Parses the GNU sparse 1.0 map lines; null when more bytes are needed. */
export function parseSparseMapLines(b: Buffer, entry: string): number[] | null {
  let pos = 0;
  const next = (): number | null => {
    const nl = b.indexOf(0x0a, pos);
    if (nl < 0) return null;
    const s = b.subarray(pos, nl).toString('latin1');
    if (!/^[0-9]+$/.test(s)) throw new LayerInvalidError('malformed GNU sparse 1.0 map', { entry });
    pos = nl + 1;
    return toNum(BigInt(s), 'sparse map number', entry);
  };
  const count = next();
  if (count === null) return null;
  if (count > 1_000_000) throw new LayerInvalidError('GNU sparse 1.0 map too long', { entry });
  const out: number[] = [];
  for (let i = 0; i < 2 * count; i++) {
    const v = next();
    if (v === null) return null;
    out.push(v);
  }
  return out;
}

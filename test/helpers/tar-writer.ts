/**
 * A small tar WRITER for tests: ustar / GNU / v7 headers, octal or base-256 numbers, PAX `x`/`g`
 * records with raw byte values, GNU L/K, old-GNU and PAX sparse files, deliberately broken
 * checksums. Hostile and odd archives are built from these pieces.
 */
export type Bytes = string | Buffer;
const b = (v: Bytes): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

export interface HeaderSpec {
  name: Bytes;
  /** typeflag character; default '0'. */
  type?: string;
  mode?: number;
  uid?: number | bigint;
  gid?: number | bigint;
  size?: number | bigint;
  mtime?: number | bigint;
  linkname?: Bytes;
  devmajor?: number;
  devminor?: number;
  format?: 'ustar' | 'gnu' | 'v7';
  /** POSIX prefix field (ustar only). */
  prefix?: Bytes;
  /** Force base-256 encoding for these numeric fields. */
  base256?: Array<'uid' | 'gid' | 'size' | 'mtime'>;
  checksum?: 'unsigned' | 'signed' | 'bad';
  /** Last-minute raw edits (before the checksum). */
  patch?: (h: Buffer) => void;
}

function putStr(h: Buffer, off: number, len: number, v: Bytes) {
  const s = b(v);
  if (s.length > len) throw new Error(`field too long: ${s.length} > ${len}`);
  s.copy(h, off);
}

function putOctal(h: Buffer, off: number, len: number, v: number | bigint) {
  const s = BigInt(v)
    .toString(8)
    .padStart(len - 1, '0');
  if (s.length > len - 1) throw new Error(`octal overflow for ${v} in ${len}`);
  h.write(s + '\0', off, 'latin1');
}

function putBase256(h: Buffer, off: number, len: number, v: number | bigint) {
  let x = BigInt(v);
  if (x < 0n) x += 1n << BigInt(8 * len - 1); // two's complement in len*8-1 bits, sign bit 0x40
  for (let i = len - 1; i >= 0; i--) {
    h[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  h[off] = (h[off]! & 0x7f) | 0x80;
  if (BigInt(v) < 0n) h[off] = h[off]! | 0x40;
}

export function header(spec: HeaderSpec): Buffer {
  const h = Buffer.alloc(512);
  const fmt = spec.format ?? 'ustar';
  putStr(h, 0, 100, spec.name);
  const num = (field: 'uid' | 'gid' | 'size' | 'mtime', off: number, len: number, v: number | bigint) => {
    if (spec.base256?.includes(field) || BigInt(v) >= 8n ** BigInt(len - 1) || BigInt(v) < 0n)
      putBase256(h, off, len, v);
    else putOctal(h, off, len, v);
  };
  putOctal(h, 100, 8, spec.mode ?? 0o644);
  num('uid', 108, 8, spec.uid ?? 0);
  num('gid', 116, 8, spec.gid ?? 0);
  num('size', 124, 12, spec.size ?? 0);
  num('mtime', 136, 12, spec.mtime ?? 1700000000);
  h.write(spec.type ?? '0', 156, 'latin1');
  if (spec.type === '\0') h[156] = 0;
  if (spec.linkname !== undefined) putStr(h, 157, 100, spec.linkname);
  if (fmt === 'ustar') {
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
  }
  if (fmt === 'gnu') h.write('ustar  \0', 257, 'latin1');
  if (fmt !== 'v7') {
    putOctal(h, 329, 8, spec.devmajor ?? 0);
    putOctal(h, 337, 8, spec.devminor ?? 0);
  }
  if (spec.prefix !== undefined) putStr(h, 345, 155, spec.prefix);
  spec.patch?.(h);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += spec.checksum === 'signed' && h[i]! >= 0x80 ? h[i]! - 256 : h[i]!;
  if (spec.checksum === 'bad') sum += 1;
  h.write((sum >>> 0).toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

export function pad(body: Buffer): Buffer {
  const r = body.length % 512;
  return r === 0 ? body : Buffer.concat([body, Buffer.alloc(512 - r)]);
}

/** One PAX record: "<len> key=value\n" with len counting itself. */
export function paxRecord(key: string, value: Bytes): Buffer {
  const kv = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), b(value), Buffer.from('\n')]);
  let len = kv.length + 1;
  while (String(len).length + kv.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), kv]);
}

export function paxBody(records: Array<[string, Bytes]>): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
}

export interface EntrySpec extends HeaderSpec {
  body?: Bytes;
  /** PAX records in an `x` header before this entry. */
  pax?: Array<[string, Bytes]>;
  /** GNU long name / link (L/K) before this entry. */
  longName?: Bytes;
  longLink?: Bytes;
}

/** Header(s) + body + padding for one entry (PAX `x` and GNU L/K first when asked). */
export function entry(e: EntrySpec): Buffer {
  const parts: Buffer[] = [];
  if (e.longName !== undefined) {
    const v = Buffer.concat([b(e.longName), Buffer.alloc(1)]);
    parts.push(header({ name: '././@LongLink', type: 'L', size: v.length, format: 'gnu' }), pad(v));
  }
  if (e.longLink !== undefined) {
    const v = Buffer.concat([b(e.longLink), Buffer.alloc(1)]);
    parts.push(header({ name: '././@LongLink', type: 'K', size: v.length, format: 'gnu' }), pad(v));
  }
  if (e.pax) {
    const pb = paxBody(e.pax);
    parts.push(header({ name: 'PaxHeaders/x', type: 'x', size: pb.length }), pad(pb));
  }
  const body = e.body === undefined ? Buffer.alloc(0) : b(e.body);
  parts.push(header({ ...e, size: e.size ?? body.length }), pad(body));
  return Buffer.concat(parts);
}

export function file(name: Bytes, body: Bytes, extra: Partial<EntrySpec> = {}): Buffer {
  return entry({ name, body, ...extra });
}
export function dir(name: Bytes, extra: Partial<EntrySpec> = {}): Buffer {
  return entry({ name, type: '5', mode: 0o755, ...extra });
}
export function symlink(name: Bytes, target: Bytes, extra: Partial<EntrySpec> = {}): Buffer {
  return entry({ name, type: '2', mode: 0o777, linkname: target, ...extra });
}
export function hardlink(name: Bytes, target: Bytes, extra: Partial<EntrySpec> = {}): Buffer {
  return entry({ name, type: '1', linkname: target, ...extra });
}

export const EOA = Buffer.alloc(1024);

export function tar(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, EOA]);
}

/** Old GNU sparse 'S' entry: map in the header (up to 4) plus extension blocks. */
export function oldGnuSparse(name: Bytes, realSize: number, segments: Array<[number, Buffer]>): Buffer {
  const stored = Buffer.concat(segments.map(([, d]) => d));
  const map = segments.map(([o, d]) => [o, d.length] as const);
  const ext: Buffer[] = [];
  const h = header({
    name,
    type: 'S',
    size: stored.length,
    format: 'gnu',
    patch: (hb) => {
      for (let i = 0; i < Math.min(4, map.length); i++) {
        putOctal(hb, 386 + i * 24, 12, map[i]![0]);
        putOctal(hb, 386 + i * 24 + 12, 12, map[i]![1]);
      }
      if (map.length > 4) hb[482] = 1;
      putOctal(hb, 483, 12, realSize);
    },
  });
  for (let i = 4; i < map.length; i += 21) {
    const blk = Buffer.alloc(512);
    const part = map.slice(i, i + 21);
    part.forEach(([o, l], j) => {
      putOctal(blk, j * 24, 12, o);
      putOctal(blk, j * 24 + 12, 12, l);
    });
    if (i + 21 < map.length) blk[504] = 1;
    ext.push(blk);
  }
  return Buffer.concat([h, ...ext, pad(stored)]);
}

/** PAX sparse entry of version '0.0', '0.1' or '1.0'. */
export function paxSparse(
  version: '0.0' | '0.1' | '1.0',
  name: string,
  realSize: number,
  segments: Array<[number, Buffer]>,
): Buffer {
  const data = Buffer.concat(segments.map(([, d]) => d));
  const recs: Array<[string, Bytes]> = [];
  let body = data;
  if (version === '0.0') {
    recs.push(['GNU.sparse.size', String(realSize)], ['GNU.sparse.numblocks', String(segments.length)]);
    for (const [o, d] of segments)
      recs.push(['GNU.sparse.offset', String(o)], ['GNU.sparse.numbytes', String(d.length)]);
    recs.push(['GNU.sparse.name', name]);
  } else if (version === '0.1') {
    recs.push(
      ['GNU.sparse.major', '0'],
      ['GNU.sparse.minor', '1'],
      ['GNU.sparse.name', name],
      ['GNU.sparse.size', String(realSize)],
      ['GNU.sparse.numblocks', String(segments.length)],
      ['GNU.sparse.map', segments.map(([o, d]) => `${o},${d.length}`).join(',')],
    );
  } else {
    recs.push(
      ['GNU.sparse.major', '1'],
      ['GNU.sparse.minor', '0'],
      ['GNU.sparse.name', name],
      ['GNU.sparse.realsize', String(realSize)],
    );
    const map =
      [String(segments.length), ...segments.flatMap(([o, d]) => [String(o), String(d.length)])].join('\n') + '\n';
    body = Buffer.concat([pad(Buffer.from(map)), data]);
  }
  return entry({ name: `GNUSparseFile.0/${name}`.slice(0, 99), body, pax: recs });
}

/**
 * Streaming tar reader (docs/erofs.md §6.1–§6.4). Bytes are pushed in as they arrive; headers are
 * decoded, extension headers (PAX x/g, GNU L/K, sparse maps) are merged into the next entry, and
 * file bodies are handed to a sink slice by slice, never buffered: a sink that returns a promise
 * pauses the reader (and so the producer) until it resolves — backpressure.
 *
 * The reader never touches host paths; it does not hash (the caller hashes every byte it pushes,
 * trailing bytes included) and does not interpret names (docs/erofs.md §6.5 is ingest's job).
 */
import { LayerInvalidError, LimitExceededError } from '../errors.js';
import { FIXED_LIMITS, type Limits } from '../limits.js';
import {
  BLOCK,
  decodeHeader,
  decodeOldGnuSparse,
  decodeSparseExtension,
  isZeroBlock,
  type RawHeader,
} from './header.js';
import { paxTime, paxUint, parsePaxRecords, type PaxRecord } from './pax.js';
import {
  TF,
  entryKind,
  paxSparseMap,
  parseSparseMapLines,
  splitPaxRecords,
  toNum,
  type EntryKind,
  type SparseSegment,
} from './entry-fields.js';

export type { EntryKind, SparseSegment } from './entry-fields.js';

/** One tar entry with every extension header merged in. */
export interface TarEntry {
  kind: EntryKind;
  /** The typeflag character ('0', '\0' → '\x00', '7', 'S', …). */
  typeflag: string;
  /** Raw path bytes (not normalized). */
  path: Buffer;
  /** Raw link target bytes (symlinks, hardlinks). */
  linkpath: Buffer;
  /** Permission bits as in the header (may include file-type bits; ingest masks 0o7777). */
  mode: number;
  uid: bigint;
  gid: bigint;
  /** May be negative (base-256 or PAX); ingest clamps. */
  mtime: bigint;
  mtimeNsec: number;
  /** Regular files: the real content length (sparse: the expanded size). Others: the header size. */
  size: number;
  devmajor: bigint;
  devminor: bigint;
  /** Full xattr name (raw bytes as latin1) → raw value; PAX order, last record wins. */
  xattrs: Map<string, Buffer>;
  /** Data segments of a sparse file (holes between them), else null. */
  sparse: SparseSegment[] | null;
  /** Stream offset of the entry's header, for messages. */
  headerOffset: number;
}

export interface BodySink {
  /** `data` belongs at byte `offset` of the file. Return a promise to apply backpressure. */
  write(data: Buffer, offset: number): void | Promise<void>;
}

export interface TarReaderOptions {
  limits: Pick<Limits, 'maxPaxHeaderBytes' | 'maxLayerEntries' | 'maxFileBytes'>;
  /** Called for every entry; return a sink to receive a regular file's data, or null to skip it. */
  onEntry(e: TarEntry): BodySink | null | Promise<BodySink | null>;
}

export function displayPath(b: Buffer): string {
  return b.toString('utf8');
}

const EMPTY = Buffer.alloc(0);

interface Pending {
  exts: number;
  pax: PaxRecord[];
  longName?: Buffer;
  longLink?: Buffer;
}

type State =
  | { t: 'header' }
  | { t: 'collect'; buf: Buffer; fill: number; pad: number; then: (b: Buffer) => void | Promise<void> }
  | {
      t: 'body';
      sink: BodySink | null;
      data: number;
      pad: number;
      off: number;
      segs: SparseSegment[] | null;
      seg: number;
      segPos: number;
    }
  | { t: 'done' };

export class TarReader {
  /** Entries seen (extension headers merged; volume labels excluded). */
  entries = 0;
  /** Bytes consumed so far (stream offset). */
  position = 0;
  private state: State = { t: 'header' };
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private pending: Pending = { exts: 0, pax: [] };
  private readonly opts: TarReaderOptions;

  constructor(opts: TarReaderOptions) {
    this.opts = opts;
  }

  /** True once the end-of-archive block was seen; later bytes are ignored. */
  get done(): boolean {
    return this.state.t === 'done';
  }

  /** Consumes one chunk. Await it before pushing the next one. */
  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    const len = chunk.length;
    for (;;) {
      const st = this.state;
      // States that complete without more input first: a finished extension body, a finished body.
      if (st.t === 'collect' && st.fill === st.buf.length && st.pad === 0) {
        this.state = { t: 'header' };
        await st.then(st.buf);
        continue;
      }
      if (st.t === 'body' && st.data === 0 && st.pad === 0) {
        this.state = { t: 'header' };
        continue;
      }
      if (off >= len) return;
      switch (st.t) {
        case 'done':
          this.position += len - off;
          return;
        case 'header': {
          if (this.hdrFill === 0 && len - off >= BLOCK) {
            const at = this.position;
            this.position += BLOCK;
            off += BLOCK;
            await this.onHeader(chunk, off - BLOCK, at);
          } else {
            const n = Math.min(BLOCK - this.hdrFill, len - off);
            chunk.copy(this.hdr, this.hdrFill, off, off + n);
            this.hdrFill += n;
            off += n;
            this.position += n;
            if (this.hdrFill === BLOCK) {
              this.hdrFill = 0;
              await this.onHeader(this.hdr, 0, this.position - BLOCK);
            }
          }
          break;
        }
        case 'collect': {
          const n =
            st.fill < st.buf.length ? Math.min(st.buf.length - st.fill, len - off) : Math.min(st.pad, len - off);
          if (st.fill < st.buf.length) {
            chunk.copy(st.buf, st.fill, off, off + n);
            st.fill += n;
          } else st.pad -= n;
          off += n;
          this.position += n;
          break;
        }
        case 'body': {
          if (st.data > 0) {
            const n = Math.min(st.data, len - off);
            if (st.sink) await this.deliver(st, chunk.subarray(off, off + n));
            st.data -= n;
            off += n;
            this.position += n;
          } else {
            const n = Math.min(st.pad, len - off);
            st.pad -= n;
            off += n;
            this.position += n;
          }
          break;
        }
      }
    }
  }

  /** Call at EOF: EOF at a header boundary (or after the end marker) is the end; anything else is truncation. */
  async end(): Promise<void> {
    await this.write(EMPTY);
    const st = this.state;
    if (st.t === 'done') return;
    if (st.t === 'header' && this.hdrFill === 0 && this.pending.exts === 0) {
      this.state = { t: 'done' };
      return;
    }
    throw new LayerInvalidError(`truncated tar (EOF at byte ${this.position})`);
  }

  private async deliver(st: Extract<State, { t: 'body' }>, data: Buffer): Promise<void> {
    const sink = st.sink!;
    if (!st.segs) {
      const r = sink.write(data, st.off);
      st.off += data.length;
      if (r) await r;
      return;
    }
    let p = 0;
    while (p < data.length) {
      const seg = st.segs[st.seg]!;
      const take = Math.min(data.length - p, seg.length - st.segPos);
      if (take > 0) {
        const r = sink.write(data.subarray(p, p + take), seg.offset + st.segPos);
        if (r) await r;
        p += take;
        st.segPos += take;
      }
      if (st.segPos === seg.length) {
        st.seg++;
        st.segPos = 0;
      }
    }
  }

  private collect(size: number, then: (b: Buffer) => void | Promise<void>): void {
    // A zero-size collect completes at the top of the write loop without input.
    this.state = { t: 'collect', buf: Buffer.allocUnsafe(size), fill: 0, pad: (BLOCK - (size % BLOCK)) % BLOCK, then };
  }

  private skip(size: number): void {
    this.state = {
      t: 'body',
      sink: null,
      data: size,
      pad: (BLOCK - (size % BLOCK)) % BLOCK,
      off: 0,
      segs: null,
      seg: 0,
      segPos: 0,
    };
  }

  private extension(at: number): void {
    if (++this.pending.exts > FIXED_LIMITS.extensionHeaders) {
      throw new LayerInvalidError(
        `more than ${FIXED_LIMITS.extensionHeaders} extension headers before one entry (tar header at byte ${at})`,
      );
    }
  }

  private async onHeader(b: Buffer, o: number, at: number): Promise<void> {
    if (isZeroBlock(b, o)) {
      if (this.pending.exts > 0)
        throw new LayerInvalidError(`extension header without an entry (tar header at byte ${at})`);
      this.state = { t: 'done' };
      return;
    }
    const h = decodeHeader(b, o, at);
    const size = toNum(h.size, `size (tar header at byte ${at})`);
    switch (h.typeflag) {
      case TF.PAX: {
        this.extension(at);
        const max = this.opts.limits.maxPaxHeaderBytes;
        if (size > max) throw new LimitExceededError('maxPaxHeaderBytes', size, max, `PAX header at byte ${at}`);
        this.collect(size, (body) => {
          for (const r of parsePaxRecords(body)) this.pending.pax.push(r);
        });
        return;
      }
      case TF.GLOBAL:
        // Ignored, as Go-based tools do; it still counts as an extension header (docs/erofs.md §6.2).
        this.extension(at);
        this.skip(size);
        return;
      case TF.LONGNAME:
      case TF.LONGLINK: {
        this.extension(at);
        const max = FIXED_LIMITS.gnuLongNameBytes;
        if (size > max) throw new LimitExceededError('gnuLongNameBytes', size, max, `GNU long name at byte ${at}`);
        const isName = h.typeflag === TF.LONGNAME;
        this.collect(size, (body) => {
          let e = body.length;
          while (e > 0 && body[e - 1] === 0) e--;
          if (isName) this.pending.longName = body.subarray(0, e);
          else this.pending.longLink = body.subarray(0, e);
        });
        return;
      }
      case TF.SPARSE:
        await this.oldGnuSparse(b, o, at, h, size);
        return;
      case TF.VOLUME:
        this.pending = { exts: 0, pax: [] };
        this.skip(size);
        return;
      default:
        await this.entry(h, at, size, null);
    }
  }

  /** Old GNU 'S': map in the header, extension blocks while isextended, real size at 483. */
  private async oldGnuSparse(b: Buffer, o: number, at: number, h: RawHeader, size: number): Promise<void> {
    const first = decodeOldGnuSparse(b, o, at);
    const raw: Array<[bigint, bigint]> = [...first.segments];
    const finish = async () => {
      const segs = raw.map(([off, len]) => ({
        offset: toNum(off, 'sparse offset'),
        length: toNum(len, 'sparse length'),
      }));
      await this.entry(h, at, size, { segs, realSize: toNum(first.realSize, 'sparse real size'), mapBytes: 0 });
    };
    if (!first.isExtended) {
      await finish();
      return;
    }
    const more = (blk: Buffer): void | Promise<void> => {
      const ext = decodeSparseExtension(blk, 0, at);
      raw.push(...ext.segments);
      if (raw.length > 1_000_000) throw new LayerInvalidError(`sparse map too long (tar header at byte ${at})`);
      if (ext.isExtended) {
        this.collect(BLOCK, more);
        return;
      }
      return finish();
    };
    this.collect(BLOCK, more);
  }

  private async entry(
    h: RawHeader,
    at: number,
    size: number,
    sparse: { segs: SparseSegment[]; realSize: number; mapBytes: number } | null,
  ): Promise<void> {
    const p = this.pending;
    this.pending = { exts: 0, pax: [] };
    const { pax, xattrs, sparse00 } = splitPaxRecords(p.pax, `tar header at byte ${at}`);
    const tfChar = String.fromCharCode(h.typeflag);
    const basePath = pax.get('path') ?? p.longName ?? h.name;
    let path = basePath;
    let display = displayPath(path);
    const linkpath = pax.get('linkpath') ?? p.longLink ?? h.linkname;
    const num = (key: string, fallback: bigint): bigint => {
      const v = pax.get(key);
      return v === undefined ? fallback : paxUint(v, key, display);
    };
    const storedSize = pax.has('size') ? toNum(num('size', 0n), 'PAX size', display) : size;
    let mtime = h.mtime;
    let mtimeNsec = 0;
    const pm = pax.get('mtime');
    if (pm !== undefined) {
      const t = paxTime(pm, display);
      mtime = t.sec;
      mtimeNsec = t.nsec;
    }
    const kind = entryKind(h.typeflag, basePath, display);
    const ps = kind === 'file' && !sparse ? paxSparseMap(pax, sparse00, display) : null;
    const paxSparse = ps?.format ?? 'none';
    const segs = sparse ? sparse.segs : (ps?.segs ?? null);
    const realSize = sparse ? sparse.realSize : (ps?.realSize ?? 0);
    // The real name of a PAX sparse file: GNU.sparse.name, else PAX path, else the header name.
    if (paxSparse !== 'none') {
      path = pax.get('GNU.sparse.name') ?? basePath;
      display = displayPath(path);
    }

    const e: TarEntry = {
      kind,
      typeflag: tfChar,
      path,
      linkpath,
      mode: h.mode,
      uid: num('uid', h.uid),
      gid: num('gid', h.gid),
      mtime,
      mtimeNsec,
      size: kind === 'file' && (sparse || paxSparse !== 'none') ? realSize : storedSize,
      devmajor: num('SCHILY.devmajor', h.devmajor),
      devminor: num('SCHILY.devminor', h.devminor),
      xattrs,
      sparse: segs,
      headerOffset: at,
    };

    if (paxSparse === '1.0') {
      await this.readSparseMap(e, storedSize, display);
      return;
    }
    await this.emit(e, storedSize, display);
  }

  /** PAX 1.0: the body starts with "count\n(offset\nnumbytes\n)*" padded to 512, then the data. */
  private async readSparseMap(e: TarEntry, storedSize: number, display: string): Promise<void> {
    const blocks: Buffer[] = [];
    const max = this.opts.limits.maxPaxHeaderBytes;
    const step = (blk: Buffer): void | Promise<void> => {
      blocks.push(blk);
      const used = blocks.length * BLOCK;
      if (used > storedSize) throw new LayerInvalidError('truncated GNU sparse 1.0 map', { entry: display });
      const nums = parseSparseMapLines(Buffer.concat(blocks), display);
      if (nums === null) {
        if (used >= max) throw new LimitExceededError('maxPaxHeaderBytes', used, max, `${display}: sparse map`);
        this.collect(BLOCK, step);
        return;
      }
      const segs: SparseSegment[] = [];
      for (let i = 0; i < nums.length; i += 2) segs.push({ offset: nums[i]!, length: nums[i + 1]! });
      e.sparse = segs;
      return this.emit(e, storedSize - used, display);
    };
    if (storedSize < BLOCK) throw new LayerInvalidError('truncated GNU sparse 1.0 map', { entry: display });
    this.collect(BLOCK, step);
  }

  /** Validates, counts, asks the consumer for a sink and enters the body state. */
  private async emit(e: TarEntry, bodyBytes: number, display: string): Promise<void> {
    if (++this.entries > this.opts.limits.maxLayerEntries) {
      throw new LimitExceededError('maxLayerEntries', this.entries, this.opts.limits.maxLayerEntries);
    }
    if (e.kind === 'file') {
      if (e.size > this.opts.limits.maxFileBytes)
        throw new LimitExceededError('maxFileBytes', e.size, this.opts.limits.maxFileBytes, display);
      if (e.sparse) {
        let end = 0;
        let sum = 0;
        for (const s of e.sparse) {
          if (s.offset < end || s.offset + s.length > e.size) {
            throw new LayerInvalidError('sparse segments overlap, are out of order or beyond the real size', {
              entry: display,
            });
          }
          end = s.offset + s.length;
          sum += s.length;
        }
        if (sum !== bodyBytes)
          throw new LayerInvalidError(`sparse data is ${bodyBytes} bytes, the map says ${sum}`, { entry: display });
        e.sparse = e.sparse.filter((s) => s.length > 0);
      } else if (bodyBytes !== e.size) {
        throw new LayerInvalidError('size mismatch', { entry: display });
      }
    }
    const sink = await this.opts.onEntry(e);
    const pad = (BLOCK - (bodyBytes % BLOCK)) % BLOCK;
    if (!sink || e.kind !== 'file') {
      this.skip(bodyBytes);
      return;
    }
    this.state = { t: 'body', sink, data: bodyBytes, pad, off: 0, segs: e.sparse, seg: 0, segPos: 0 };
  }
}

/**
 * The VMDK descriptor that joins fsmeta and the layer EROFS files into one virtual disk
 * (docs/erofs.md §8), its parser, and the validator of docs/storage.md §5. Pure text, no I/O.
 *
 * Units: extent sizes and offsets are 512-byte SECTORS (bytes / 512 = blocks × 8). Writing a
 * second piece's offset in bytes instead of sectors corrupts every file past 2 GiB, and qemu
 * checks none of it (it reads zeros past the end of a file), so the validator checks every extent
 * against the real file sizes.
 */
import { isAbsolute } from 'node:path';
import { SettingsError } from '../errors.js';

export const SECTOR_BYTES = 512;
/** Largest extent line: 2 GiB in sectors (twoGbMaxExtentFlat). */
export const MAX_EXTENT_SECTORS = 4_194_304;
/** `ddb.geometry.heads × ddb.geometry.sectors` (16 × 63). */
const SECTORS_PER_CYLINDER = 1008;
export const VMDK_HEADER = '# Disk DescriptorFile';

/** One file of the disk, in disk order: fsmeta first, then each manifest position's layer. */
export interface VmdkFile {
  path: string;
  sizeBytes: number;
}

/**
 * Why `p` cannot be written into a descriptor, or null when it can. qemu reads the path between
 * double quotes on one line, so `"`, CR and LF are out; non-UTF-8 bytes (which reach JS as U+FFFD
 * or lone surrogates) cannot round-trip; NUL ends the C string; a relative path would resolve from
 * the descriptor's folder.
 */
export function vmdkPathProblem(p: string): string | null {
  if (!isAbsolute(p)) return 'path is not absolute';
  if (/["\n\r\0]/.test(p)) return 'path contains a double quote, a line break or NUL';
  if (/\p{Cs}|\uFFFD/u.test(p)) return 'path is not valid UTF-8';
  return null;
}

/** VMDK `CID`: the first 8 hex digits of the (stand-in) manifest digest, `alg:hex` or bare hex. */
export function cidOf(digest: string): string {
  const hex = digest.slice(digest.indexOf(':') + 1).slice(0, 8);
  if (!/^[0-9a-f]{8}$/.test(hex)) throw new Error(`cidOf: not a digest: ${JSON.stringify(digest)}`);
  return hex;
}

/** The extent lines of one file: pieces of ≤ 4,194,304 sectors at offsets 0, 4194304, … */
export function extentLines(f: VmdkFile): string[] {
  if (!Number.isSafeInteger(f.sizeBytes) || f.sizeBytes <= 0 || f.sizeBytes % 4096 !== 0) {
    throw new Error(`vmdk: ${f.path}: size ${f.sizeBytes} is not a positive multiple of 4096`);
  }
  const total = f.sizeBytes / SECTOR_BYTES;
  const lines: string[] = [];
  for (let off = 0; off < total; off += MAX_EXTENT_SECTORS) {
    lines.push(`RW ${Math.min(MAX_EXTENT_SECTORS, total - off)} FLAT "${f.path}" ${off}`);
  }
  return lines;
}

/**
 * The descriptor text of docs/erofs.md §8. A path that cannot be written (see `vmdkPathProblem`) is a
 * `SettingsError`: it comes from where the cache lives (docs/storage.md §1), and the backend refuses
 * to open on it. `source` names that setting in the error.
 */
export function vmdkText(cid: string, files: readonly VmdkFile[], source = 'cacheDir'): string {
  if (!/^[0-9a-f]{8}$/.test(cid)) throw new Error(`vmdk: bad CID ${JSON.stringify(cid)}`);
  if (files.length === 0) throw new Error('vmdk: no files');
  for (const f of files) {
    const why = vmdkPathProblem(f.path);
    if (why) throw new SettingsError(source, `cannot write a VMDK extent for ${JSON.stringify(f.path)}: ${why}`);
  }
  const extents = files.flatMap(extentLines);
  const totalSectors = files.reduce((s, f) => s + f.sizeBytes / SECTOR_BYTES, 0);
  return [
    VMDK_HEADER,
    'version=1',
    `CID=${cid}`,
    'parentCID=ffffffff',
    'createType="twoGbMaxExtentFlat"',
    '',
    '# Extent description',
    ...extents,
    '',
    '# The Disk Data Base',
    '#DDB',
    'ddb.virtualHWVersion = "4"',
    `ddb.geometry.cylinders = "${Math.ceil(totalSectors / SECTORS_PER_CYLINDER)}"`,
    'ddb.geometry.heads = "16"',
    'ddb.geometry.sectors = "63"',
    'ddb.adapterType = "ide"',
    '',
  ].join('\n');
}

export interface VmdkExtent {
  access: string;
  sectors: number;
  type: string;
  path: string;
  offset: number;
}
export interface ParsedVmdk {
  /** `key=value` header fields (`version`, `CID`, `parentCID`, `createType`), quotes kept. */
  fields: Map<string, string>;
  /** `ddb.* = "value"` entries, quotes stripped. */
  ddb: Map<string, string>;
  extents: VmdkExtent[];
}

const EXTENT_RE = /^(RW|RDONLY|NOACCESS) (\d+) ([A-Z]+)(?: "([^"]*)"(?: (\d+))?)?$/;
const FIELD_RE = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/;
const DDB_RE = /^(ddb\.[A-Za-z0-9.]+) = "([^"]*)"$/;

/**
 * Parses a descriptor strictly: the `# Disk DescriptorFile` first line, then only comments, blank
 * lines, header fields, extent lines and DDB entries, with `\n` line endings and a final newline.
 * Returns the parse or a reason string. Anything this program would not have written is a reason:
 * an invalid descriptor is rebuilt, never repaired.
 */
export function parseVmdk(text: string): ParsedVmdk | string {
  if (!text.endsWith('\n')) return 'no final newline';
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== VMDK_HEADER) return `first line is not "${VMDK_HEADER}"`;
  const out: ParsedVmdk = { fields: new Map(), ddb: new Map(), extents: [] };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' || line.startsWith('#')) continue;
    const ext = EXTENT_RE.exec(line);
    if (ext) {
      const [, access, sectors, type, path, offset] = ext;
      if (path === undefined || offset === undefined) return `line ${i + 1}: extent without a path and an offset`;
      const e: VmdkExtent = { access: access!, sectors: Number(sectors), type: type!, path, offset: Number(offset) };
      if (!Number.isSafeInteger(e.sectors) || !Number.isSafeInteger(e.offset))
        return `line ${i + 1}: number out of range`;
      out.extents.push(e);
      continue;
    }
    if (/^(RW|RDONLY|NOACCESS)\b/.test(line)) return `line ${i + 1}: malformed extent line`;
    const ddb = DDB_RE.exec(line);
    if (ddb) {
      out.ddb.set(ddb[1]!, ddb[2]!);
      continue;
    }
    const f = FIELD_RE.exec(line);
    if (f) {
      out.fields.set(f[1]!, f[2]!);
      continue;
    }
    return `line ${i + 1}: unrecognized line`;
  }
  return out;
}

/**
 * docs/storage.md §5 / docs/erofs.md §8: the descriptor parses; it is twoGbMaxExtentFlat with only
 * `RW … FLAT` extents; the extent paths are the expected absolute paths in order (fsmeta, then the
 * layers by position); for each file the sectors add up to its length / 512 and the offsets run
 * 0, 4194304, … (each piece full-size except the last). `cid`, when given, must match too.
 * Returns a reason string, or null when valid.
 */
export function validateVmdk(
  text: string,
  expected: { paths: readonly string[]; sizes: readonly number[]; cid?: string },
): string | null {
  const p = parseVmdk(text);
  if (typeof p === 'string') return p;
  if (p.fields.get('createType') !== '"twoGbMaxExtentFlat"') return 'createType is not "twoGbMaxExtentFlat"';
  if (p.fields.get('version') !== '1') return 'version is not 1';
  const cid = p.fields.get('CID');
  if (cid === undefined || !/^[0-9a-f]{8}$/.test(cid)) return 'missing or malformed CID';
  if (expected.cid !== undefined && cid !== expected.cid) return `CID ${cid} is not ${expected.cid}`;
  if (expected.paths.length !== expected.sizes.length)
    throw new Error('validateVmdk: paths and sizes differ in length');
  let i = 0;
  for (let f = 0; f < expected.paths.length; f++) {
    const path = expected.paths[f]!;
    const size = expected.sizes[f]!;
    if (size <= 0 || size % SECTOR_BYTES !== 0) return `${path}: length ${size} is not a positive multiple of 512`;
    const want = size / SECTOR_BYTES;
    let have = 0;
    while (have < want) {
      const e = p.extents[i];
      if (e === undefined) return `extents end before ${path} is covered (${have} of ${want} sectors)`;
      if (e.access !== 'RW' || e.type !== 'FLAT') return `extent ${i + 1} is ${e.access} ${e.type}, not RW FLAT`;
      if (e.path !== path) return `extent ${i + 1} names ${JSON.stringify(e.path)}, expected ${JSON.stringify(path)}`;
      if (e.offset !== have) return `extent ${i + 1} of ${path} starts at sector ${e.offset}, expected ${have}`;
      if (e.sectors <= 0 || e.sectors > MAX_EXTENT_SECTORS) return `extent ${i + 1} has ${e.sectors} sectors`;
      if (have + e.sectors > want) return `extents of ${path} cover ${have + e.sectors} sectors, its length is ${want}`;
      if (have + e.sectors < want && e.sectors !== MAX_EXTENT_SECTORS)
        return `extent ${i + 1} of ${path} is short before its end`;
      have += e.sectors;
      i++;
    }
  }
  if (i !== p.extents.length) return `${p.extents.length - i} unexpected extent line(s) after the last file`;
  return null;
}

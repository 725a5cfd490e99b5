/**
 * Compares a mounted layer EROFS with GNU tar's extraction of the same tar, through the canonical
 * tree listing (test/fixtures/tree-manifest.py), ignoring only the documented differences
 * (docs/erofs.md §6.6, §6.8, §6.11): whiteout files become char 0/0, `.wh..wh..opq` becomes
 * `trusted.overlay.opaque=y` on its parent, other `.wh..wh.*` names vanish, and directories we
 * created implicitly (`trusted.msb.implicit=y`) are compared by type only (GNU tar makes them with
 * its own mode and mtime).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { run, treeManifest } from './env.js';

interface Line {
  path: string;
  type: string;
  attrs: string[];
}

const LINE_RE = /^(.*?) (dir|file|symlink|chr|blk|fifo|sock|unknown) (mode=\S+ .*)$/;

function parse(listing: string): Map<string, Line> {
  const out = new Map<string, Line>();
  for (const l of listing.split('\n')) {
    if (!l) continue;
    const m = LINE_RE.exec(l);
    if (!m) throw new Error(`unparsable manifest line: ${l}`);
    out.set(m[1]!, { path: m[1]!, type: m[2]!, attrs: m[3]!.split(' ') });
  }
  return out;
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function attr(l: Line, key: string): string | undefined {
  return l.attrs.find((a) => a.startsWith(`${key}=`))?.slice(key.length + 1);
}

function sortXattrs(attrs: string[]): string[] {
  const plain = attrs.filter((a) => !a.startsWith('xattr.'));
  return [...plain, ...attrs.filter((a) => a.startsWith('xattr.')).sort()];
}

function render(m: Map<string, Line>, implicit: Set<string>): string[] {
  return [...m.values()]
    .map((l) =>
      implicit.has(l.path) ? `${l.path} ${l.type} (implicit)` : `${l.path} ${l.type} ${sortXattrs(l.attrs).join(' ')}`,
    )
    .sort();
}

/** GNU tar extraction as root, keeping owners, modes, xattrs (all namespaces), ACLs and hardlinks. */
export function gnuTarExtract(tarPath: string, into: string): void {
  mkdirSync(into, { recursive: true });
  run('tar', [
    '--xattrs',
    '--xattrs-include=*',
    '--acls',
    '--numeric-owner',
    '-p',
    '--same-owner',
    '-xf',
    tarPath,
    '-C',
    into,
  ]);
}

export function expectSameTree(
  mounted: string,
  extracted: string,
  opts: { label?: string; manifestFlags?: string[] } = {},
): void {
  const flags = opts.manifestFlags ?? [];
  const a = parse(treeManifest(mounted, flags));
  const b = parse(treeManifest(extracted, flags));
  const implicit = new Set<string>();
  for (const l of a.values()) {
    const i = l.attrs.indexOf('xattr.trusted.msb.implicit=79');
    if (i >= 0) {
      implicit.add(l.path);
      l.attrs.splice(i, 1);
    }
  }
  // Whiteouts as GNU tar extracts them (plain files) → what the layer image holds.
  for (const l of [...b.values()]) {
    const base = l.path.slice(l.path.lastIndexOf('/') + 1);
    if (!base.startsWith('.wh.')) continue;
    b.delete(l.path);
    const parent = parentOf(l.path);
    if (base === '.wh..wh..opq') {
      const pl = b.get(parent);
      if (pl && !pl.attrs.includes('xattr.trusted.overlay.opaque=79')) pl.attrs.push('xattr.trusted.overlay.opaque=79');
      continue;
    }
    if (base.startsWith('.wh..wh.')) continue;
    const target = `${parent === '/' ? '' : parent}/${base.slice(4)}`;
    const existing = b.get(target);
    if (existing) {
      if (existing.type === 'dir' && !existing.attrs.includes('xattr.trusted.overlay.opaque=79'))
        existing.attrs.push('xattr.trusted.overlay.opaque=79');
      continue;
    }
    const keep = ['mode', 'uid', 'gid', 'mtime']
      .map((k) => (attr(l, k) === undefined ? undefined : `${k}=${attr(l, k)}`))
      .filter((x): x is string => !!x);
    const [mode, uid, gid, mtime] = keep;
    b.set(target, { path: target, type: 'chr', attrs: [mode!, uid!, gid!, 'rdev=0,0', ...(mtime ? [mtime] : [])] });
  }
  assert.deepEqual(
    render(a, implicit),
    render(b, implicit),
    `mounted EROFS vs GNU tar extraction${opts.label ? ` (${opts.label})` : ''}`,
  );
}

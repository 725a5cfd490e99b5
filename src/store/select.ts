/**
 * What an image argument names in the index (docs/api.md §2.0), for get, inspect, remove, tag,
 * save and `Sandbox.create`. Synchronous: call inside a read or write transaction.
 *
 * In order, like docker:
 * 1. a full manifest digest (`sha256:<64 hex>`, or the 64 hex alone) names that manifest;
 * 2. a reference names its cached ref;
 * 3. `REPO@sha256:…` not cached under that exact name names the manifest when a ref of REPO points
 *    at it, or a pin recorded it under REPO (an image pulled by tag is found by its digest);
 * 4. 4 or more hex digits, bare or `sha256:`-prefixed, name the one manifest whose digest starts
 *    with them (the short ID `msb images` shows); several → InvalidArgumentError listing them.
 */
import { ImageNotFoundError, InvalidArgumentError } from '../errors.js';
import { pinsOfManifest } from '../catalog/pins.js';
import {
  countRefsOfManifest,
  findManifest,
  findRef,
  manifestsByDigestPrefix,
  newestRefOfManifest,
  refsOfManifest,
  type ManifestRow,
  type RefRow,
  type UntaggedRow,
} from '../catalog/queries.js';
import { referenceName, type ImageSelector } from '../reference/reference.js';
import type { IndexDb } from '../catalog/db.js';

/** A ref named exactly, or a manifest named by digest, ID prefix or `REPO@digest`. */
export type ImageTarget =
  | { kind: 'ref'; ref: RefRow }
  | {
      kind: 'manifest';
      manifest: ManifestRow;
      /** The refs the argument names: every ref of the manifest, or those of REPO for `REPO@digest`. */
      refs: { id: number; reference: string }[];
    };

/** How many ID candidates an ambiguity error lists. */
const MAX_CANDIDATES = 10;

/** The argument as error messages show it: the digest, the hex as typed, or the familiar form. */
export function shownSelector(sel: ImageSelector, input: string): string {
  if (sel.kind === 'digest') return sel.digest;
  return sel.idPrefix !== null ? input.trim() : sel.familiar;
}

/** Resolves `sel` (see the module comment); ImageNotFoundError or InvalidArgumentError otherwise. */
export function resolveImage(index: IndexDb, sel: ImageSelector, input: string): ImageTarget {
  if (sel.kind === 'digest') {
    const m = findManifest(index, sel.digest);
    if (!m) throw new ImageNotFoundError(sel.digest);
    return { kind: 'manifest', manifest: m, refs: refsOfManifest(index, m.id) };
  }
  const ref = findRef(index, sel.canonical);
  if (ref) return { kind: 'ref', ref };
  if (sel.digest !== null) {
    const m = findManifest(index, sel.digest);
    if (m) {
      const name = `${sel.domain}/${sel.repository}`;
      const refs = refsOfManifest(index, m.id).filter((r) => referenceName(r.reference) === name);
      const pinned = pinsOfManifest(index, m.digest).some(
        (p) => p.reference !== null && referenceName(p.reference) === name,
      );
      if (refs.length > 0 || pinned) return { kind: 'manifest', manifest: m, refs };
    }
  }
  if (sel.idPrefix !== null) {
    const found = manifestsByDigestPrefix(index, sel.idPrefix, MAX_CANDIDATES + 1);
    if (found.length === 1) return { kind: 'manifest', manifest: found[0]!, refs: refsOfManifest(index, found[0]!.id) };
    if (found.length > 1) {
      const shown = found.slice(0, MAX_CANDIDATES).map((m) => m.digest);
      const more = found.length > MAX_CANDIDATES ? ', …' : '';
      const err = new InvalidArgumentError(
        'reference',
        `image ID ${input.trim()} is ambiguous: it is the start of ${shown.join(', ')}${more}; give more digits`,
      );
      err.details.candidates = shown;
      throw err;
    }
  }
  throw new ImageNotFoundError(shownSelector(sel, input));
}

/**
 * The row a handle is built from: the named ref; for a manifest, the newest of the refs named
 * (list order), else the manifest itself as an untagged row whose reference is its digest.
 */
export function targetRow(index: IndexDb, t: ImageTarget): RefRow {
  if (t.kind === 'ref') return t.ref;
  if (t.refs.length === 0 || t.refs.length === countRefsOfManifest(index, t.manifest.id))
    return newestRefOfManifest(index, t.manifest.digest) ?? untaggedRow(t.manifest);
  let best: RefRow | undefined;
  for (const r of t.refs) {
    const row = findRef(index, r.reference)!;
    if (
      !best ||
      row.created_at > best.created_at ||
      (row.created_at === best.created_at && row.reference < best.reference)
    )
      best = row;
  }
  return best!;
}

/** A manifest with no ref, as a RefRow: reference = digest, times from the manifest. */
export function untaggedRow(m: UntaggedRow & { id?: number }): RefRow {
  return {
    ref_id: 0,
    reference: m.digest,
    manifest_id: m.id ?? 0,
    index_digest: null,
    created_at: m.created_at,
    last_used_at: m.materialized_at ?? m.created_at,
    digest: m.digest,
    os: m.os,
    architecture: m.architecture,
    variant: m.variant,
    layer_count: m.layer_count,
    size_bytes: m.size_bytes,
  };
}

/**
 * The index cross-check (docs/storage.md §3.4): before a pull re-publishes a cached image or a
 * save exports one, its `manifest_layer` rows (and `layer_count`) are checked against the stored
 * raw manifest and config, which are the verified source of truth (their bytes hash to their
 * digests). Rows that disagree — a row missing, added, out of order, with another blob digest or
 * diff_id — are a damaged index: the image they describe is not the one the digest names, and
 * must never be stitched or exported under its tag.
 *
 * Pure: rows and bytes in, the true layer list and a description of the damage out.
 */
import { CacheCorruptError } from '../errors.js';
import { parseImageConfig, parseManifest } from '../oci/manifest.js';
import { digestAlgorithm, digestOf } from '../util/digest.js';

/** One layer position as the verified bytes define it. */
export interface TrueLayer {
  position: number;
  diffId: string;
  blobDigest: string;
  mediaType: string;
  size: number;
}

export interface StoredImage {
  manifestDigest: string;
  manifestMediaType: string;
  manifestRaw: Buffer;
  /** `manifest.layer_count`. */
  layerCount: number;
  configDigest: string;
  configRaw: Buffer;
  /** The `manifest_layer` rows, in the order the index returns them (position order). */
  rows: readonly { position: number; diffId: string; blobDigest: string }[];
}

export interface CrossCheck {
  /** The layers of the image, from the manifest's descriptors and the config's diff_ids. */
  layers: TrueLayer[];
  /** null when the rows agree; else what is wrong with them (for a CACHE_CORRUPT warning or error). */
  problem: string | null;
}

/**
 * Cross-checks the rows of one image. Throws CacheCorruptError when the stored bytes themselves
 * cannot be trusted (digest mismatch, unparsable, diff_id count ≠ layer count): then nothing in the
 * index can repair the image.
 */
export function crossCheckImage(s: StoredImage): CrossCheck {
  const where = `manifest ${s.manifestDigest}`;
  const bad = (why: string) => new CacheCorruptError(where, `${why}; the index is damaged`);
  if (digestOf(s.manifestRaw, digestAlgorithm(s.manifestDigest)) !== s.manifestDigest)
    throw bad('the stored manifest bytes do not match their digest');
  if (digestOf(s.configRaw, digestAlgorithm(s.configDigest)) !== s.configDigest)
    throw bad(`the stored config ${s.configDigest} does not match its digest`);
  let layers: TrueLayer[];
  try {
    const m = parseManifest(s.manifestRaw, { contentType: s.manifestMediaType, digest: s.manifestDigest });
    if (m.kind !== 'manifest') throw bad('the stored manifest is an index');
    if (m.config.digest !== s.configDigest) throw bad(`the stored manifest names config ${m.config.digest}`);
    const cfg = parseImageConfig(s.configRaw, s.configDigest, m.layers.length);
    layers = m.layers.map((d, i) => ({
      position: i,
      diffId: cfg.diffIds[i]!,
      blobDigest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
    }));
  } catch (err) {
    if (err instanceof CacheCorruptError) throw err;
    throw bad(`the stored manifest or config cannot be parsed (${(err as Error).message})`);
  }
  return { layers, problem: rowProblem(s, layers) };
}

/** The first disagreement between the rows and the true layers, or null. */
function rowProblem(s: StoredImage, layers: TrueLayer[]): string | null {
  const what = `the index rows of ${s.manifestDigest}`;
  if (s.layerCount !== layers.length) return `${what} record ${s.layerCount} layers; its manifest has ${layers.length}`;
  if (s.rows.length !== layers.length) return `${what} list ${s.rows.length} layers; its manifest has ${layers.length}`;
  for (const [i, r] of s.rows.entries()) {
    const t = layers[i]!;
    if (r.position !== i) return `${what}: position ${r.position} where ${i} was expected`;
    if (r.blobDigest !== t.blobDigest)
      return `${what}: layer ${i} is blob ${r.blobDigest}, the manifest says ${t.blobDigest}`;
    if (r.diffId !== t.diffId) return `${what}: layer ${i} is diff_id ${r.diffId}, the config says ${t.diffId}`;
  }
  return null;
}

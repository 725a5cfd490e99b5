/**
 * What a load archive holds (docs/archives.md §3–§6): format detection, the OCI path (index.json,
 * nested indexes, platform selection, naming by annotations or manifest.json), the Docker path
 * (manifest.json, configs, layer members), `--tag` and duplicate-name rules. Reads only JSON
 * members and member headers; layers are read later (load.ts).
 *
 * Choices where the contract is silent:
 * - A docker-path image is identified before its layers are hashed by (config digest, layer
 *   member list): two manifest.json entries with both equal are one image (names united).
 * - The index digest recorded on refs of an OCI image resolved through an index entry is the
 *   digest of that top-level index (what a pull of the same tag would record).
 * - Platform selection of an index entry reports PLATFORM_NOT_FOUND for the whole load.
 */
import {
  ArchiveInvalidError,
  DigestMismatchError,
  InvalidArgumentError,
  LimitExceededError,
  ManifestInvalidError,
  type MsbError,
} from '../errors.js';
import { FIXED_LIMITS, type Limits } from '../limits.js';
import {
  isIndexMediaType,
  isManifestMediaType,
  parseImageConfig,
  parseManifest,
  type ImageIndex,
  type ImageManifest,
  type IndexEntry,
} from '../oci/manifest.js';
import { configPlatform, entryPlatform, recordedPlatform, selectPlatform, type Platform } from '../oci/platform.js';
import { MEDIA_TYPES } from '../oci/media-types.js';
import { parseReference } from '../reference/reference.js';
import { digestAlgorithm, digestOf, isDigest, shortDigest } from '../util/digest.js';
import type { ArchiveMembers, Member } from './members.js';

export interface PlannedLayer {
  position: number;
  diffId: string;
  /** OCI: the descriptor's digest (verified while streaming). Docker: null until hashed. */
  blobDigest: string | null;
  /** Docker `blobs/sha256/<hex>` members: the digest the path promises. */
  pathDigest: string | null;
  /** OCI: descriptor media type. Docker: null until the magic is seen. */
  mediaType: string | null;
  /** OCI: descriptor size (= member size, checked at plan time). Docker: member size. */
  size: number;
  member: Member;
  memberName: string;
}

export interface PlannedImage {
  kind: 'oci' | 'docker';
  /** Canonical references, de-duplicated, in naming order. */
  names: string[];
  /** OCI: known. Docker: filled in once the layers are hashed (synthetic manifest). */
  manifestDigest: string | null;
  manifestRaw: Buffer | null;
  manifestMediaType: string;
  configDigest: string;
  configRaw: Buffer;
  platform: Platform;
  indexDigest: string | null;
  layers: PlannedLayer[];
  /** Identity before layers are hashed (dup-name rule, merging). */
  key: string;
  /** Content digests of the fsmeta and VMDK the stitch wrote (null = reused), for the commit. */
  artifactDigests?: { fsmeta: string | null; vmdk: string | null };
}

export interface PlanOptions {
  limits: Limits;
  target: Platform;
  explicitPlatform: boolean;
  tags: string[];
  warn(code: string, message: string): void;
}

export const MANIFEST_JSON_MAX = FIXED_LIMITS.manifestJsonBytes;

function parseJson(buf: Buffer, member: string): unknown {
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new ArchiveInvalidError(`archive member ${member} is not valid JSON: ${(err as Error).message}`, member);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `blobs/<alg>/<hex>` of a digest (validated first: no path can come from a bad one). */
export function blobName(digest: string): string {
  return `blobs/${digest.replace(':', '/')}`;
}

/** A name from an archive (annotation, RepoTags): invalid → ARCHIVE_INVALID naming it. */
function archiveName(name: string, where: string): string {
  try {
    return parseReference(name).canonical;
  } catch (err) {
    throw new ArchiveInvalidError(`${where}: invalid image name ${JSON.stringify(name)}: ${(err as MsbError).message}`);
  }
}

/**
 * Reads and verifies one blob of the OCI path: `blobs/<alg>/<hex>`, size = descriptor size,
 * hash = digest (DIGEST_MISMATCH naming the member otherwise); JSON blobs ≤ maxManifestBytes.
 */
async function readBlob(t: ArchiveMembers, desc: { digest: string; size: number }, limits: Limits): Promise<Buffer> {
  const name = blobName(desc.digest);
  const m = t.resolve(name);
  if (m.size > limits.maxManifestBytes)
    throw new LimitExceededError('maxManifestBytes', m.size, limits.maxManifestBytes, `archive member ${name}`);
  if (m.size !== desc.size) {
    throw new DigestMismatchError(
      'blob',
      desc.digest,
      `size ${m.size}`,
      `archive member ${name} is ${m.size} bytes; its descriptor says ${desc.size}`,
    );
  }
  const buf = await t.readBytes(name, limits.maxManifestBytes, 'maxManifestBytes');
  const actual = digestOf(buf, digestAlgorithm(desc.digest));
  if (actual !== desc.digest)
    throw new DigestMismatchError(
      'blob',
      desc.digest,
      actual,
      `archive member ${name} does not match its digest (${actual})`,
    );
  return buf;
}

/** Builds the plans of every image of the archive, in archive order, with names and tags applied. */
export async function planArchive(t: ArchiveMembers, o: PlanOptions): Promise<PlannedImage[]> {
  let images: PlannedImage[];
  if (t.has('oci-layout') && t.has('index.json')) images = await planOci(t, o);
  else if (t.has('manifest.json')) images = await planDocker(t, o);
  else if (t.has('repositories')) {
    const e = new ArchiveInvalidError(
      'not a docker-save or OCI-layout archive: it has a legacy `repositories` file but no manifest.json',
    );
    (e.details as Record<string, unknown>).hint = 're-save the image with a current docker, podman or skopeo';
    throw e;
  } else {
    throw new ArchiveInvalidError(
      'not a docker-save or OCI-layout archive (no manifest.json, nor oci-layout + index.json)',
    );
  }
  // An index with no manifest (or only entries of unknown types) loads nothing: an error, never a silent success.
  if (images.length === 0)
    throw new ArchiveInvalidError(
      'the archive holds no image (index.json lists no image manifest or index)',
      'index.json',
    );
  applyTags(images, o.tags);
  checkNames(images);
  return images;
}

/** §6: `--tag` on exactly one image; INVALID_ARGUMENT with several. */
function applyTags(images: PlannedImage[], tags: string[]): void {
  if (tags.length === 0) return;
  if (images.length !== 1) {
    const e = new InvalidArgumentError(
      'tag',
      `archive holds ${images.length} images; the tag option needs a single-image archive`,
    );
    e.details.option = 'tag';
    throw e;
  }
  const img = images[0]!;
  for (const tag of tags) if (!img.names.includes(tag)) img.names.push(tag);
}

/** Every image named; no name on two images. */
function checkNames(images: PlannedImage[]): void {
  const owner = new Map<string, PlannedImage>();
  for (const img of images) {
    if (img.names.length === 0) {
      const what =
        img.kind === 'oci'
          ? `image ${shortDigest(img.manifestDigest!)} has no name`
          : `image ${shortDigest(img.configDigest)} has no tag`;
      const e = new ArchiveInvalidError(`${what}; pass the tag option to name it`);
      e.details.option = 'tag';
      throw e;
    }
    for (const n of img.names) {
      const prev = owner.get(n);
      if (prev && prev !== img) throw new ArchiveInvalidError(`the archive names two different images ${n}`);
      owner.set(n, img);
    }
  }
}

function countImage(n: number): void {
  if (n > FIXED_LIMITS.archiveImages)
    throw new LimitExceededError('archiveImages', n, FIXED_LIMITS.archiveImages, 'images in the archive');
}

// ---- OCI path (§4) ------------------------------------------------------------------------------

async function planOci(t: ArchiveMembers, o: PlanOptions): Promise<PlannedImage[]> {
  const layoutRaw = await t.readBytes('oci-layout', o.limits.maxManifestBytes, 'maxManifestBytes');
  const layout = parseJson(layoutRaw, 'oci-layout');
  if (
    !isObject(layout) ||
    typeof layout.imageLayoutVersion !== 'string' ||
    !/^1\.0\.[0-9]+$/.test(layout.imageLayoutVersion)
  ) {
    throw new ArchiveInvalidError('archive member oci-layout: imageLayoutVersion must be 1.0.x', 'oci-layout');
  }
  const indexRaw = await t.readBytes('index.json', o.limits.maxManifestBytes, 'maxManifestBytes');
  const indexObj = parseJson(indexRaw, 'index.json');
  if (!isObject(indexObj) || indexObj.schemaVersion !== 2 || !Array.isArray(indexObj.manifests)) {
    throw new ArchiveInvalidError('archive member index.json is not an image index with schemaVersion 2', 'index.json');
  }
  let top: ImageIndex;
  try {
    const p = parseManifest(indexRaw, { contentType: MEDIA_TYPES.ociIndex });
    if (p.kind !== 'index') throw new ManifestInvalidError('not an index');
    top = p;
  } catch (err) {
    if (err instanceof ManifestInvalidError)
      throw new ArchiveInvalidError(`archive member index.json: ${err.message}`, 'index.json');
    throw err;
  }
  if (top.manifests.length > FIXED_LIMITS.indexEntries) {
    throw new LimitExceededError('indexEntries', top.manifests.length, FIXED_LIMITS.indexEntries, 'index.json');
  }
  // Names from manifest.json (dual archives), keyed by config digest.
  const repoTagsByConfig = new Map<string, string[]>();
  if (t.has('manifest.json')) {
    for (const e of await readManifestJson(t)) {
      const cd = await configDigestOfEntry(t, e.Config, o.limits);
      const list = repoTagsByConfig.get(cd) ?? [];
      for (const tag of e.RepoTags ?? []) list.push(tag);
      repoTagsByConfig.set(cd, list);
    }
  }
  const byManifest = new Map<string, PlannedImage>();
  const out: PlannedImage[] = [];
  for (const [i, entry] of top.manifests.entries()) {
    let img: PlannedImage | null = null;
    if (isManifestMediaType(entry.mediaType)) {
      const cached = byManifest.get(entry.digest);
      img =
        cached ?? (await ociImage(t, o, { digest: entry.digest, size: entry.size }, entryPlatform(entry), null, false));
    } else if (isIndexMediaType(entry.mediaType)) {
      const raw = await readBlob(t, entry, o.limits);
      const idx = parseManifest(raw, { digest: entry.digest, maxLayers: o.limits.maxLayers });
      if (idx.kind !== 'index')
        throw new ManifestInvalidError(
          `index.json entry ${entry.digest} is typed as an index but is a manifest`,
          entry.digest,
        );
      const loadIndex = async (e: IndexEntry): Promise<ImageIndex> => {
        const r = await readBlob(t, e, o.limits);
        const p = parseManifest(r, { digest: e.digest, maxLayers: o.limits.maxLayers });
        if (p.kind !== 'index')
          throw new ManifestInvalidError(`index entry ${e.digest} is typed as an index but is a manifest`, e.digest);
        return p;
      };
      const sel = await selectPlatform(idx, o.target, loadIndex);
      img =
        byManifest.get(sel.descriptor.digest) ??
        (await ociImage(t, o, sel.descriptor, sel.platform, entry.digest, true));
    } else {
      continue; // other media types are ignored (§4)
    }
    if (!byManifest.has(img.manifestDigest!)) {
      byManifest.set(img.manifestDigest!, img);
      out.push(img);
      countImage(out.length);
    }
    for (const n of entryNames(entry, i, img, repoTagsByConfig)) if (!img.names.includes(n)) img.names.push(n);
  }
  return out;
}

/** §4 Naming, for one top-level entry: the first source that gives a name. */
function entryNames(entry: IndexEntry, i: number, img: PlannedImage, repoTags: Map<string, string[]>): string[] {
  const where = `index.json manifests[${i}]`;
  const a = entry.annotations ?? {};
  const full = a['io.containerd.image.name'];
  if (typeof full === 'string' && full !== '') return [archiveName(full, where)];
  const ref = a['org.opencontainers.image.ref.name'];
  if (typeof ref === 'string' && ref !== '' && /[/:@]/.test(ref)) return [archiveName(ref, where)];
  // A bare tag names nothing by itself (it needs a repository: --tag).
  const tags = repoTags.get(img.configDigest);
  if (tags) return tags.filter((x) => x !== '<none>:<none>').map((x) => archiveName(x, 'manifest.json RepoTags'));
  return [];
}

/** Reads, verifies and parses one platform manifest and its config. */
async function ociImage(
  t: ArchiveMembers,
  o: PlanOptions,
  desc: { digest: string; size: number },
  indexPlatform: Platform | null,
  indexDigest: string | null,
  viaIndex: boolean,
): Promise<PlannedImage> {
  const raw = await readBlob(t, desc, o.limits);
  const p = parseManifest(raw, { digest: desc.digest, maxLayers: o.limits.maxLayers });
  if (p.kind !== 'manifest') throw new ManifestInvalidError(`${desc.digest} is not an image manifest`, desc.digest);
  const man: ImageManifest = p;
  const configRaw = await readBlob(t, man.config, o.limits);
  const config = parseImageConfig(configRaw, man.config.digest, man.layers.length);
  let platform: Platform;
  if (viaIndex) {
    const rec = recordedPlatform({
      indexEntry: indexPlatform,
      config: config.raw,
      target: o.target,
      explicit: o.explicitPlatform,
    });
    if (rec.warning) o.warn(rec.warning.code, rec.warning.message);
    platform = rec.platform;
  } else {
    // A top-level image manifest is a candidate whatever its platform (§4).
    platform = indexPlatform ?? configPlatform(config.raw) ?? { os: 'unknown', architecture: 'unknown', variant: null };
  }
  const layers: PlannedLayer[] = man.layers.map((l, i) => {
    const name = blobName(l.digest);
    const m = t.resolve(name, `layer ${i} of ${desc.digest}`);
    if (m.size !== l.size) {
      throw new DigestMismatchError(
        'blob',
        l.digest,
        `size ${m.size}`,
        `archive member ${name} is ${m.size} bytes; its descriptor says ${l.size}`,
      );
    }
    return {
      position: i,
      diffId: config.diffIds[i]!,
      blobDigest: l.digest,
      pathDigest: l.digest,
      mediaType: l.mediaType,
      size: l.size,
      member: m,
      memberName: name,
    };
  });
  return {
    kind: 'oci',
    names: [],
    manifestDigest: desc.digest,
    manifestRaw: raw,
    manifestMediaType: man.mediaType,
    configDigest: man.config.digest,
    configRaw,
    platform,
    indexDigest,
    layers,
    key: desc.digest,
  };
}

// ---- Docker path (§5) ---------------------------------------------------------------------------

interface ManifestJsonEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

async function readManifestJson(t: ArchiveMembers): Promise<ManifestJsonEntry[]> {
  const raw = await t.readBytes('manifest.json', MANIFEST_JSON_MAX, 'manifestJsonBytes');
  const v = parseJson(raw, 'manifest.json');
  if (!Array.isArray(v) || v.length === 0)
    throw new ArchiveInvalidError('archive member manifest.json must be a non-empty array', 'manifest.json');
  return v.map((e, i) => {
    const where = `manifest.json[${i}]`;
    if (!isObject(e) || typeof e.Config !== 'string')
      throw new ArchiveInvalidError(`${where}: Config must be a string`, 'manifest.json');
    if (
      e.RepoTags !== undefined &&
      e.RepoTags !== null &&
      (!Array.isArray(e.RepoTags) || e.RepoTags.some((x) => typeof x !== 'string'))
    ) {
      throw new ArchiveInvalidError(`${where}: RepoTags must be an array of strings or null`, 'manifest.json');
    }
    if (!Array.isArray(e.Layers) || e.Layers.some((x) => typeof x !== 'string')) {
      throw new ArchiveInvalidError(`${where}: Layers must be an array of strings`, 'manifest.json');
    }
    return {
      Config: e.Config,
      RepoTags: (e.RepoTags as string[] | null | undefined) ?? null,
      Layers: e.Layers as string[],
    };
  });
}

/** The digest a member path promises: `<hex>.json`, `<hex>.tar` or `blobs/sha256/<hex>`; else null. */
export function pathDigest(name: string, ext: '.json' | '.tar' | null): string | null {
  const b = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name);
  if (b) return `sha256:${b[1]}`;
  if (ext) {
    const re = ext === '.json' ? /^([0-9a-f]{64})\.json$/ : /^([0-9a-f]{64})\.tar$/;
    const m = re.exec(name);
    if (m) return `sha256:${m[1]}`;
  }
  return null;
}

async function configDigestOfEntry(t: ArchiveMembers, config: string, limits: Limits): Promise<string> {
  const promised = pathDigest(config, '.json');
  if (promised && isDigest(promised)) return promised;
  return digestOf(await t.readBytes(config, limits.maxManifestBytes, 'maxManifestBytes'));
}

async function planDocker(t: ArchiveMembers, o: PlanOptions): Promise<PlannedImage[]> {
  const entries = await readManifestJson(t);
  const byKey = new Map<string, PlannedImage>();
  const out: PlannedImage[] = [];
  for (const [i, e] of entries.entries()) {
    if (e.Layers.length > o.limits.maxLayers)
      throw new LimitExceededError('maxLayers', e.Layers.length, o.limits.maxLayers, `manifest.json[${i}] layers`);
    const configRaw = await t.readBytes(e.Config, o.limits.maxManifestBytes, 'maxManifestBytes');
    const configDigest = digestOf(configRaw);
    const promised = pathDigest(e.Config, '.json');
    if (promised && promised !== configDigest) {
      throw new DigestMismatchError(
        'config',
        promised,
        configDigest,
        `archive member ${e.Config} does not match its name (${configDigest})`,
      );
    }
    const config = parseImageConfig(configRaw, configDigest, e.Layers.length);
    const layers: PlannedLayer[] = e.Layers.map((name, pos) => {
      const m = t.resolve(name, `layer ${pos} of manifest.json[${i}]`);
      return {
        position: pos,
        diffId: config.diffIds[pos]!,
        blobDigest: null,
        pathDigest: pathDigest(name, null),
        mediaType: null,
        size: m.size,
        member: m,
        memberName: name,
      };
    });
    const key = `${configDigest}|${layers.map((l) => l.member.name).join('|')}`;
    let img = byKey.get(key);
    if (!img) {
      img = {
        kind: 'docker',
        names: [],
        manifestDigest: null,
        manifestRaw: null,
        manifestMediaType: MEDIA_TYPES.ociManifest,
        configDigest,
        configRaw,
        platform: configPlatform(config.raw) ?? { os: 'unknown', architecture: 'unknown', variant: null },
        indexDigest: null,
        layers,
        key,
      };
      byKey.set(key, img);
      out.push(img);
      countImage(out.length);
    }
    for (const tag of e.RepoTags ?? []) {
      if (tag === '<none>:<none>') continue;
      const n = archiveName(tag, `manifest.json[${i}] RepoTags`);
      if (!img.names.includes(n)) img.names.push(n);
    }
  }
  return out;
}

/**
 * The synthetic manifest of a docker-path image (§5): compact JSON, keys sorted at every level.
 * Deterministic: the same archive always gives the same bytes.
 */
export function syntheticManifest(
  configDigest: string,
  configSize: number,
  layers: { digest: string; mediaType: string; size: number }[],
): Buffer {
  const o = {
    config: { digest: configDigest, mediaType: MEDIA_TYPES.ociConfig, size: configSize },
    layers: layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
    mediaType: MEDIA_TYPES.ociManifest,
    schemaVersion: 2,
  };
  return Buffer.from(JSON.stringify(o), 'utf8');
}

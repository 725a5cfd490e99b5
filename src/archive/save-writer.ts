/**
 * The bytes of a saved archive (docs/archives.md §8.2–§8.4): member headers, regenerated layer
 * blobs (each spooled once to `cache/tmp/save-<pid>-<rand>.tar` while hashed, so that its header
 * — size and digest name — can precede it), configs kept or edited in place, regenerated
 * manifests, `index.json`, `manifest.json` and `oci-layout`, in the member order of §8.4.
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { AbortedError, CacheCorruptError, toIoError } from '../errors.js';
import type { ManifestRow } from '../catalog/queries.js';
import type { ImageSelector } from '../reference/reference.js';
import type { Lease } from '../store/lease.js';
import { saveSpoolPath } from '../store/paths.js';
import type { Store } from '../store/store.js';
import { digestOf, newHash } from '../util/digest.js';
import { ensureDirSync } from '../util/fs.js';
import { MEDIA_TYPES, ociLayerMediaType } from '../oci/media-types.js';
import { replaceDiffIds } from './json-edit.js';
import { entryHeaders, padding, writeLayerTar } from './layer-tar.js';

export interface Requested {
  sel: ImageSelector;
  input: string;
}

export interface ImageToSave {
  manifest: ManifestRow;
  config: Buffer;
  layers: { position: number; diffId: string }[];
  /** Filled while writing. */
  saved?: {
    manifestDigest: string;
    manifestRaw: Buffer;
    configDigest: string;
    diffIds: string[];
    layerDigests: string[];
  };
}

/** Buffered, byte-counting writer over a file handle or a stream (backpressure honoured). */
export class Out {
  bytes = 0;
  private buf: Buffer[] = [];
  private len = 0;
  constructor(
    private readonly fh: FileHandle | null,
    private readonly stream: NodeJS.WritableStream | null,
    private readonly path: string,
  ) {}

  async write(b: Buffer): Promise<void> {
    this.bytes += b.length;
    this.buf.push(b);
    this.len += b.length;
    if (this.len >= 1 << 20) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.len === 0) return;
    const data = Buffer.concat(this.buf, this.len);
    this.buf = [];
    this.len = 0;
    if (this.fh) {
      try {
        let off = 0;
        while (off < data.length) off += (await this.fh.write(data, off, data.length - off)).bytesWritten;
      } catch (err) {
        throw toIoError(err, this.path);
      }
      return;
    }
    await writeToStream(this.stream!, data, this.path);
  }
}

/**
 * One write to a caller's stream, its error listened to from before the write until it settles
 * (an EPIPE on a closed stdout rejects the save instead of escaping as an 'error' event).
 */
function writeToStream(s: NodeJS.WritableStream, data: Buffer, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (e?: unknown) => {
      s.off('error', done);
      s.off('drain', onDrain);
      if (e) reject(toIoError(e, path));
      else resolve();
    };
    const onDrain = () => done();
    s.on('error', done);
    const ok = s.write(data, (e?: Error | null) => {
      if (e) done(e);
    });
    if (ok) done();
    else s.on('drain', onDrain);
  });
}

function fileHeader(name: string, size: number): Buffer {
  return entryHeaders({ name: Buffer.from(name, 'utf8'), mode: 0o644, uid: 0, gid: 0, size, mtime: 0n, typeflag: '0' });
}

function dirHeader(name: string): Buffer {
  return entryHeaders({
    name: Buffer.from(name, 'utf8'),
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0n,
    typeflag: '5',
  });
}

/** One small member: header, bytes, padding. */
async function member(out: Out, name: string, data: Buffer): Promise<void> {
  await out.write(fileHeader(name, data.length));
  await out.write(data);
  await out.write(padding(data.length));
}

export interface ArchiveJob {
  store: Store;
  lease: Lease;
  out: Out;
  format: 'docker' | 'oci';
  requested: Requested[];
  /** The manifest row of each requested name, in request order. */
  rows: ManifestRow[];
  images: Map<string, ImageToSave>;
  signal: AbortSignal | undefined;
}

/** The whole archive, in the member order of docs/archives.md §8.4. */
export async function writeArchive(job: ArchiveJob): Promise<void> {
  const { out } = job;
  const written = new Set<string>();
  await out.write(dirHeader('blobs/'));
  await out.write(dirHeader('blobs/sha256/'));
  const regenerated = new Map<string, { digest: string; size: number }>();
  for (const img of job.images.values()) await writeImageBlobs(job, img, regenerated, written);
  await member(out, 'index.json', indexJson(job));
  if (job.format === 'docker') await member(out, 'manifest.json', manifestJson(job));
  await member(out, 'oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}', 'utf8'));
  await out.write(Buffer.alloc(1024));
}

/** One image's layer blobs (bottom to top), then its config, then its manifest — each blob once. */
async function writeImageBlobs(
  job: ArchiveJob,
  img: ImageToSave,
  regenerated: Map<string, { digest: string; size: number }>,
  written: Set<string>,
): Promise<void> {
  const blob = async (digest: string, data: Buffer) => {
    if (written.has(digest)) return;
    written.add(digest);
    await member(job.out, `blobs/sha256/${digest.slice(7)}`, data);
  };
  const layerDigests: string[] = [];
  for (const l of img.layers) {
    if (job.signal?.aborted) throw new AbortedError(job.signal.reason);
    let r = regenerated.get(l.diffId);
    if (!r) {
      r = await layerBlob(job, l.diffId, written);
      regenerated.set(l.diffId, r);
    }
    layerDigests.push(r.digest);
  }
  const same = img.layers.every((l, i) => l.diffId === layerDigests[i]);
  const config = same ? img.config : replaceDiffIds(img.config, layerDigests, img.manifest.config_digest);
  const configDigest = digestOf(config);
  await blob(configDigest, config);
  const manifestRaw = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
      layers: img.layers.map((l, i) => ({
        mediaType: ociLayerMediaType('none'),
        digest: layerDigests[i]!,
        size: regenerated.get(l.diffId)!.size,
      })),
    }),
    'utf8',
  );
  const manifestDigest = digestOf(manifestRaw);
  await blob(manifestDigest, manifestRaw);
  img.saved = { manifestDigest, manifestRaw, configDigest, diffIds: layerDigests, layerDigests };
}

/** index.json: one descriptor per requested name, in request order. */
function indexJson(job: ArchiveJob): Buffer {
  const descriptors = job.requested.map((r, i) => {
    const img = job.images.get(job.rows[i]!.digest)!;
    const m = img.manifest;
    const platform: Record<string, string> = { architecture: m.architecture ?? 'unknown', os: m.os ?? 'unknown' };
    if (m.variant) platform.variant = m.variant;
    const d: Record<string, unknown> = {
      mediaType: MEDIA_TYPES.ociManifest,
      digest: img.saved!.manifestDigest,
      size: img.saved!.manifestRaw.length,
    };
    if (r.sel.kind === 'reference') {
      const ann: Record<string, string> = { 'io.containerd.image.name': r.sel.canonical };
      if (r.sel.tag !== null) ann['org.opencontainers.image.ref.name'] = r.sel.tag;
      d.annotations = ann;
    }
    d.platform = platform;
    return d;
  });
  return Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: descriptors }),
    'utf8',
  );
}

/** manifest.json (docker format): one entry per distinct manifest, RepoTags from tagged requests. */
function manifestJson(job: ArchiveJob): Buffer {
  const entries: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const byManifest = new Map<string, { Config: string; RepoTags: string[]; Layers: string[] }>();
  job.requested.forEach((r, i) => {
    const img = job.images.get(job.rows[i]!.digest)!;
    let e = byManifest.get(img.manifest.digest);
    if (!e) {
      e = {
        Config: `blobs/sha256/${img.saved!.configDigest.slice(7)}`,
        RepoTags: [],
        Layers: img.saved!.layerDigests.map((d) => `blobs/sha256/${d.slice(7)}`),
      };
      byManifest.set(img.manifest.digest, e);
      entries.push(e);
    }
    const sel = r.sel;
    if (sel.kind === 'reference' && sel.tag !== null && sel.digest === null && !e.RepoTags.includes(sel.familiar))
      e.RepoTags.push(sel.familiar);
  });
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

/**
 * Regenerates one layer into a spool (hashing it), then writes its member (unless a blob with the
 * same digest was already written) and removes the spool.
 */
async function layerBlob(
  job: ArchiveJob,
  diffId: string,
  written: Set<string>,
): Promise<{ digest: string; size: number }> {
  const { store, signal } = job;
  const spool = saveSpoolPath(store.paths.root);
  await job.lease.addItem('temp', spool.name);
  ensureDirSync(store.paths.tmpDir, 0o700);
  let sh: FileHandle | null = null;
  try {
    try {
      sh = await open(spool.path, 'wx+', 0o600);
    } catch (err) {
      throw toIoError(err, spool.path);
    }
    const { digest, size } = await spoolLayer(store, diffId, sh, spool.path, signal);
    if (!written.has(digest)) {
      written.add(digest);
      await job.out.write(fileHeader(`blobs/sha256/${digest.slice(7)}`, size));
      await copySpool(sh, size, spool.path, job.out, signal);
      await job.out.write(padding(size));
    }
    return { digest, size };
  } finally {
    if (sh) await sh.close().catch(() => {});
    await unlink(spool.path).catch(() => {});
  }
}

/** The regenerated tar of `diffId` into the spool, hashed as written; 1 MiB writes. */
async function spoolLayer(
  store: Store,
  diffId: string,
  sh: FileHandle,
  path: string,
  signal: AbortSignal | undefined,
): Promise<{ digest: string; size: number }> {
  const h = newHash('sha256');
  let size = 0;
  const pending: Buffer[] = [];
  let plen = 0;
  const flush = async () => {
    if (plen === 0) return;
    const data = Buffer.concat(pending, plen);
    pending.length = 0;
    plen = 0;
    let off = 0;
    try {
      while (off < data.length)
        off += (await sh.write(data, off, data.length - off, size - data.length + off)).bytesWritten;
    } catch (err) {
      throw toIoError(err, path);
    }
  };
  await writeLayerTar(
    store.paths.layer(diffId),
    async (b) => {
      h.update(b);
      size += b.length;
      pending.push(b);
      plen += b.length;
      if (plen >= 1 << 20) await flush();
    },
    signal ? { signal } : {},
  );
  await flush();
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** Copies `size` bytes of the spool into the archive, 1 MiB at a time. */
async function copySpool(
  sh: FileHandle,
  size: number,
  path: string,
  out: Out,
  signal: AbortSignal | undefined,
): Promise<void> {
  const chunk = Buffer.alloc(1 << 20);
  let pos = 0;
  while (pos < size) {
    if (signal?.aborted) throw new AbortedError(signal.reason);
    let bytesRead: number;
    try {
      ({ bytesRead } = await sh.read(chunk, 0, Math.min(chunk.length, size - pos), pos));
    } catch (err) {
      throw toIoError(err, path);
    }
    if (bytesRead === 0) throw new CacheCorruptError(path, 'save spool is shorter than written');
    await out.write(Buffer.from(chunk.subarray(0, bytesRead)));
    pos += bytesRead;
  }
}

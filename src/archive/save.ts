/**
 * `Image.save` (docs/archives.md §8, docs/api.md §2.7): every reference is resolved in the index and every
 * layer file validated BEFORE anything is written; then layers are regenerated as tar from their
 * EROFS (layer-tar.ts), each spooled once to `cache/tmp/save-<pid>-<rand>.tar` (a lease item)
 * while it is hashed, so its member header (size, digest name) can precede it; configs are kept
 * byte-for-byte when the diff_ids did not change, else edited in place (json-edit.ts); manifests,
 * `index.json` and `manifest.json` are pure functions of these, so the output is byte-stable.
 *
 * A path output goes to `<output>.<rand>.partial`, renamed into place on success and removed on
 * failure; a stream output is written directly.
 *
 * Choices where the contract is silent:
 * - `SaveResult.images[i].manifestDigest` and `diffIds` are those of the archive just written (the
 *   regenerated manifest and layers), in request order, one entry per requested name.
 * - The config descriptor's media type is `application/vnd.oci.image.config.v1+json`.
 * - A manifest row without os/architecture gets `"unknown"` in the index.json platform.
 * - Save emits no progress events (they describe pulls and loads); `onProgress` is accepted.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { AbortedError, CacheCorruptError, ImageNotFoundError, InvalidArgumentError, toIoError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { SaveOptions, SaveResult } from './types.js';
import { configRaw, findManifest, findRef, manifestLayers, type ManifestRow } from '../catalog/queries.js';
import { checkLayer } from '../store/artifacts.js';
import { parseImageSelector, type ImageSelector } from '../reference/reference.js';
import { createLease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { saveSpoolPath } from '../store/paths.js';
import { digestOf, newHash } from '../util/digest.js';
import { MEDIA_TYPES, ociLayerMediaType } from '../oci/media-types.js';
import { renameDurable } from '../util/fs.js';
import { replaceDiffIds } from './json-edit.js';
import { entryHeaders, padding, writeLayerTar } from './layer-tar.js';

interface Requested {
  sel: ImageSelector;
  input: string;
}

interface ImageToSave {
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
class Out {
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
    const s = this.stream!;
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: unknown) => reject(toIoError(e, this.path));
      s.once('error', onErr);
      const ok = s.write(data, (e?: Error | null) => {
        if (e) onErr(e);
      });
      if (ok) {
        s.off('error', onErr);
        resolve();
      } else
        s.once('drain', () => {
          s.off('error', onErr);
          resolve();
        });
    });
  }
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

/** Saves `references` to `output` (a path or a writable stream). */
export async function saveArchive(
  backend: StoreOpener,
  references: string | string[],
  output: string | NodeJS.WritableStream,
  options: SaveOptions = {},
): Promise<SaveResult> {
  const list = Array.isArray(references) ? references : [references];
  if (list.length === 0) throw new InvalidArgumentError('references', 'save needs at least one image reference');
  const format = options.format ?? 'docker';
  if (format !== 'docker' && format !== 'oci')
    throw new InvalidArgumentError('format', `format must be docker or oci, not ${JSON.stringify(format)}`);
  if (
    typeof output !== 'string' &&
    (typeof output !== 'object' || output === null || typeof (output as NodeJS.WritableStream).write !== 'function')
  ) {
    throw new InvalidArgumentError('output', 'output must be a path or a writable stream');
  }
  const requested: Requested[] = [];
  const seen = new Set<string>();
  for (const input of list) {
    const sel = parseImageSelector(input);
    const key = sel.kind === 'digest' ? `@${sel.digest}` : sel.canonical;
    if (seen.has(key)) continue;
    seen.add(key);
    requested.push({ sel, input });
  }
  const signal = options.signal;
  const notFound = (r: Requested) => new ImageNotFoundError(r.sel.kind === 'digest' ? r.sel.digest : r.sel.familiar);

  return backend._run(async () => {
    if (!(await backend._open('read'))) throw notFound(requested[0]!);
    const store = await backend._open('write', signal);
    const index = store.index;
    // Every reference is resolved first (the index decides, never the files).
    const rows = await index.read(() =>
      requested.map((r) => {
        if (r.sel.kind === 'digest') return findManifest(index, r.sel.digest) ?? null;
        const ref = findRef(index, r.sel.canonical);
        return ref ? (findManifest(index, ref.digest) ?? null) : null;
      }),
    );
    rows.forEach((m, i) => {
      if (!m) throw notFound(requested[i]!);
    });
    const images = new Map<string, ImageToSave>();
    await index.read(() => {
      for (const m of rows as ManifestRow[]) {
        if (images.has(m.digest)) continue;
        const cfg = configRaw(index, m.config_digest);
        if (!cfg)
          throw new CacheCorruptError(
            store.paths.root,
            `the config ${m.config_digest} of ${m.digest} is missing from the index`,
          );
        images.set(m.digest, {
          manifest: m,
          config: cfg,
          layers: manifestLayers(index, m.id).map((l) => ({ position: l.position, diffId: l.diff_id })),
        });
      }
    });
    const lease = await createLease(store, 'save', { signal });
    let partial: string | null = null;
    let fh: FileHandle | null = null;
    try {
      const diffIds = [...new Set([...images.values()].flatMap((i) => i.layers.map((l) => l.diffId)))];
      await lease.addItems([
        ...[...images.keys()].map((d) => ({ kind: 'manifest' as const, value: d })),
        ...diffIds.map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
      for (const d of diffIds) {
        const c = await withLock(store, 'layer', d, () => checkLayer(store, d), { signal });
        if (typeof c !== 'object' || !c.valid) {
          throw new CacheCorruptError(
            store.paths.layer(d),
            `layer ${d} is ${typeof c === 'object' ? c.reason : 'busy'}`,
          );
        }
      }
      // Only now: the output.
      let out: Out;
      if (typeof output === 'string') {
        partial = `${output}.${randomBytes(6).toString('hex')}.partial`;
        try {
          fh = await open(partial, 'wx', 0o644);
        } catch (err) {
          throw toIoError(err, partial);
        }
        out = new Out(fh, null, partial);
      } else {
        out = new Out(null, output, '<stream>');
      }
      await writeArchive(store, lease, out, format, requested, rows as ManifestRow[], images, signal);
      await out.flush();
      if (fh) {
        try {
          await fh.sync();
        } catch (err) {
          throw toIoError(err, partial!);
        }
        await fh.close();
        fh = null;
        if (signal?.aborted) throw new AbortedError(signal.reason);
        await renameDurable(partial!, output as string);
        partial = null;
      }
      return {
        format,
        bytesWritten: out.bytes,
        images: requested.map((r, i) => {
          const s = images.get((rows as ManifestRow[])[i]!.digest)!.saved!;
          return {
            reference: r.sel.kind === 'digest' ? r.sel.digest : r.sel.familiar,
            manifestDigest: s.manifestDigest,
            diffIds: s.diffIds,
          };
        }),
      };
    } finally {
      if (fh) await fh.close().catch(() => {});
      if (partial) await unlink(partial).catch(() => {});
      await lease.release();
    }
  });
}

async function writeArchive(
  store: Store,
  lease: Awaited<ReturnType<typeof createLease>>,
  out: Out,
  format: 'docker' | 'oci',
  requested: Requested[],
  rows: ManifestRow[],
  images: Map<string, ImageToSave>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const written = new Set<string>();
  const blob = async (digest: string, data: Buffer) => {
    if (written.has(digest)) return;
    written.add(digest);
    await out.write(fileHeader(`blobs/sha256/${digest.slice(7)}`, data.length));
    await out.write(data);
    await out.write(padding(data.length));
  };
  await out.write(dirHeader('blobs/'));
  await out.write(dirHeader('blobs/sha256/'));
  const regenerated = new Map<string, { digest: string; size: number }>();
  for (const img of images.values()) {
    const layerDigests: string[] = [];
    for (const l of img.layers) {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      let r = regenerated.get(l.diffId);
      if (!r) {
        r = await layerBlob(store, lease, out, l.diffId, written, signal);
        regenerated.set(l.diffId, r);
      }
      layerDigests.push(r.digest);
    }
    const stored = img.layers.map((l) => l.diffId);
    const same = stored.every((d, i) => d === layerDigests[i]);
    const config = same ? img.config : replaceDiffIds(img.config, layerDigests, img.manifest.config_digest);
    const configDigest = digestOf(config);
    await blob(configDigest, config);
    const manifestRaw = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
        layers: img.layers.map((_, i) => ({
          mediaType: ociLayerMediaType('none'),
          digest: layerDigests[i]!,
          size: regenerated.get(img.layers[i]!.diffId)!.size,
        })),
      }),
      'utf8',
    );
    const manifestDigest = digestOf(manifestRaw);
    await blob(manifestDigest, manifestRaw);
    img.saved = { manifestDigest, manifestRaw, configDigest, diffIds: layerDigests, layerDigests };
  }
  // index.json: one descriptor per requested name, in request order.
  const descriptors = requested.map((r, i) => {
    const img = images.get(rows[i]!.digest)!;
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
  const indexJson = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: descriptors }),
    'utf8',
  );
  await out.write(fileHeader('index.json', indexJson.length));
  await out.write(indexJson);
  await out.write(padding(indexJson.length));
  if (format === 'docker') {
    const entries: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const byManifest = new Map<string, { Config: string; RepoTags: string[]; Layers: string[] }>();
    requested.forEach((r, i) => {
      const img = images.get(rows[i]!.digest)!;
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
      if (
        r.sel.kind === 'reference' &&
        r.sel.tag !== null &&
        r.sel.digest === null &&
        !e.RepoTags.includes(r.sel.familiar)
      )
        e.RepoTags.push(r.sel.familiar);
    });
    const mj = Buffer.from(JSON.stringify(entries), 'utf8');
    await out.write(fileHeader('manifest.json', mj.length));
    await out.write(mj);
    await out.write(padding(mj.length));
  }
  const layout = Buffer.from('{"imageLayoutVersion":"1.0.0"}', 'utf8');
  await out.write(fileHeader('oci-layout', layout.length));
  await out.write(layout);
  await out.write(padding(layout.length));
  await out.write(Buffer.alloc(1024));
}

/**
 * Regenerates one layer into a spool (hashing it), then writes its member (unless a blob with the
 * same digest was already written) and removes the spool.
 */
async function layerBlob(
  store: Store,
  lease: Awaited<ReturnType<typeof createLease>>,
  out: Out,
  diffId: string,
  written: Set<string>,
  signal: AbortSignal | undefined,
): Promise<{ digest: string; size: number }> {
  const spool = saveSpoolPath(store.paths.root);
  await lease.addItem('temp', spool.name);
  await mkdir(store.paths.tmpDir, { recursive: true }).catch((err) => {
    throw toIoError(err, store.paths.tmpDir);
  });
  let sh: FileHandle | null = null;
  try {
    try {
      sh = await open(spool.path, 'wx+', 0o600);
    } catch (err) {
      throw toIoError(err, spool.path);
    }
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
          off += (await sh!.write(data, off, data.length - off, size - data.length + off)).bytesWritten;
      } catch (err) {
        throw toIoError(err, spool.path);
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
    const digest = `sha256:${h.digest('hex')}`;
    if (!written.has(digest)) {
      written.add(digest);
      await out.write(fileHeader(`blobs/sha256/${digest.slice(7)}`, size));
      const chunk = Buffer.alloc(1 << 20);
      let pos = 0;
      while (pos < size) {
        if (signal?.aborted) throw new AbortedError(signal.reason);
        const { bytesRead } = await sh.read(chunk, 0, Math.min(chunk.length, size - pos), pos);
        if (bytesRead === 0) throw new CacheCorruptError(spool.path, 'save spool is shorter than written');
        await out.write(Buffer.from(chunk.subarray(0, bytesRead)));
        pos += bytesRead;
      }
      await out.write(padding(size));
    }
    return { digest, size };
  } finally {
    if (sh) await sh.close().catch(() => {});
    await unlink(spool.path).catch(() => {});
  }
}

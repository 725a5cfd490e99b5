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
 * Before anything is written, each image's `manifest_layer` rows are cross-checked against its
 * stored manifest and config (store/consistency.ts): rows that disagree are CACHE_CORRUPT (a pull
 * of the name repairs them), so a damaged index never exports a different image under the tag.
 * The archive's bytes are written by save-writer.ts.
 *
 * Choices where the contract is silent:
 * - `SaveResult.images[i].manifestDigest` and `diffIds` are those of the archive just written (the
 *   regenerated manifest and layers), in request order, one entry per requested name.
 * - The config descriptor's media type is `application/vnd.oci.image.config.v1+json`.
 * - A manifest row without os/architecture gets `"unknown"` in the index.json platform.
 * - Save emits no progress events (they describe pulls and loads); `onProgress` is accepted.
 */
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { AbortedError, CacheCorruptError, ImageNotFoundError, InvalidArgumentError, toIoError } from '../errors.js';
import type { Store, StoreOpener } from '../store/store.js';
import type { SaveOptions, SaveResult } from './types.js';
import { configRaw, findManifest, manifestLayers, type ManifestRow } from '../catalog/queries.js';
import { resolveImage } from '../store/select.js';
import { checkLayer } from '../store/artifacts.js';
import { crossCheckImage } from '../store/consistency.js';
import { parseImageSelector } from '../reference/reference.js';
import { createLease } from '../store/lease.js';
import { withLock } from '../store/locks.js';
import { renameDurable } from '../util/fs.js';
import { Out, writeArchive, type ImageToSave, type Requested } from './save-writer.js';

/** Argument errors before any I/O: the de-duplicated requests (first occurrence sets the order) and the format. */
function parseSaveArgs(
  references: string | string[],
  output: string | NodeJS.WritableStream,
  options: SaveOptions,
): { requested: Requested[]; format: 'docker' | 'oci' } {
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
  return { requested, format };
}

function notFound(r: Requested): ImageNotFoundError {
  return new ImageNotFoundError(r.sel.kind === 'digest' ? r.sel.digest : r.sel.familiar);
}

/** Saves `references` to `output` (a path or a writable stream). */
export async function saveArchive(
  backend: StoreOpener,
  references: string | string[],
  output: string | NodeJS.WritableStream,
  options: SaveOptions = {},
): Promise<SaveResult> {
  const { requested, format } = parseSaveArgs(references, output, options);
  const signal = options.signal;
  return backend._run(async () => {
    if (!(await backend._open('read'))) throw notFound(requested[0]!);
    const store = await backend._open('write', signal);
    const { rows, images } = await resolveImages(store, requested);
    const lease = await createLease(store, 'save', { signal });
    let partial: string | null = null;
    let fh: FileHandle | null = null;
    try {
      const diffIds = [...new Set([...images.values()].flatMap((i) => i.layers.map((l) => l.diffId)))];
      await lease.addItems([
        ...[...images.keys()].map((d) => ({ kind: 'manifest' as const, value: d })),
        ...diffIds.map((d) => ({ kind: 'layer' as const, value: d })),
      ]);
      await checkLayerFiles(store, diffIds, signal);
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
      } else out = new Out(null, output, '<stream>');
      await writeArchive({ store, lease, out, format, requested, rows, images, signal });
      await out.flush();
      if (fh) {
        await finishFile(fh, partial!, output as string, signal);
        fh = null;
        partial = null;
      }
      return saveResult(format, out.bytes, requested, rows, images);
    } finally {
      if (fh) await fh.close().catch(() => {});
      if (partial) await unlink(partial).catch(() => {});
      await lease.release();
    }
  });
}

/**
 * Every requested name resolved in the index (the index decides, never the files), and each
 * distinct manifest's config and layers, cross-checked against its stored bytes.
 */
async function resolveImages(
  store: Store,
  requested: Requested[],
): Promise<{ rows: ManifestRow[]; images: Map<string, ImageToSave> }> {
  const index = store.index;
  return index.read(() => {
    const rows = requested.map((r) => {
      const t = resolveImage(index, r.sel, r.input);
      if (t.kind !== 'ref') {
        // Found by image ID: saved by digest, without a name.
        if (r.sel.kind === 'reference' && r.sel.digest === null) r.sel = { kind: 'digest', digest: t.manifest.digest };
        return t.manifest;
      }
      const m = findManifest(index, t.ref.digest);
      if (!m) throw notFound(r);
      return m;
    });
    const images = new Map<string, ImageToSave>();
    for (const [i, m] of rows.entries()) {
      if (images.has(m.digest)) continue;
      const cfg = configRaw(index, m.config_digest);
      if (!cfg)
        throw new CacheCorruptError(
          store.paths.root,
          `the config ${m.config_digest} of ${m.digest} is missing from the index`,
        );
      const stored = manifestLayers(index, m.id);
      const check = crossCheckImage({
        manifestDigest: m.digest,
        manifestMediaType: m.media_type,
        manifestRaw: m.raw,
        layerCount: m.layer_count,
        configDigest: m.config_digest,
        configRaw: cfg,
        rows: stored.map((l) => ({ position: l.position, diffId: l.diff_id, blobDigest: l.blob_digest })),
      });
      if (check.problem) {
        const e = new CacheCorruptError(index.path, check.problem);
        (e.details as Record<string, unknown>).hint =
          `msb pull --policy never ${requested[i]!.input} repairs the rows from the stored manifest (offline when its layers are cached)`;
        throw e;
      }
      const layers = stored.map((l) => ({ position: l.position, diffId: l.diff_id }));
      images.set(m.digest, { manifest: m, config: cfg, layers });
    }
    return { rows, images };
  });
}

/** Every layer file validated under its lock (docs/storage.md §5) BEFORE anything is written. */
async function checkLayerFiles(store: Store, diffIds: string[], signal: AbortSignal | undefined): Promise<void> {
  for (const d of diffIds) {
    const c = await withLock(store, 'layer', d, () => checkLayer(store, d), { signal });
    if (typeof c !== 'object' || !c.valid) {
      throw new CacheCorruptError(store.paths.layer(d), `layer ${d} is ${typeof c === 'object' ? c.reason : 'busy'}`);
    }
  }
}

/** fsync, close, and rename the partial file into place (unless aborted meanwhile). */
async function finishFile(
  fh: FileHandle,
  partial: string,
  output: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await fh.sync();
  } catch (err) {
    throw toIoError(err, partial);
  } finally {
    await fh.close().catch(() => {});
  }
  if (signal?.aborted) throw new AbortedError(signal.reason);
  await renameDurable(partial, output);
}

function saveResult(
  format: 'docker' | 'oci',
  bytesWritten: number,
  requested: Requested[],
  rows: ManifestRow[],
  images: Map<string, ImageToSave>,
): SaveResult {
  return {
    format,
    bytesWritten,
    images: requested.map((r, i) => {
      const s = images.get(rows[i]!.digest)!.saved!;
      return {
        reference: r.sel.kind === 'digest' ? r.sel.digest : r.sel.familiar,
        manifestDigest: s.manifestDigest,
        diffIds: s.diffIds,
      };
    }),
  };
}

/**
 * `Image` (docs/api.md §2): ambient methods use the default backend (§8) and reject with
 * UnsupportedError on a cloud backend; the `*Local` twins use the LocalBackend they are given and
 * never look at the ambient default.
 *
 * `tag(source, target)` (docker tag): `target` names the same manifest as `source`. A new target
 * ref gets `createdAt = lastUsedAt = now`; an existing one is re-pointed and keeps `createdAt`
 * (as a pull does). The previous manifest of a moved tag stays until prune, like a moved pull tag.
 * A target with a digest component must carry the source's manifest digest.
 */
import { ImageNotFoundError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { findRef, listRefs, untaggedManifests, upsertImageRef } from '../catalog/queries.js';
import { makeOperation } from '../pull/events.js';
import { emptyPruneReport, pruneDryRun, pruneReal, resolvePruneOptions } from '../store/prune.js';
import { listRowToHandle, refRowToHandle } from '../store/publish.js';
import { removeImage } from '../store/remove.js';
import { diskUsage, emptyDiskUsage } from '../store/usage.js';
import { withLock } from '../store/locks.js';
import { CloudBackend, defaultBackend, LocalBackend } from './backend.js';
import { buildDetail } from './detail.js';
import {
  listRemoteTags,
  remoteManifest,
  resolveRemote,
  type RemoteManifest,
  type RemoteOptions,
  type RemotePlatformOptions,
  type RemoteTagList,
  type ResolvedRemoteImage,
} from './remote.js';
import type { ImageHandle } from '../store/handle.js';
import { parseImageSelector, parseReference, type ImageSelector } from '../reference/reference.js';
import { resolveImage, shownSelector, targetRow, untaggedRow } from '../store/select.js';
import { deepFreeze } from '../util/freeze.js';
import type {
  DiskUsageReport,
  ImageDetail,
  ImagePruneReport,
  ImageRemoveReport,
  ListOptions,
  LoadOptions,
  PruneOptions,
  PullOperation,
  PullOptions,
  PullResult,
  RemoveOptions,
  SaveOptions,
  SaveResult,
  VerifyOptions,
  VerifyReport,
  ExportOptions,
  ExportResult,
  MountResult,
} from './types.js';

/** The ambient LocalBackend, or UnsupportedError naming `operation` on a cloud backend. */
export function ambientLocal(operation: string): LocalBackend {
  const b = defaultBackend();
  if (b instanceof CloudBackend) throw new UnsupportedError(operation, 'cloud');
  return b;
}

function requireLocal(b: unknown, operation: string): LocalBackend {
  if (b instanceof LocalBackend) return b;
  if (b instanceof CloudBackend) throw new UnsupportedError(operation, 'cloud');
  throw new InvalidArgumentError('backend', `${operation} needs a LocalBackend`);
}

function notFound(sel: ImageSelector, input: string): ImageNotFoundError {
  return new ImageNotFoundError(shownSelector(sel, input));
}

function removeOptions(o: RemoveOptions | boolean | undefined): RemoveOptions {
  if (typeof o === 'boolean') return { force: o };
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object')
    throw new InvalidArgumentError('options', 'remove options must be {force?, signal?} or a boolean');
  return o;
}

/** `prune({budget: true})` (docs/storage.md §11): the budget's eviction, or its dry run. */
async function pruneBudget(backend: LocalBackend, o: PruneOptions): Promise<ImagePruneReport> {
  for (const k of ['filter', 'unusedFor', 'tempGrace'] as const)
    if (o[k] !== undefined) throw new InvalidArgumentError(k, `budget cannot be combined with ${k}`);
  return backend._run(async () => {
    const { enforceBudget } = await import('../store/budget.js');
    const store = o.dryRun ? await backend._open('read') : await backend._open('write', o.signal);
    if (!store) return emptyPruneReport(o.dryRun === true);
    const r = await enforceBudget(store, {
      dryRun: o.dryRun === true,
      lock: 'wait',
      tempGraceMs: store.tempGraceMs,
      signal: o.signal,
    });
    return r!; // never null when waiting for the lock
  });
}

/**
 * Image cache operations (docs/api.md §2). Ambient methods use the default backend and reject with UNSUPPORTED on a
 * cloud one; `*Local` twins take a LocalBackend. Every rejection is an MsbError.
 */
export class Image {
  // ---- ambient ---------------------------------------------------------------------------------
  /** The cached image `reference` (a reference, digest or ID) names. Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND. */
  static async get(reference: string): Promise<ImageHandle> {
    return Image.getLocal(ambientLocal('Image.get'), reference);
  }
  /** Cached references, newest first; `{ all: true }` adds untagged ones (docs/api.md §2.2). Rejects IO, DATABASE. */
  static async list(options?: ListOptions): Promise<ImageHandle[]> {
    return Image.listLocal(ambientLocal('Image.list'), options);
  }
  /** Frozen ImageDetail of `reference`, index only (docs/api.md §2.3). Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND. */
  static async inspect(reference: string): Promise<ImageDetail> {
    return Image.inspectLocal(ambientLocal('Image.inspect'), reference);
  }
  /**
   * Untags `reference` and deletes what nothing else holds (docs/api.md §2.4); `options` is RemoveOptions or a boolean
   * `force`. Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND, IMAGE_IN_USE and IMAGE_REFERENCED (both avoided with `{ force:
   * true }`), INVALID_ARGUMENT, ABORTED.
   */
  static async remove(reference: string, options?: RemoveOptions | boolean): Promise<ImageRemoveReport> {
    return Image.removeLocal(ambientLocal('Image.remove'), reference, options);
  }
  /**
   * Deletes unreferenced, unpinned images, stale temp files and orphans, or enforces the size budget with `{ budget:
   * true }` (docs/api.md §2.5); `{ dryRun: true }` deletes nothing. Rejects INVALID_ARGUMENT (bad `unusedFor`,
   * `filter`, `tempGrace`, or `budget` combined), ABORTED.
   */
  static async prune(options?: PruneOptions): Promise<ImagePruneReport> {
    return Image.pruneLocal(ambientLocal('Image.prune'), options);
  }
  /**
   * Pulls `reference` into the cache, verifying every byte, and returns the PullResult (docs/api.md §2.6). Rejects
   * INVALID_REFERENCE, INVALID_ARGUMENT, NOT_CACHED (policy `never`), PLATFORM_NOT_FOUND, REGISTRY_AUTH, REGISTRY,
   * NETWORK, DIGEST_MISMATCH, MANIFEST_INVALID, CONFIG_INVALID, LAYER_INVALID, LIMIT_EXCEEDED, ABORTED, IO.
   */
  static async pull(reference: string, options?: PullOptions): Promise<PullResult> {
    return Image.pullLocal(ambientLocal('Image.pull'), reference, options);
  }
  /**
   * As `pull`, as a PullOperation: iterate its events, await its `result` (which rejects with the codes of `pull`,
   * UNSUPPORTED included); never throws synchronously (docs/api.md §2.6).
   */
  static pullWithProgress(reference: string, options?: PullOptions): PullOperation {
    let b: LocalBackend;
    try {
      b = ambientLocal('Image.pullWithProgress');
    } catch (err) {
      return makeOperation(options?.signal, async () => {
        throw err;
      });
    }
    return Image.pullWithProgressLocal(b, reference, options);
  }
  /**
   * Loads every image of a `docker save` or OCI archive (a path or a readable stream) and returns their handles
   * (docs/api.md §2.7). Rejects ARCHIVE_INVALID, INVALID_ARGUMENT (`tag` with several images), PLATFORM_NOT_FOUND,
   * DIGEST_MISMATCH, MANIFEST_INVALID, CONFIG_INVALID, LAYER_INVALID, LIMIT_EXCEEDED, ABORTED, IO.
   */
  static async load(input: string | NodeJS.ReadableStream, options?: LoadOptions): Promise<ImageHandle[]> {
    return Image.loadLocal(ambientLocal('Image.load'), input, options);
  }
  /**
   * Writes the cached `references` as one archive (`format` docker or oci) to a path (atomically) or a writable stream
   * (docs/api.md §2.7). Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND, INVALID_ARGUMENT, CACHE_CORRUPT (a cached layer
   * fails its check), ABORTED, IO.
   */
  static async save(
    references: string | string[],
    output: string | NodeJS.WritableStream,
    options?: SaveOptions,
  ): Promise<SaveResult> {
    return Image.saveLocal(ambientLocal('Image.save'), references, output, options);
  }
  /** Bytes per image and in total, what prune would free; lstats only (docs/api.md §2.8). Rejects IO, DATABASE. */
  static async diskUsage(): Promise<DiskUsageReport> {
    return Image.diskUsageLocal(ambientLocal('Image.diskUsage'));
  }
  /** Points `target` at cached `source`'s manifest. Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND, INVALID_ARGUMENT. */
  static async tag(source: string, target: string): Promise<ImageHandle> {
    return Image.tagLocal(ambientLocal('Image.tag'), source, target);
  }
  /**
   * Mounts the image's merged tree read-only on directory `dir` (docs/storage.md §13). Rejects UNSUPPORTED (not root,
   * or no kernel EROFS), INVALID_ARGUMENT (`dir`), INVALID_REFERENCE, IMAGE_NOT_FOUND, IO (the mount failed).
   */
  static async mount(reference: string, dir: string): Promise<MountResult> {
    return Image.mountLocal(ambientLocal('Image.mount'), reference, dir);
  }
  /**
   * Writes the image's merged root file system as one deterministic tar to a path (atomically) or a writable stream
   * (docs/storage.md §12). Rejects INVALID_REFERENCE, IMAGE_NOT_FOUND, INVALID_ARGUMENT (`output`), CACHE_CORRUPT,
   * ABORTED, IO.
   */
  static async export(
    reference: string,
    output: string | NodeJS.WritableStream,
    options?: ExportOptions,
  ): Promise<ExportResult> {
    return Image.exportLocal(ambientLocal('Image.export'), reference, output, options);
  }
  /**
   * Checks the whole cache, or the images `references` names, and with `{ repair: true }` fixes what it can
   * (docs/storage.md §10). Findings are in the report, not rejections; rejects INVALID_ARGUMENT, INVALID_REFERENCE,
   * IMAGE_NOT_FOUND, ABORTED.
   */
  static async verify(references?: string | string[], options?: VerifyOptions): Promise<VerifyReport> {
    return Image.verifyLocal(ambientLocal('Image.verify'), references, options);
  }
  /**
   * What a pull of `reference` would resolve to (digest, platform manifest), without pulling or touching the cache.
   * Rejects INVALID_REFERENCE, INVALID_ARGUMENT, PLATFORM_NOT_FOUND, REGISTRY_AUTH, REGISTRY, NETWORK,
   * MANIFEST_INVALID, DIGEST_MISMATCH, ABORTED.
   */
  static async resolve(reference: string, options?: RemotePlatformOptions): Promise<ResolvedRemoteImage> {
    return Image.resolveLocal(ambientLocal('Image.resolve'), reference, options);
  }
  /** The index or manifest `reference` names, as served (`platform`: its manifest). Rejects as `Image.resolve`. */
  static async remoteManifest(reference: string, options?: RemotePlatformOptions): Promise<RemoteManifest> {
    return Image.remoteManifestLocal(ambientLocal('Image.remoteManifest'), reference, options);
  }
  /**
   * Every tag of remote `repository` (a name without tag or digest), all pages. Rejects INVALID_ARGUMENT (a tag or
   * digest given, bad `pageSize`), REGISTRY_AUTH, REGISTRY, NETWORK, ABORTED.
   */
  static async listTags(repository: string, options?: RemoteOptions & { pageSize?: number }): Promise<RemoteTagList> {
    return Image.listTagsLocal(ambientLocal('Image.listTags'), repository, options);
  }

  // ---- explicit --------------------------------------------------------------------------------
  /** As `Image.get`, on LocalBackend `b` (index only: never touches files or the network). */
  static async getLocal(b: LocalBackend, reference: string): Promise<ImageHandle> {
    const backend = requireLocal(b, 'Image.getLocal');
    const sel = parseImageSelector(reference);
    return backend._run(async () => {
      const store = await backend._open('read');
      if (!store) throw notFound(sel, reference);
      const index = store.index;
      return refRowToHandle(await index.read(() => targetRow(index, resolveImage(index, sel, reference))));
    });
  }

  /**
   * As `Image.list`, on LocalBackend `b`. One indexed query; stats no files. Newest first, ties by canonical reference.
   * With `all`, the manifests no reference names (kept by a pin or a lease, or waiting for prune) follow, newest first,
   * as handles whose `reference` and `canonicalReference` are their digest.
   */
  static async listLocal(b: LocalBackend, options?: ListOptions): Promise<ImageHandle[]> {
    const backend = requireLocal(b, 'Image.listLocal');
    return backend._run(async () => {
      const store = await backend._open('read');
      if (!store) return [];
      const index = store.index;
      const rows = await index.read(() => listRefs(index));
      const handles = rows.map(listRowToHandle);
      if (options?.all === true) {
        const untagged = await index.read(() => untaggedManifests(index));
        for (const m of untagged) handles.push(refRowToHandle(untaggedRow(m)));
      }
      return handles;
    });
  }

  /** As `Image.inspect`, on LocalBackend `b` (built from the index alone, no file access). */
  static async inspectLocal(b: LocalBackend, reference: string): Promise<ImageDetail> {
    const backend = requireLocal(b, 'Image.inspectLocal');
    const sel = parseImageSelector(reference);
    return backend._run(async () => {
      const store = await backend._open('read');
      if (!store) throw notFound(sel, reference);
      const index = store.index;
      const detail = await index.read(() =>
        buildDetail(index, store.paths, targetRow(index, resolveImage(index, sel, reference))),
      );
      return deepFreeze(detail);
    });
  }

  /** As `Image.remove`, on LocalBackend `b`. */
  static async removeLocal(
    b: LocalBackend,
    reference: string,
    options?: RemoveOptions | boolean,
  ): Promise<ImageRemoveReport> {
    const backend = requireLocal(b, 'Image.removeLocal');
    const o = removeOptions(options);
    const sel = parseImageSelector(reference);
    return backend._run(async () => {
      const existing = await backend._open('read');
      if (!existing) throw notFound(sel, reference);
      const store = await backend._open('write', o.signal);
      return deepFreeze(
        await removeImage(store, reference, {
          ...(o.force !== undefined ? { force: o.force } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        }),
      );
    });
  }

  /** As `Image.prune`, on LocalBackend `b`. */
  static async pruneLocal(b: LocalBackend, options?: PruneOptions): Promise<ImagePruneReport> {
    const backend = requireLocal(b, 'Image.pruneLocal');
    if (options?.budget) return pruneBudget(backend, options);
    return backend._run(async () => {
      if (options?.dryRun) {
        const store = await backend._open('read');
        return deepFreeze(await pruneDryRun(store, resolvePruneOptions(options, store?.tempGraceMs ?? 0)));
      }
      const store = await backend._open('write', options?.signal);
      return deepFreeze(await pruneReal(store, resolvePruneOptions(options, store.tempGraceMs)));
    });
  }

  /** As `Image.pull`, on LocalBackend `b`. */
  static async pullLocal(b: LocalBackend, reference: string, options?: PullOptions): Promise<PullResult> {
    const backend = requireLocal(b, 'Image.pullLocal');
    return backend._run(async () => {
      const { pullImage } = await import('../pull/pull.js');
      return pullImage(backend, reference, options ?? {});
    });
  }

  /** As `Image.pullWithProgress`, on LocalBackend `b`; never throws synchronously. */
  static pullWithProgressLocal(b: LocalBackend, reference: string, options?: PullOptions): PullOperation {
    let backend: LocalBackend;
    try {
      backend = requireLocal(b, 'Image.pullWithProgressLocal');
    } catch (err) {
      return makeOperation(options?.signal, async () => {
        throw err;
      });
    }
    // The pull pipeline (registry client, decoders, EROFS writer) loads on first use, so read-only
    // commands such as `msb images` never pay for it.
    const op = import('../pull/pull.js').then((m) => m.startPull(backend, reference, options ?? {}));
    op.catch(() => {
      /* reported through `result` */
    });
    return makeOperation(options?.signal, async (signal, onEvent) => {
      const inner = await op;
      const onAbort = () => inner.abort(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      for await (const ev of inner) onEvent(ev);
      return inner.result;
    });
  }

  /** As `Image.load`, on LocalBackend `b` (docs/archives.md §2–§7). */
  static async loadLocal(
    b: LocalBackend,
    input: string | NodeJS.ReadableStream,
    options?: LoadOptions,
  ): Promise<ImageHandle[]> {
    const backend = requireLocal(b, 'Image.loadLocal');
    return backend._run(async () => {
      const { loadArchive } = await import('../archive/load.js');
      return loadArchive(backend, input, options ?? {});
    });
  }

  /** As `Image.save`, on LocalBackend `b` (docs/archives.md §8). */
  static async saveLocal(
    b: LocalBackend,
    references: string | string[],
    output: string | NodeJS.WritableStream,
    options?: SaveOptions,
  ): Promise<SaveResult> {
    const backend = requireLocal(b, 'Image.saveLocal');
    return backend._run(async () => {
      const { saveArchive } = await import('../archive/save.js');
      return saveArchive(backend, references, output, options ?? {});
    });
  }

  /** As `Image.diskUsage`, on `b`. `reclaimableBytes` = prune({dryRun:true}).bytesReclaimed. */
  static async diskUsageLocal(b: LocalBackend): Promise<DiskUsageReport> {
    const backend = requireLocal(b, 'Image.diskUsageLocal');
    return backend._run(async () => {
      const store = await backend._open('read');
      if (!store) return deepFreeze(emptyDiskUsage());
      return deepFreeze(await diskUsage(store, resolvePruneOptions({ dryRun: true }, store.tempGraceMs)));
    });
  }

  /** As `Image.export`, on LocalBackend `b` (docs/storage.md §12). */
  static async exportLocal(
    b: LocalBackend,
    reference: string,
    output: string | NodeJS.WritableStream,
    options?: ExportOptions,
  ): Promise<ExportResult> {
    const backend = requireLocal(b, 'Image.exportLocal');
    if (typeof output !== 'string' && typeof (output as NodeJS.WritableStream | null)?.write !== 'function')
      throw new InvalidArgumentError('output', 'output must be a path or a writable stream');
    const { exportImage } = await import('../archive/export.js');
    return exportImage(backend, reference, output, options ?? {});
  }

  /** As `Image.mount`, on LocalBackend `b`; root only (docs/storage.md §13). */
  static async mountLocal(b: LocalBackend, reference: string, dir: string): Promise<MountResult> {
    const backend = requireLocal(b, 'Image.mountLocal');
    if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', 'dir must be a directory path');
    const { mountImage } = await import('../archive/mount.js');
    return mountImage(backend, reference, dir);
  }

  /**
   * Unmounts what `mount` mounted on `dir` and frees its loop devices; root only (docs/storage.md §13). Rejects
   * INVALID_ARGUMENT (not a directory msb-image mounted), UNSUPPORTED, IO.
   */
  static async unmount(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', 'dir must be a directory path');
    const { unmountImage } = await import('../archive/mount.js');
    return unmountImage(dir);
  }

  /** As `Image.verify`, on LocalBackend `b` (docs/storage.md §10). */
  static async verifyLocal(
    b: LocalBackend,
    references?: string | string[],
    options?: VerifyOptions,
  ): Promise<VerifyReport> {
    const backend = requireLocal(b, 'Image.verifyLocal');
    const refs = references === undefined ? [] : Array.isArray(references) ? references : [references];
    if (refs.some((r) => typeof r !== 'string'))
      throw new InvalidArgumentError('references', 'references must be strings');
    return backend._run(async () => {
      const { verifyCache } = await import('../pull/repair.js');
      return verifyCache(backend, refs, options ?? {});
    });
  }

  /** As `Image.tag`, on LocalBackend `b` (see the module comment). */
  static async tagLocal(b: LocalBackend, source: string, target: string): Promise<ImageHandle> {
    const backend = requireLocal(b, 'Image.tagLocal');
    const sel = parseImageSelector(source);
    const dst = parseReference(target);
    return backend._run(async () => {
      if (!(await backend._open('read'))) throw notFound(sel, source);
      const store = await backend._open('write');
      const index = store.index;
      const out = await withLock(store, 'ref', dst.canonical, () =>
        index.write(() => {
          const target = resolveImage(index, sel, source);
          const src = targetRow(index, target);
          const manifestId = target.kind === 'ref' ? target.ref.manifest_id : target.manifest.id;
          const digest = src.digest;
          const indexDigest = src.index_digest;
          if (dst.digest !== null && dst.digest !== digest) {
            throw new InvalidArgumentError(
              'target',
              `${dst.familiar} names digest ${dst.digest}, but ${source} is ${digest}`,
            );
          }
          upsertImageRef(index, dst.canonical, manifestId, indexDigest, Date.now());
          return refRowToHandle(findRef(index, dst.canonical)!);
        }),
      );
      return out as ImageHandle;
    });
  }

  // ---- remote (no cache access: the backend lends its home and settings) ------------------------
  /** As `Image.resolve`, with the home (credentials) and settings of LocalBackend `b`. */
  static async resolveLocal(
    b: LocalBackend,
    reference: string,
    options?: RemotePlatformOptions,
  ): Promise<ResolvedRemoteImage> {
    const backend = requireLocal(b, 'Image.resolveLocal');
    return backend._run(() => resolveRemote(backend, reference, options));
  }
  /** As `Image.remoteManifest`, with the home and settings of LocalBackend `b`. */
  static async remoteManifestLocal(
    b: LocalBackend,
    reference: string,
    options?: RemotePlatformOptions,
  ): Promise<RemoteManifest> {
    const backend = requireLocal(b, 'Image.remoteManifestLocal');
    return backend._run(() => remoteManifest(backend, reference, options));
  }
  /** As `Image.listTags`, with the home and settings of LocalBackend `b`. */
  static async listTagsLocal(
    b: LocalBackend,
    repository: string,
    options?: RemoteOptions & { pageSize?: number },
  ): Promise<RemoteTagList> {
    const backend = requireLocal(b, 'Image.listTagsLocal');
    return backend._run(() => listRemoteTags(backend, repository, options));
  }
}

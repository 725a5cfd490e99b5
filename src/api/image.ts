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

export class Image {
  // ---- ambient ---------------------------------------------------------------------------------
  static async get(reference: string): Promise<ImageHandle> {
    return Image.getLocal(ambientLocal('Image.get'), reference);
  }
  static async list(options?: ListOptions): Promise<ImageHandle[]> {
    return Image.listLocal(ambientLocal('Image.list'), options);
  }
  static async inspect(reference: string): Promise<ImageDetail> {
    return Image.inspectLocal(ambientLocal('Image.inspect'), reference);
  }
  static async remove(reference: string, options?: RemoveOptions | boolean): Promise<ImageRemoveReport> {
    return Image.removeLocal(ambientLocal('Image.remove'), reference, options);
  }
  static async prune(options?: PruneOptions): Promise<ImagePruneReport> {
    return Image.pruneLocal(ambientLocal('Image.prune'), options);
  }
  static async pull(reference: string, options?: PullOptions): Promise<PullResult> {
    return Image.pullLocal(ambientLocal('Image.pull'), reference, options);
  }
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
  static async load(input: string | NodeJS.ReadableStream, options?: LoadOptions): Promise<ImageHandle[]> {
    return Image.loadLocal(ambientLocal('Image.load'), input, options);
  }
  static async save(
    references: string | string[],
    output: string | NodeJS.WritableStream,
    options?: SaveOptions,
  ): Promise<SaveResult> {
    return Image.saveLocal(ambientLocal('Image.save'), references, output, options);
  }
  static async diskUsage(): Promise<DiskUsageReport> {
    return Image.diskUsageLocal(ambientLocal('Image.diskUsage'));
  }
  static async tag(source: string, target: string): Promise<ImageHandle> {
    return Image.tagLocal(ambientLocal('Image.tag'), source, target);
  }
  static async mount(reference: string, dir: string): Promise<MountResult> {
    return Image.mountLocal(ambientLocal('Image.mount'), reference, dir);
  }
  /** The image's merged root file system as one deterministic tar (docs/storage.md §12). */
  static async export(
    reference: string,
    output: string | NodeJS.WritableStream,
    options?: ExportOptions,
  ): Promise<ExportResult> {
    return Image.exportLocal(ambientLocal('Image.export'), reference, output, options);
  }
  /** Checks the cache (or the images named) and, with `repair`, fixes it (docs/storage.md §10). */
  static async verify(references?: string | string[], options?: VerifyOptions): Promise<VerifyReport> {
    return Image.verifyLocal(ambientLocal('Image.verify'), references, options);
  }
  /** What a pull of `reference` would resolve to, without pulling (src/api/remote.ts). */
  static async resolve(reference: string, options?: RemotePlatformOptions): Promise<ResolvedRemoteImage> {
    return Image.resolveLocal(ambientLocal('Image.resolve'), reference, options);
  }
  /** The index or manifest a reference names, as the registry serves it. */
  static async remoteManifest(reference: string, options?: RemotePlatformOptions): Promise<RemoteManifest> {
    return Image.remoteManifestLocal(ambientLocal('Image.remoteManifest'), reference, options);
  }
  /** Every tag of a remote repository. */
  static async listTags(repository: string, options?: RemoteOptions & { pageSize?: number }): Promise<RemoteTagList> {
    return Image.listTagsLocal(ambientLocal('Image.listTags'), repository, options);
  }

  // ---- explicit --------------------------------------------------------------------------------
  /** Index only: never touches files or the network. */
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
   * One indexed query; stats no files. Newest first, ties by canonical reference. With `all`, the
   * manifests no reference names (kept by a pin or a lease, or waiting for prune) follow, newest
   * first, as handles whose `reference` and `canonicalReference` are their digest.
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

  /** Built from the index alone (no file access). */
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

  static async pullLocal(b: LocalBackend, reference: string, options?: PullOptions): Promise<PullResult> {
    const backend = requireLocal(b, 'Image.pullLocal');
    return backend._run(async () => {
      const { pullImage } = await import('../pull/pull.js');
      return pullImage(backend, reference, options ?? {});
    });
  }

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

  /** docs/archives.md §2–§7 (src/archive/load.ts). */
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

  /** docs/archives.md §8 (src/archive/save.ts). */
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

  /** Only lstats; never validates or rebuilds. `reclaimableBytes` = prune({dryRun:true}).bytesReclaimed. */
  static async diskUsageLocal(b: LocalBackend): Promise<DiskUsageReport> {
    const backend = requireLocal(b, 'Image.diskUsageLocal');
    return backend._run(async () => {
      const store = await backend._open('read');
      if (!store) return deepFreeze(emptyDiskUsage());
      return deepFreeze(await diskUsage(store, resolvePruneOptions({ dryRun: true }, store.tempGraceMs)));
    });
  }

  /** docs/storage.md §12 (src/archive/export.ts). */
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

  /** Mounts the image's merged tree read-only on `dir`; root only (docs/storage.md §13). */
  static async mountLocal(b: LocalBackend, reference: string, dir: string): Promise<MountResult> {
    const backend = requireLocal(b, 'Image.mountLocal');
    if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', 'dir must be a directory path');
    const { mountImage } = await import('../archive/mount.js');
    return mountImage(backend, reference, dir);
  }

  /** Unmounts what `mountLocal` mounted on `dir`; root only (docs/storage.md §13). */
  static async unmount(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir === '') throw new InvalidArgumentError('dir', 'dir must be a directory path');
    const { unmountImage } = await import('../archive/mount.js');
    return unmountImage(dir);
  }

  /** docs/storage.md §10 (src/store/verify.ts, src/pull/repair.ts). */
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

  /** Points `target` at the manifest of `source` (see the module comment). */
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
  static async resolveLocal(
    b: LocalBackend,
    reference: string,
    options?: RemotePlatformOptions,
  ): Promise<ResolvedRemoteImage> {
    const backend = requireLocal(b, 'Image.resolveLocal');
    return backend._run(() => resolveRemote(backend, reference, options));
  }
  static async remoteManifestLocal(
    b: LocalBackend,
    reference: string,
    options?: RemotePlatformOptions,
  ): Promise<RemoteManifest> {
    const backend = requireLocal(b, 'Image.remoteManifestLocal');
    return backend._run(() => remoteManifest(backend, reference, options));
  }
  static async listTagsLocal(
    b: LocalBackend,
    repository: string,
    options?: RemoteOptions & { pageSize?: number },
  ): Promise<RemoteTagList> {
    const backend = requireLocal(b, 'Image.listTagsLocal');
    return backend._run(() => listRemoteTags(backend, repository, options));
  }
}

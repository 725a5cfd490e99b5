/**
 * Sandbox and Snapshot pins (docs/api.md §4). A pin holds a MANIFEST digest (never a ref string), so
 * retagging, untagging or a forced remove never unprotects a sandbox or snapshot. `get`/`list`/
 * `remove` read or write the index only; removing a pin never deletes the image (prune does later).
 *
 * Choices where the contract is silent:
 * - `list()` is newest first (created_at descending), ties by name/digest, like `docker ps`.
 * - Re-creating a sandbox name replaces its pin and resets its `createdAt` (it is a new sandbox);
 *   re-indexing a snapshot digest keeps its `createdAt`.
 */
import { CacheCorruptError, ImageNotFoundError, InvalidArgumentError, PinNotFoundError } from '../errors.js';
import type { IndexDb } from '../catalog/db.js';
import { configRaw, findManifest, manifestLayers } from '../catalog/queries.js';
import {
  deletePin,
  deleteSnapshotByName,
  findPin,
  listPins,
  snapshotNamedOtherThan,
  upsertPin,
  type PinRow,
} from '../catalog/pins.js';
import { checkLayer, checkStitch } from '../store/artifacts.js';
import { createLease } from '../store/lease.js';
import type { CachePaths } from '../store/paths.js';
import { touchRefSync } from '../store/publish.js';
import { isDigest } from '../util/digest.js';
import type { LocalBackend, Store } from './backend.js';
import { configDetail, layerPositions } from './detail.js';
import { ambientLocal } from './image.js';
import { familiarOf, parseImageSelector, parseReference, type ImageSelector } from '../reference/reference.js';
import { resolveImage, targetRow, type ImageTarget } from '../store/select.js';
import { checkPinName } from './pins.js';
import type {
  ImageConfigDetail,
  SandboxCreateOptions,
  SandboxHandle,
  SnapshotHandle,
  SnapshotRecord,
} from './types.js';

function sandboxHandle(index: IndexDb, paths: CachePaths, pin: PinRow): SandboxHandle {
  const man = findManifest(index, pin.manifest_digest);
  const layers = man ? manifestLayers(index, man.id) : [];
  const cfg: ImageConfigDetail = (man
    ? configDetail(configRaw(index, man.config_digest), man.config_digest)
    : null) ?? {
    digest: man?.config_digest ?? '',
    env: [],
    cmd: null,
    entrypoint: null,
    workingDir: null,
    user: null,
    labels: null,
    stopSignal: null,
  };
  return Object.freeze({
    name: pin.key,
    reference: pin.reference !== null ? familiarOf(pin.reference) : pin.manifest_digest,
    manifestDigest: pin.manifest_digest,
    platform: { os: man?.os ?? '', architecture: man?.architecture ?? '', variant: man?.variant ?? null },
    createdAt: new Date(pin.created_at),
    rootfs: paths.artifacts(pin.manifest_digest, layerPositions(layers)),
    config: cfg,
  });
}

function snapshotHandle(pin: PinRow): SnapshotHandle {
  return Object.freeze({
    digest: pin.key,
    name: pin.name,
    imageManifestDigest: pin.manifest_digest,
    reference: pin.reference !== null ? familiarOf(pin.reference) : null,
    createdAt: new Date(pin.created_at),
  });
}

/**
 * Validates a pulled image's artifacts before pinning (docs/storage.md §5): every distinct layer
 * EROFS, fsmeta against its device table, and the VMDK's extents. The pull validated them under
 * their locks moments ago; this re-check (a few KiB of reads, protected by our lease) makes sure
 * the handle given to a VMM describes files that are still whole.
 */
async function checkArtifacts(store: Store, manifestDigest: string): Promise<void> {
  const { index, paths } = store;
  const rec = await index.read(() => {
    const man = findManifest(index, manifestDigest);
    return man ? { man, diffIds: manifestLayers(index, man.id).map((l) => l.diff_id) } : null;
  });
  if (!rec)
    throw new CacheCorruptError(
      paths.fsmeta(manifestDigest),
      `manifest ${manifestDigest} is not in the index after its pull`,
    );
  const sizes = new Map<string, number>();
  for (const d of new Set(rec.diffIds)) {
    const c = await checkLayer(store, d);
    if (!c.valid) throw new CacheCorruptError(paths.layer(d), c.reason);
    sizes.set(d, c.sizeBytes);
  }
  const st = await checkStitch(store, manifestDigest, rec.diffIds, sizes, rec.man.fsmeta_bytes);
  if (!st.fsmetaValid) throw new CacheCorruptError(paths.fsmeta(manifestDigest), st.fsWhy ?? 'invalid');
  if (!st.vmdkValid) throw new CacheCorruptError(paths.vmdk(manifestDigest), st.vmWhy ?? 'invalid');
}

/**
 * An image ID (a digest, 4+ hex digits) or `REPO@digest` naming a cached manifest other than
 * through an exact cached reference: that manifest and the reference to record (its newest ref,
 * or null). Null when the pull path decides (a name, or nothing cached by that ID). A full digest
 * that is not cached is ImageNotFoundError: there is no name to pull it by.
 */
async function cachedById(
  b: LocalBackend,
  sel: ImageSelector,
  input: string,
): Promise<{ manifestDigest: string; canonical: string | null } | null> {
  if (sel.kind === 'reference' && sel.idPrefix === null && sel.digest === null) return null;
  const store = await b._open('read');
  if (!store) {
    if (sel.kind === 'digest') throw new ImageNotFoundError(sel.digest);
    return null;
  }
  const index = store.index;
  return index.read(() => {
    let t: ImageTarget;
    try {
      t = resolveImage(index, sel, input);
    } catch (err) {
      if (err instanceof ImageNotFoundError && sel.kind !== 'digest') return null;
      throw err;
    }
    if (t.kind === 'ref') return null;
    const row = targetRow(index, t);
    return { manifestDigest: t.manifest.digest, canonical: row.ref_id > 0 ? row.reference : null };
  });
}

/**
 * Sandbox pins (docs/api.md §4): a name holding an image manifest so that prune and remove keep it. Ambient methods use
 * the default backend; `*Local` twins take a LocalBackend.
 */
export class Sandbox {
  /**
   * Pins `options.image` as sandbox `name`, pulling it first unless an image ID of a cached manifest names it, and
   * returns the SandboxHandle (docs/api.md §4). Rejects INVALID_ARGUMENT (`name`, missing `image`), INVALID_REFERENCE,
   * IMAGE_NOT_FOUND (an uncached digest), CACHE_CORRUPT, and every code of `Image.pull`.
   */
  static async create(name: string, options: SandboxCreateOptions): Promise<SandboxHandle> {
    return Sandbox.createLocal(ambientLocal('Sandbox.create'), name, options);
  }
  /** The sandbox pinned as `name`. Rejects PIN_NOT_FOUND (docs/api.md §4). */
  static async get(name: string): Promise<SandboxHandle> {
    return Sandbox.getLocal(ambientLocal('Sandbox.get'), name);
  }
  /** Every sandbox, newest first (docs/api.md §4). Rejects only on index failures (DATABASE, IO). */
  static async list(): Promise<SandboxHandle[]> {
    return Sandbox.listLocal(ambientLocal('Sandbox.list'));
  }
  /** Deletes the pin `name`; the image stays cached until prune. Rejects PIN_NOT_FOUND. */
  static async remove(name: string): Promise<void> {
    return Sandbox.removeLocal(ambientLocal('Sandbox.remove'), name);
  }

  /**
   * As `Sandbox.create`, on LocalBackend `b`. Pulls `options.image` with the given PullOptions while holding a lease,
   * checks the artifacts, then in ONE transaction refreshes the ref's lastUsedAt and writes (or atomically replaces)
   * the pin `sandbox/<name>` → manifest digest + canonical reference. An image ID (digest or short ID) or `REPO@digest`
   * of a cached manifest pins that manifest without a pull (the pull options do not apply: an ID is content-addressed).
   */
  static async createLocal(b: LocalBackend, name: string, options: SandboxCreateOptions): Promise<SandboxHandle> {
    checkPinName(name, 'sandbox');
    if (!options || typeof options !== 'object' || typeof options.image !== 'string') {
      throw new InvalidArgumentError('image', 'Sandbox.create needs options.image (the reference to pull and pin)');
    }
    const { image, ...pullOptions } = options;
    const sel = parseImageSelector(image); // InvalidReferenceError before any I/O
    return b._run(async () => {
      const lease = await createLease(await b._open('write', options.signal), 'create', {
        ...(options.signal ? { signal: options.signal } : {}),
      });
      try {
        let picked = await cachedById(b, sel, image);
        if (!picked) {
          const { pullImage } = await import('../pull/pull.js');
          const result = await pullImage(b, image, { ...pullOptions, lease });
          const canonical = result.canonicalReference ?? (sel.kind === 'reference' ? sel.canonical : null);
          picked = { manifestDigest: result.manifestDigest, canonical };
        }
        const { manifestDigest, canonical } = picked;
        await lease.addItem('manifest', manifestDigest);
        const store = await b._open('write', options.signal);
        await checkArtifacts(store, manifestDigest);
        const { index, paths } = store;
        return await index.write(
          () => {
            const now = Date.now();
            if (canonical !== null) touchRefSync(index, canonical, now);
            upsertPin(index, { kind: 'sandbox', key: name, name, manifestDigest, reference: canonical }, now);
            return sandboxHandle(index, paths, findPin(index, 'sandbox', name)!);
          },
          { ...(options.signal ? { signal: options.signal } : {}) },
        );
      } finally {
        await lease.release();
      }
    });
  }

  /** As `Sandbox.get`, on LocalBackend `b`. */
  static async getLocal(b: LocalBackend, name: string): Promise<SandboxHandle> {
    return b._run(async () => {
      const store = await b._open('read');
      if (!store || typeof name !== 'string') throw new PinNotFoundError('sandbox', String(name));
      const h = await store.index.read(() => {
        const pin = findPin(store.index, 'sandbox', name);
        return pin ? sandboxHandle(store.index, store.paths, pin) : null;
      });
      if (!h) throw new PinNotFoundError('sandbox', name);
      return h;
    });
  }

  /** As `Sandbox.list`, on LocalBackend `b`. */
  static async listLocal(b: LocalBackend): Promise<SandboxHandle[]> {
    return b._run(async () => {
      const store = await b._open('read');
      if (!store) return [];
      return store.index.read(() =>
        listPins(store.index, 'sandbox').map((p) => sandboxHandle(store.index, store.paths, p)),
      );
    });
  }

  /** As `Sandbox.remove`, on LocalBackend `b`: deletes the pin only. */
  static async removeLocal(b: LocalBackend, name: string): Promise<void> {
    return b._run(async () => {
      const store = await b._open('read');
      if (!store || typeof name !== 'string') throw new PinNotFoundError('sandbox', String(name));
      const gone = await store.index.write(() => deletePin(store.index, 'sandbox', name));
      if (!gone) throw new PinNotFoundError('sandbox', name);
    });
  }
}

/**
 * Snapshot pins (docs/api.md §4): a snapshot digest holding the image manifest it was taken from. Ambient methods use
 * the default backend; `*Local` twins take a LocalBackend.
 */
export class Snapshot {
  /**
   * Records a snapshot pin (`record.digest` → `record.imageManifestDigest`) and returns its handle; the manifest need
   * not be cached (docs/api.md §4). Rejects INVALID_ARGUMENT (a bad digest or name, a name another snapshot uses),
   * INVALID_REFERENCE (`record.reference`).
   */
  static async index(record: SnapshotRecord): Promise<SnapshotHandle> {
    return Snapshot.indexLocal(ambientLocal('Snapshot.index'), record);
  }
  /** Every snapshot, newest first. Rejects only on index failures (DATABASE, IO). */
  static async list(): Promise<SnapshotHandle[]> {
    return Snapshot.listLocal(ambientLocal('Snapshot.list'));
  }
  /**
   * Deletes the snapshot pin named by `nameOrDigest` (a digest if it parses as one, else a name); the image stays
   * cached until prune. Rejects PIN_NOT_FOUND.
   */
  static async remove(nameOrDigest: string): Promise<void> {
    return Snapshot.removeLocal(ambientLocal('Snapshot.remove'), nameOrDigest);
  }

  /**
   * As `Snapshot.index`, on LocalBackend `b`. Upserts the snapshot pin keyed by `digest` → `imageManifestDigest`. The
   * manifest need not be cached. A name must be unique among snapshots (InvalidArgumentError otherwise).
   */
  static async indexLocal(b: LocalBackend, record: SnapshotRecord): Promise<SnapshotHandle> {
    if (!record || typeof record !== 'object')
      throw new InvalidArgumentError('record', 'Snapshot.index needs {digest, imageManifestDigest, name?, reference?}');
    if (!isDigest(record.digest))
      throw new InvalidArgumentError('digest', `invalid snapshot digest ${JSON.stringify(record.digest)}`);
    if (!isDigest(record.imageManifestDigest))
      throw new InvalidArgumentError(
        'imageManifestDigest',
        `invalid manifest digest ${JSON.stringify(record.imageManifestDigest)}`,
      );
    const name = record.name === undefined || record.name === null ? null : checkPinName(record.name, 'snapshot');
    const canonical =
      record.reference === undefined || record.reference === null ? null : parseReference(record.reference).canonical;
    return b._run(async () => {
      const store = await b._open('write');
      const index = store.index;
      return index.write(() => {
        if (name !== null) {
          const other = snapshotNamedOtherThan(index, name, record.digest);
          if (other) throw new InvalidArgumentError('name', `snapshot name '${name}' is already used by ${other}`);
        }
        upsertPin(
          index,
          {
            kind: 'snapshot',
            key: record.digest,
            name,
            manifestDigest: record.imageManifestDigest,
            reference: canonical,
          },
          Date.now(),
          { keepCreatedAt: true },
        );
        return snapshotHandle(findPin(index, 'snapshot', record.digest)!);
      });
    });
  }

  /** As `Snapshot.list`, on LocalBackend `b`. */
  static async listLocal(b: LocalBackend): Promise<SnapshotHandle[]> {
    return b._run(async () => {
      const store = await b._open('read');
      if (!store) return [];
      return store.index.read(() => listPins(store.index, 'snapshot').map(snapshotHandle));
    });
  }

  /** As `Snapshot.remove`, on LocalBackend `b`. */
  static async removeLocal(b: LocalBackend, nameOrDigest: string): Promise<void> {
    return b._run(async () => {
      const store = await b._open('read');
      if (!store || typeof nameOrDigest !== 'string') throw new PinNotFoundError('snapshot', String(nameOrDigest));
      const byDigest = isDigest(nameOrDigest);
      const gone = await store.index.write(() =>
        byDigest ? deletePin(store.index, 'snapshot', nameOrDigest) : deleteSnapshotByName(store.index, nameOrDigest),
      );
      if (!gone) throw new PinNotFoundError('snapshot', nameOrDigest);
    });
  }
}

/**
 * `remove(reference, {force})` exactly as docs/storage.md §7: one write transaction decides and
 * untags; then the manifest is deleted under its image lock (waiting, abortable) and each layer it
 * released under its layer lock (try-lock: a busy layer is left for prune). Every deletion is
 * re-checked inside its own transaction (store/reclaim.ts), so a concurrent pull that leased the
 * artifact keeps it.
 */
import { ImageInUseError, ImageReferencedError, throwIfAborted } from '../errors.js';
import { pinsOfManifest, type PinRow } from '../catalog/pins.js';
import { countRefsOfManifest, deleteImageRef } from '../catalog/queries.js';
import { familiarOf, parseImageSelector, type ImageSelector } from '../reference/reference.js';
import { manifestIsFree, removeNeedsForce } from './gc.js';
import { resolveImage, shownSelector } from './select.js';
import { findStaleLeases } from './lease.js';
import { withLock } from './locks.js';
import { Measures, unlinkMeasured } from './measure.js';
import { deleteLayerRowIfFree, deleteManifestRowIfFree, manifestFacts } from './reclaim.js';
import type { Store } from './store.js';
import type { ImageRemoveReport, PinInfo } from './types.js';

export function pinInfo(p: PinRow): PinInfo {
  return { kind: p.kind, name: p.name ?? p.key };
}

export async function removeImage(
  store: Store,
  input: string,
  opts: { force?: boolean; signal?: AbortSignal | undefined },
): Promise<ImageRemoveReport> {
  const sel = parseImageSelector(input); // InvalidReferenceError first, before anything else
  const signal = opts.signal;
  const report: ImageRemoveReport = {
    untagged: [],
    deletedManifests: [],
    deletedLayers: [],
    bytesReclaimed: null,
    pinnedBy: [],
  };
  const stale = await findStaleLeases(store.index, { signal });
  const decided = await decide(store, sel, input, opts.force === true, stale, signal);
  report.untagged = decided.untagged;
  if (!decided.free) {
    report.pinnedBy = decided.pinnedBy;
    return report;
  }
  const m = new Measures();
  let firstIoError: unknown = null;
  const unlink = async (path: string) => {
    try {
      const r = await unlinkMeasured(path);
      if (r.deleted) m.add(r.bytes);
    } catch (err) {
      firstIoError ??= err;
    }
  };
  await reclaim(store, decided.digest, stale, report, unlink, signal);
  report.bytesReclaimed = m.bytes;
  // The rows are gone; a file that could not be unlinked is an orphan prune will reclaim.
  if (firstIoError) throw firstIoError;
  return report;
}

/** Step 2: decide and untag in one transaction. */
async function decide(
  store: Store,
  sel: ImageSelector,
  input: string,
  force: boolean,
  stale: Set<string>,
  signal: AbortSignal | undefined,
): Promise<{ untagged: string[]; digest: string; free: boolean; pinnedBy: PinInfo[] }> {
  const { index } = store;
  const shown = shownSelector(sel, input);
  return index.write(
    () => {
      const t = resolveImage(index, sel, input);
      const manifestId = t.kind === 'ref' ? t.ref.manifest_id : t.manifest.id;
      const digest = t.kind === 'ref' ? t.ref.digest : t.manifest.digest;
      const refs = t.kind === 'ref' ? [{ id: t.ref.ref_id, reference: t.ref.reference }] : t.refs;
      // An ID names an image, not a tag: untagging several references at once needs force.
      if (refs.length > 1 && !force)
        throw new ImageReferencedError(
          shown,
          digest,
          refs.map((r) => familiarOf(r.reference)),
        );
      const pins = pinsOfManifest(index, digest);
      if (removeNeedsForce(pins.length, countRefsOfManifest(index, manifestId), refs.length, force))
        throw new ImageInUseError(shown, digest, pins.map(pinInfo));
      for (const r of refs) deleteImageRef(index, r.id);
      const untagged = refs.map((r) => familiarOf(r.reference));
      const free = manifestIsFree(manifestFacts(index, manifestId, digest, Date.now(), stale));
      return { untagged, digest, free, pinnedBy: pins.map(pinInfo) };
    },
    { signal },
  );
}

/**
 * Steps 3–4: the manifest under its image lock, then each layer it released under a try-lock (a
 * busy one is left for prune).
 */
async function reclaim(
  store: Store,
  digest: string,
  stale: Set<string>,
  report: ImageRemoveReport,
  unlink: (path: string) => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { paths } = store;
  const released = await withLock(
    store,
    'image',
    digest,
    async () => {
      const diffIds = await deleteManifestRowIfFree(store, digest, stale, signal);
      if (!diffIds) return null;
      await unlink(paths.fsmeta(digest));
      await unlink(paths.vmdk(digest));
      return diffIds;
    },
    { signal },
  );
  if (!released) return;
  report.deletedManifests.push(digest);
  for (const d of released) {
    throwIfAborted(signal);
    await withLock(
      store,
      'layer',
      d,
      async () => {
        if (!(await deleteLayerRowIfFree(store, d, stale, signal))) return;
        report.deletedLayers.push(d);
        await unlink(paths.layer(d));
      },
      { signal, tryOnly: true },
    );
  }
}

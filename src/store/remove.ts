/**
 * `remove(reference, {force})` exactly as storage.md §7: one write transaction decides and
 * untags; then the manifest is deleted under its image lock (waiting, abortable) and each layer it
 * released under its layer lock (try-lock: a busy layer is left for prune). Every deletion is
 * re-checked inside its own transaction, so a concurrent pull that leased the artifact keeps it.
 */
import { ImageInUseError, ImageNotFoundError, throwIfAborted } from '../errors.js';
import type { Store } from './store.js';
import { familiarOf, parseImageSelector } from '../reference/reference.js';
import type { ImageRemoveReport, PinInfo } from './types.js';
import type { IndexDb } from '../catalog/db.js';
import { findManifest, findRef, pinsOfManifest, refsOfManifest, type PinRow } from '../catalog/queries.js';
import { findStaleLeases, isLeased } from './lease.js';
import { withLock } from './locks.js';
import { Measures, unlinkMeasured } from './measure.js';
import { cmp, removeNeedsForce } from './gc.js';

export function pinInfo(p: PinRow): PinInfo {
  return { kind: p.kind, name: p.name ?? p.key };
}

function manifestFree(index: IndexDb, manifestId: number, digest: string, now: number, stale: Set<string>): boolean {
  return index.stmt('SELECT 1 FROM image_ref WHERE manifest_id = ? LIMIT 1').get(manifestId) === undefined
    && index.stmt('SELECT 1 FROM pin WHERE manifest_digest = ? LIMIT 1').get(digest) === undefined
    && !isLeased(index, 'manifest', digest, now, stale);
}

export async function removeImage(store: Store, input: string, opts: { force?: boolean; signal?: AbortSignal }): Promise<ImageRemoveReport> {
  const sel = parseImageSelector(input); // InvalidReferenceError first, before anything else
  const force = opts.force === true;
  const signal = opts.signal;
  const { index, paths } = store;
  const report: ImageRemoveReport = { untagged: [], deletedManifests: [], deletedLayers: [], bytesReclaimed: null };
  const shown = sel.kind === 'digest' ? sel.digest : sel.familiar;
  const stale = await findStaleLeases(index, { signal });

  // Step 2: decide and untag in one transaction.
  const decided = await index.write(() => {
    const now = Date.now();
    let manifestId: number;
    let digest: string;
    let refs: { id: number; reference: string }[];
    if (sel.kind === 'digest') {
      const man = findManifest(index, sel.digest);
      if (!man) throw new ImageNotFoundError(sel.digest);
      manifestId = man.id;
      digest = man.digest;
      refs = refsOfManifest(index, man.id);
    } else {
      const r = findRef(index, sel.canonical);
      if (!r) throw new ImageNotFoundError(sel.familiar);
      manifestId = r.manifest_id;
      digest = r.digest;
      refs = [{ id: r.ref_id, reference: r.reference }];
    }
    const pins = pinsOfManifest(index, digest);
    const total = (index.stmt('SELECT COUNT(*) AS n FROM image_ref WHERE manifest_id = ?').get(manifestId) as { n: number }).n;
    if (removeNeedsForce(pins.length, total, refs.length, force)) throw new ImageInUseError(shown, digest, pins.map(pinInfo));
    const del = index.stmt('DELETE FROM image_ref WHERE id = ?');
    for (const r of refs) del.run(r.id);
    const untagged = refs.map((r) => familiarOf(r.reference));
    if (!manifestFree(index, manifestId, digest, now, stale)) return { untagged, digest, diffIds: null };
    const diffIds = (index.stmt('SELECT DISTINCT l.diff_id FROM manifest_layer ml JOIN layer l ON l.id = ml.layer_id WHERE ml.manifest_id = ?')
      .all(manifestId) as { diff_id: string }[]).map((x) => x.diff_id).sort(cmp);
    return { untagged, digest, diffIds };
  }, { signal });
  report.untagged = decided.untagged;
  if (decided.diffIds === null) return report;

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

  // Step 3: the manifest, under its image lock.
  const digest = decided.digest;
  const deleted = await withLock(store, 'image', digest, async () => {
    const ok = await index.write(() => {
      const man = findManifest(index, digest);
      if (!man || !manifestFree(index, man.id, digest, Date.now(), stale)) return false;
      index.stmt('DELETE FROM manifest WHERE id = ?').run(man.id);
      if (index.stmt('SELECT 1 FROM manifest WHERE config_digest = ? LIMIT 1').get(man.config_digest) === undefined) {
        index.stmt('DELETE FROM config WHERE digest = ?').run(man.config_digest);
      }
      return true;
    }, { signal });
    if (!ok) return false;
    await unlink(paths.fsmeta(digest));
    await unlink(paths.vmdk(digest));
    return true;
  }, { signal });
  if (deleted) {
    report.deletedManifests.push(digest);
    // Step 4: layers it released, each under a try-lock.
    for (const d of decided.diffIds) {
      throwIfAborted(signal);
      // A busy layer lock: left for prune (LOCK_BUSY result ignored).
      await withLock(store, 'layer', d, async () => {
        const ok = await index.write(() => {
          const row = index.stmt('SELECT id FROM layer WHERE diff_id = ?').get(d) as { id: number } | undefined;
          if (!row) return false;
          if (index.stmt('SELECT 1 FROM manifest_layer WHERE layer_id = ? LIMIT 1').get(row.id) !== undefined) return false;
          if (isLeased(index, 'layer', d, Date.now(), stale)) return false;
          index.stmt('DELETE FROM layer WHERE id = ?').run(row.id);
          return true;
        }, { signal });
        if (!ok) return;
        report.deletedLayers.push(d);
        await unlink(paths.layer(d));
      }, { signal, tryOnly: true });
    }
  }
  report.bytesReclaimed = m.bytes;
  // The rows are gone; a file that could not be unlinked is an orphan prune will reclaim.
  if (firstIoError) throw firstIoError;
  return report;
}

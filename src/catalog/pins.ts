/**
 * The `pin` table (docs/storage.md §3.2): sandboxes and snapshots that keep a manifest alive. Every
 * statement on it lives here.
 */
import type { IndexDb } from './db.js';

export interface PinRow {
  kind: 'sandbox' | 'snapshot';
  key: string;
  name: string | null;
  manifest_digest: string;
  reference: string | null;
  created_at: number;
}

export function pinsOfManifest(index: IndexDb, digest: string): PinRow[] {
  return index.stmt('SELECT * FROM pin WHERE manifest_digest = ? ORDER BY kind, key').all(digest) as PinRow[];
}

export function findPin(index: IndexDb, kind: 'sandbox' | 'snapshot', key: string): PinRow | undefined {
  return index.stmt('SELECT * FROM pin WHERE kind = ? AND key = ?').get(kind, key) as PinRow | undefined;
}

export function listPins(index: IndexDb, kind: 'sandbox' | 'snapshot'): PinRow[] {
  return index.stmt('SELECT * FROM pin WHERE kind = ? ORDER BY created_at DESC, key').all(kind) as PinRow[];
}

export interface PinInput {
  kind: 'sandbox' | 'snapshot';
  key: string;
  name: string | null;
  manifestDigest: string;
  reference: string | null;
}

/**
 * Inserts a pin, or replaces the pin of the same kind and key. `keepCreatedAt`: a replaced pin
 * keeps its `created_at` (re-indexing a snapshot); otherwise it is a new pin (re-creating a sandbox).
 */
export function upsertPin(index: IndexDb, pin: PinInput, now: number, opts: { keepCreatedAt?: boolean } = {}): void {
  const created = opts.keepCreatedAt ? '' : ', created_at = excluded.created_at';
  index
    .stmt(`INSERT INTO pin (kind, key, name, manifest_digest, reference, created_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT(kind, key) DO UPDATE SET name = excluded.name, manifest_digest = excluded.manifest_digest,
      reference = excluded.reference${created}`)
    .run(pin.kind, pin.key, pin.name, pin.manifestDigest, pin.reference, now);
}

/** Deletes one pin by key; returns whether it existed. */
export function deletePin(index: IndexDb, kind: 'sandbox' | 'snapshot', key: string): boolean {
  return index.stmt('DELETE FROM pin WHERE kind = ? AND key = ?').run(kind, key).changes > 0;
}

/** Deletes a snapshot by name; returns whether it existed. */
export function deleteSnapshotByName(index: IndexDb, name: string): boolean {
  return index.stmt("DELETE FROM pin WHERE kind = 'snapshot' AND name = ?").run(name).changes > 0;
}

/** The key of another snapshot already called `name`, if any. */
export function snapshotNamedOtherThan(index: IndexDb, name: string, key: string): string | undefined {
  return (
    index.stmt("SELECT key FROM pin WHERE kind = 'snapshot' AND name = ? AND key != ?").get(name, key) as
      | { key: string }
      | undefined
  )?.key;
}

/** Digests of every pinned manifest. */
export function pinnedDigests(index: IndexDb): Set<string> {
  return new Set(
    (index.stmt('SELECT DISTINCT manifest_digest FROM pin').all() as { manifest_digest: string }[]).map(
      (r) => r.manifest_digest,
    ),
  );
}

export function isPinned(index: IndexDb, manifestDigest: string): boolean {
  return index.stmt('SELECT 1 FROM pin WHERE manifest_digest = ? LIMIT 1').get(manifestDigest) !== undefined;
}

/** Every pin, by manifest digest, then kind and key. */
export function allPins(index: IndexDb): PinRow[] {
  return index.stmt('SELECT * FROM pin ORDER BY manifest_digest, kind, key').all() as PinRow[];
}

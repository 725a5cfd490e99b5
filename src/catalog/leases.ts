/**
 * The `lease` and `lease_item` tables (docs/storage.md §6.2). Every statement on them lives here;
 * the rules (staleness, renewal) are in store/lease.ts.
 */
import type { IndexDb } from './db.js';

export type LeaseItemKind = 'manifest' | 'layer' | 'blob' | 'temp';

export interface LeaseRow {
  id: string;
  operation: string;
  hostname: string;
  boot_id: string | null;
  pid: number;
  pid_start: string | null;
  created_at: number;
  expires_at: number;
}

/** One lease item with its lease's id and expiry. */
export interface LeaseItemRow {
  id: string;
  expires_at: number;
  kind: LeaseItemKind;
  value: string;
}

export function allLeases(index: IndexDb): LeaseRow[] {
  return index.stmt('SELECT * FROM lease').all() as LeaseRow[];
}

export function insertLease(index: IndexDb, row: LeaseRow): void {
  index
    .stmt(
      'INSERT INTO lease (id, operation, hostname, boot_id, pid, pid_start, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    )
    .run(row.id, row.operation, row.hostname, row.boot_id, row.pid, row.pid_start, row.created_at, row.expires_at);
}

export function renewLease(index: IndexDb, id: string, expiresAt: number): void {
  index.stmt('UPDATE lease SET expires_at = ? WHERE id = ?').run(expiresAt, id);
}

/** Deletes a lease (its items cascade); returns whether it existed. */
export function deleteLease(index: IndexDb, id: string): boolean {
  return index.stmt('DELETE FROM lease WHERE id = ?').run(id).changes > 0;
}

export function addLeaseItems(index: IndexDb, leaseId: string, items: { kind: LeaseItemKind; value: string }[]): void {
  const ins = index.stmt('INSERT OR IGNORE INTO lease_item (lease_id, kind, value) VALUES (?, ?, ?)');
  for (const it of items) ins.run(leaseId, it.kind, it.value);
}

/** Every lease item, with its lease's id and expiry. */
export function allLeaseItems(index: IndexDb): LeaseItemRow[] {
  return index
    .stmt(
      'SELECT l.id AS id, l.expires_at AS expires_at, i.kind AS kind, i.value AS value FROM lease_item i JOIN lease l ON l.id = i.lease_id',
    )
    .all() as LeaseItemRow[];
}

/** The leases (id, expiry) that name `(kind, value)`. */
export function leasesNaming(index: IndexDb, kind: LeaseItemKind, value: string): { id: string; expires_at: number }[] {
  return index
    .stmt(
      'SELECT l.id AS id, l.expires_at AS expires_at FROM lease_item i JOIN lease l ON l.id = i.lease_id WHERE i.kind = ? AND i.value = ?',
    )
    .all(kind, value) as { id: string; expires_at: number }[];
}

/**
 * Leases (docs/storage.md §6.2): a lease makes in-flight work a garbage-collection root. It records
 * who owns it (hostname, boot id, pid, process start time) so a lease whose owner died can be
 * recognised as stale at once on the same host, and expires 10 minutes after its last renewal
 * everywhere else. Items (`manifest`, `layer`, `blob`, `temp`) are committed BEFORE the thing
 * they name is checked, reused or created.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { IndexDb } from '../catalog/db.js';
import {
  addLeaseItems,
  allLeaseItems,
  allLeases,
  deleteLease,
  insertLease,
  leasesNaming,
  renewLease,
  type LeaseItemKind,
  type LeaseRow,
} from '../catalog/leases.js';

export type { LeaseItemKind, LeaseRow };

export type LeaseOperation = 'pull' | 'load' | 'save' | 'create' | 'repair';

export const LEASE_TTL_MS = 10 * 60_000;
export const LEASE_RENEW_MS = 60_000;

export interface Lease {
  readonly id: string;
  /** Commits one item (idempotent). Call it before looking at / creating what it names. */
  addItem(kind: LeaseItemKind, value: string): Promise<void>;
  /** Commits several items in one transaction. */
  addItems(items: { kind: LeaseItemKind; value: string }[]): Promise<void>;
  /** Stops renewal and deletes the lease (items cascade). Never throws. */
  release(): Promise<void>;
}

export interface HostIdentity {
  hostname: string;
  bootId: string | null;
}

let hostIdentity: HostIdentity | null = null;
export function thisHost(): HostIdentity {
  if (!hostIdentity) {
    let bootId: string | null = null;
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      /* not Linux */
    }
    hostIdentity = { hostname: hostname(), bootId };
  }
  return hostIdentity;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields resume after the LAST ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // rest[0] is field 3
  } catch {
    return null;
  }
}

export function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Pure staleness rule given the owner's liveness: expired, or on this host and boot with a dead
 * pid or a reused pid (start time differs).
 */
export function isLeaseStale(
  row: LeaseRow,
  now: number,
  host: HostIdentity,
  probe: { running(pid: number): boolean; startTime(pid: number): string | null } = {
    running: pidRunning,
    startTime: processStartTime,
  },
): boolean {
  if (row.expires_at < now) return true;
  if (row.hostname !== host.hostname || row.boot_id !== host.bootId) return false;
  if (!probe.running(row.pid)) return true;
  if (row.pid_start !== null) {
    const st = probe.startTime(row.pid);
    if (st !== null && st !== row.pid_start) return true;
  }
  return false;
}

/**
 * Ids of stale leases. Reads /proc outside any transaction; callers re-check rows inside their
 * transaction by id (a lease created after this scan is never in the set, so it counts as live).
 */
export async function findStaleLeases(
  index: IndexDb,
  opts: { onlyThisHost?: boolean; now?: number; signal?: AbortSignal | undefined } = {},
): Promise<Set<string>> {
  const rows = await index.read(() => allLeases(index), { signal: opts.signal });
  const now = opts.now ?? Date.now();
  const host = thisHost();
  const stale = new Set<string>();
  for (const r of rows) {
    if (opts.onlyThisHost && (r.hostname !== host.hostname || r.boot_id !== host.bootId)) continue;
    if (isLeaseStale(r, now, host)) stale.add(r.id);
  }
  return stale;
}

/** Deletes stale leases in one transaction; returns how many went. */
export async function deleteStaleLeases(
  index: IndexDb,
  opts: { onlyThisHost?: boolean; signal?: AbortSignal | undefined } = {},
): Promise<number> {
  const stale = await findStaleLeases(index, opts);
  if (stale.size === 0) return 0;
  return index.write(
    () => {
      let n = 0;
      for (const id of stale) if (deleteLease(index, id)) n++;
      return n;
    },
    { signal: opts.signal },
  );
}

/**
 * Live lease items, as sets per kind. `stale` (from findStaleLeases) excludes dead owners; leases
 * not in it are live unless expired at `now`. Call inside a transaction for a consistent view.
 */
export function liveLeaseItems(index: IndexDb, now: number, stale: Set<string>): Record<LeaseItemKind, Set<string>> {
  const rows = allLeaseItems(index);
  const out: Record<LeaseItemKind, Set<string>> = {
    manifest: new Set(),
    layer: new Set(),
    blob: new Set(),
    temp: new Set(),
  };
  for (const r of rows) if (r.expires_at >= now && !stale.has(r.id)) out[r.kind].add(r.value);
  return out;
}

/** True if a live lease names (kind, value). Call inside a transaction. */
export function isLeased(index: IndexDb, kind: LeaseItemKind, value: string, now: number, stale: Set<string>): boolean {
  return leasesNaming(index, kind, value).some((r) => r.expires_at >= now && !stale.has(r.id));
}

/**
 * Starts a lease for `operation` in the index of a store opened for writing. The renewal timer is
 * unref'd: it never keeps the process alive.
 */
export async function createLease(
  store: { readonly index: IndexDb },
  operation: LeaseOperation,
  opts: { signal?: AbortSignal | undefined } = {},
): Promise<Lease> {
  const index = store.index;
  const id = randomBytes(16).toString('hex');
  const host = thisHost();
  const now = Date.now();
  await index.write(
    () => {
      insertLease(index, {
        id,
        operation,
        hostname: host.hostname,
        boot_id: host.bootId,
        pid: process.pid,
        pid_start: processStartTime(process.pid),
        created_at: now,
        expires_at: now + LEASE_TTL_MS,
      });
    },
    { signal: opts.signal },
  );
  let released = false;
  const timer = setInterval(() => {
    if (released || index.isClosed) return;
    index
      .write(() => {
        renewLease(index, id, Date.now() + LEASE_TTL_MS);
      })
      .catch(() => {
        /* the next renewal retries; expiry is 10 min away */
      });
  }, LEASE_RENEW_MS);
  timer.unref();
  const addItems = async (items: { kind: LeaseItemKind; value: string }[]) => {
    if (released) throw new Error(`lease ${id} already released`);
    await index.write(() => {
      addLeaseItems(index, id, items);
    });
  };
  return {
    id,
    addItem: (kind, value) => addItems([{ kind, value }]),
    addItems,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      if (index.isClosed) return;
      try {
        await index.write(() => {
          deleteLease(index, id);
        });
      } catch {
        /* left for prune: the owner-dead / expiry rules reap it */
      }
    },
  };
}

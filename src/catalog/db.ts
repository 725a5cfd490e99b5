/**
 * The SQLite index connection (docs/storage.md §3): open checks that never write to a foreign or newer
 * database, forward-only migrations under `db/migrate.lock`, and transactions that never block
 * the event loop for longer than the 50 ms busy timeout.
 *
 * Write transactions are `BEGIN IMMEDIATE`. When another connection holds the write lock, SQLite
 * waits at most `busy_timeout` (50 ms) synchronously; after that we retry from JavaScript with an
 * async backoff (10 ms doubling to 500 ms, 10 s in all), then fail with DatabaseError. Callbacks
 * given to `write`/`read` are synchronous and must do no file or network I/O.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { DatabaseError, MsbError, throwIfAborted, toIoError } from '../errors.js';
import { sleep } from '../util/abort.js';
import { acquireFileLock } from '../util/flock.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, MIGRATION_1_NAME } from './migrations.js';

export type Db = BetterSqlite3.Database;

export const BUSY_TIMEOUT_MS = 50;
export const RETRY_MIN_MS = 10;
export const RETRY_MAX_MS = 500;
export const RETRY_TOTAL_MS = 10_000;

export function isBusyError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

function isSqliteError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/** SQLite failures become DatabaseError; typed errors (thrown by callbacks) pass through. */
export function toDatabaseError(err: unknown, what: string): unknown {
  if (err instanceof MsbError) return err;
  if (isSqliteError(err)) return new DatabaseError(`${what}: ${(err as Error).message}`, err);
  return err;
}

export interface TxOptions {
  signal?: AbortSignal | undefined;
}

/** One connection per LocalBackend. */
export class IndexDb {
  readonly path: string;
  readonly db: Db;
  readonly indexId: string;
  private readonly stmts = new Map<string, BetterSqlite3.Statement>();
  private closed = false;

  constructor(path: string, db: Db, indexId: string) {
    this.path = path;
    this.db = db;
    this.indexId = indexId;
  }

  /** A cached prepared statement in raw mode (rows as arrays). */
  rawStmt(sql: string): BetterSqlite3.Statement {
    const key = `raw:${sql}`;
    let s = this.stmts.get(key);
    if (!s) {
      s = this.db.prepare(sql).raw(true);
      this.stmts.set(key, s);
    }
    return s;
  }

  /** A cached prepared statement. */
  stmt(sql: string): BetterSqlite3.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction and commits. Busy → async backoff and retry of
   * the whole transaction; after 10 s → DatabaseError. An exception from `fn` rolls back.
   */
  async write<T>(fn: (db: Db) => T, opts: TxOptions = {}): Promise<T> {
    return this.retrying('write transaction', opts.signal, () => this.transaction('BEGIN IMMEDIATE', fn));
  }

  /**
   * Runs `fn` in a read transaction (a consistent snapshot). The synchronous fast path makes a
   * single `list()` one query and no extra work; only a busy database falls back to retries.
   */
  async read<T>(fn: (db: Db) => T, opts: TxOptions = {}): Promise<T> {
    return this.retrying('read', opts.signal, () => this.transaction('BEGIN', fn));
  }

  /** One attempt: `begin`, `fn`, COMMIT; anything thrown rolls back. */
  private transaction<T>(begin: 'BEGIN' | 'BEGIN IMMEDIATE', fn: (db: Db) => T): T {
    this.db.exec(begin);
    try {
      const r = fn(this.db);
      this.db.exec('COMMIT');
      return r;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  private async retrying<T>(what: string, signal: AbortSignal | undefined, attempt: () => T): Promise<T> {
    if (this.closed) throw new DatabaseError(`index ${this.path} is closed`);
    const deadline = Date.now() + RETRY_TOTAL_MS;
    let delay = RETRY_MIN_MS;
    for (;;) {
      throwIfAborted(signal);
      try {
        return attempt();
      } catch (err) {
        if (!isBusyError(err)) throw toDatabaseError(err, `${what} on ${this.path}`);
        if (Date.now() + delay > deadline) {
          throw new DatabaseError(
            `${what} on ${this.path}: database is busy (gave up after ${RETRY_TOTAL_MS / 1000}s)`,
            err,
          );
        }
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stmts.clear();
    this.db.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

interface Inspection {
  tables: string[];
  versions: { version: number; name: string }[];
  userVersion: number;
}

/** Step 1 of docs/storage.md §3.3: reads only. Busy → retried like a read. */
async function inspect(db: Db, path: string, signal?: AbortSignal): Promise<Inspection> {
  const deadline = Date.now() + RETRY_TOTAL_MS;
  let delay = RETRY_MIN_MS;
  for (;;) {
    throwIfAborted(signal);
    try {
      const tables = (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      ).map((r) => r.name);
      let versions: { version: number; name: string }[] = [];
      if (tables.includes('schema_migrations')) {
        try {
          versions = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
            version: number;
            name: string;
          }[];
        } catch (err) {
          if (isBusyError(err)) throw err;
          versions = []; // a foreign table of that name: treated as "not ours" below
        }
      }
      const userVersion = db.pragma('user_version', { simple: true }) as number;
      return { tables, versions, userVersion };
    } catch (err) {
      if (!isBusyError(err) || Date.now() + delay > deadline) {
        throw new DatabaseError(`cannot read index ${path}: ${(err as Error).message}`, err);
      }
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

async function retryBusy<T>(what: string, path: string, fn: () => T, signal?: AbortSignal): Promise<T> {
  const deadline = Date.now() + RETRY_TOTAL_MS;
  let delay = RETRY_MIN_MS;
  for (;;) {
    throwIfAborted(signal);
    try {
      return fn();
    } catch (err) {
      if (!isBusyError(err)) throw toDatabaseError(err, `${what} on ${path}`);
      if (Date.now() + delay > deadline) throw new DatabaseError(`${what} on ${path}: database is busy`, err);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

export interface OpenIndexOptions {
  /**
   * true: create `db/`, the database and its schema when missing (any call that writes).
   * false: a home with no database (or an empty one) answers `null`; nothing is created.
   */
  create: boolean;
  signal?: AbortSignal | undefined;
}

/** `<home>/db/msb.db` */
export function indexPath(home: string): string {
  return join(home, 'db', 'msb.db');
}

/**
 * Opens (and migrates) the index of `home` following docs/storage.md §3.3 exactly. A foreign database
 * or a newer schema is refused with DatabaseError before any pragma or statement that writes.
 */
export async function openIndex(home: string, opts: OpenIndexOptions): Promise<IndexDb | null> {
  const path = indexPath(home);
  const dbDir = dirname(path);
  if (!opts.create) {
    try {
      if (!statSync(path).isFile())
        throw new DatabaseError(`${path} is not an msb-image index; set MSB_HOME to use another home`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw toIoError(err, path);
    }
  } else {
    try {
      mkdirSync(dbDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw toIoError(err, dbDir);
    }
  }
  const lock = await acquireFileLock(join(dbDir, 'migrate.lock'), { signal: opts.signal });
  let db: Db | null = null;
  try {
    if (!opts.create && !existsSync(path)) return null;
    try {
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw new DatabaseError(`cannot open index ${path}: ${(err as Error).message}`, err);
    }
    const found = await inspect(db, path, opts.signal);
    const ours = found.versions.some((v) => v.version === 1 && v.name === MIGRATION_1_NAME);
    const known = new Set(MIGRATIONS.map((m) => m.version));
    const newest = Math.max(found.userVersion, ...found.versions.map((v) => v.version));
    const unknown = found.versions.some((v) => !known.has(v.version));
    // A schema_migrations of our shape that records a version we do not know is a newer msb's
    // index (reported as such even if its version-1 row was written by a later naming scheme).
    if ((found.versions.length > 0 || found.tables.length === 0) && (unknown || newest > LATEST_SCHEMA_VERSION)) {
      throw new DatabaseError(`index schema v${newest} is newer than this msb (v${LATEST_SCHEMA_VERSION})`);
    }
    if (found.tables.length > 0 && !ours) {
      throw new DatabaseError(`${path} is not an msb-image index; set MSB_HOME to use another home`);
    }
    if (found.tables.length === 0 && !opts.create) return null; // an empty file: nothing to read, nothing to create
    const conn = db;
    // Step 4: only now anything that may write.
    await retryBusy('set journal mode', path, () => conn.pragma('journal_mode = WAL'), opts.signal);
    conn.pragma('synchronous = NORMAL');
    conn.pragma('foreign_keys = ON');
    conn.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const applied = new Set(found.versions.map((v) => v.version));
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await retryBusy(
        `migration ${m.version}`,
        path,
        () => {
          conn.exec('BEGIN IMMEDIATE');
          try {
            const now = Date.now();
            m.up(conn, now);
            conn
              .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
              .run(m.version, m.name, now);
            conn.pragma(`user_version = ${m.version}`);
            conn.exec('COMMIT');
          } catch (err) {
            if (conn.inTransaction) conn.exec('ROLLBACK');
            throw err;
          }
        },
        opts.signal,
      );
    }
    const info = conn.prepare('SELECT index_id FROM index_info WHERE id = 1').get() as { index_id: string } | undefined;
    if (!info) throw new DatabaseError(`index ${path} has no index_info row`);
    const out = new IndexDb(path, conn, info.index_id);
    db = null; // ownership passes to IndexDb
    return out;
  } catch (err) {
    throw toDatabaseError(err, `open index ${path}`);
  } finally {
    if (db)
      try {
        db.close();
      } catch {
        /* closing a refused database */
      }
    lock.release();
  }
}

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
import { existsSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { DatabaseError, IoError, MsbError, sqliteErrno, throwIfAborted, toIoError } from '../errors.js';
import { sleep } from '../util/abort.js';
import { acquireFileLock } from '../util/flock.js';
import { ensureDirSync, writeErrnoSync } from '../util/fs.js';
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

/**
 * SQLite failures become typed errors; typed errors (thrown by callbacks) pass through. A failure
 * that is the filesystem's (disk full, read-only, cannot open, I/O error) is IoError on `path`
 * (docs/acceptance.md H8: a full disk is `IO` `ENOSPC`), any other DatabaseError.
 */
export function toDatabaseError(err: unknown, what: string, path?: string): unknown {
  if (err instanceof MsbError) return err;
  if (isSqliteError(err)) {
    let errno = sqliteErrno((err as { code: string }).code);
    // SQLite does not say which errno it met: a full disk while mapping its `-shm` file is an
    // "I/O error", a read-only mount "cannot open"; ask the filesystem.
    if (errno === 'EIO' && path !== undefined && diskFull(dirname(path))) errno = 'ENOSPC';
    if ((errno === 'EACCES' || errno === 'EROFS') && path !== undefined) errno = writeErrnoSync(dirname(path)) ?? errno;
    if (errno !== null && path !== undefined)
      return new IoError(path, errno, `${errno}: ${what}: ${(err as Error).message}`, err);
    return new DatabaseError(`${what}: ${(err as Error).message}`, err);
  }
  return err;
}

/** True when the filesystem holding `dir` has no free block left (statfs). */
function diskFull(dir: string): boolean {
  try {
    return statfsSync(dir).bavail === 0;
  } catch {
    return false;
  }
}

export interface TxOptions {
  signal?: AbortSignal | undefined;
}

/** One connection per LocalBackend. */
export class IndexDb {
  readonly path: string;
  readonly db: Db;
  readonly indexId: string;
  /** Opened without write access (a read-only home): every write fails with IoError EROFS. */
  readonly readOnly: boolean;
  private readonly stmts = new Map<string, BetterSqlite3.Statement>();
  private closed = false;

  constructor(path: string, db: Db, indexId: string, readOnly = false) {
    this.path = path;
    this.db = db;
    this.indexId = indexId;
    this.readOnly = readOnly;
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
    if (this.readOnly) {
      throw withHint(
        new IoError(dirname(this.path), 'EROFS', `EROFS: ${dirname(this.path)}: the index is read-only here`),
        'this home is not writable: images, inspect and df work; anything that changes the cache needs a writable home',
      );
    }
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
        if (!isBusyError(err)) throw toDatabaseError(err, `${what} on ${this.path}`, this.path);
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

/** Step 1 of docs/storage.md §3.3, one attempt: reads only. */
function inspectSync(db: Db): Inspection {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
    (r) => r.name,
  );
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
}

/** Step 1, busy → retried like a read. A file SQLite cannot read is DatabaseError with a hint. */
async function inspect(db: Db, path: string, signal?: AbortSignal): Promise<Inspection> {
  const deadline = Date.now() + RETRY_TOTAL_MS;
  let delay = RETRY_MIN_MS;
  for (;;) {
    throwIfAborted(signal);
    try {
      return inspectSync(db);
    } catch (err) {
      if (!isBusyError(err) || Date.now() + delay > deadline) {
        const io = toDatabaseError(err, `cannot read index ${path}`, path);
        if (io instanceof IoError) throw io;
        throw withHint(
          new DatabaseError(`cannot read index ${path}: ${(err as Error).message}`, err),
          `the index is damaged: restore ${path} from a backup; or move it and the cache directory aside to start over`,
        );
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
      if (!isBusyError(err)) throw toDatabaseError(err, `${what} on ${path}`, path);
      if (Date.now() + delay > deadline) throw new DatabaseError(`${what} on ${path}: database is busy`, err);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}

export interface OpenIndexOptions {
  /**
   * true: create `db/`, the database and its schema when missing (any call that writes).
   * false: a home with no database (or an empty one) answers `null`; nothing is created. When
   * `db/` is not writable (a read-only home), the index is opened read-only without the migrate
   * lock, so listing and inspecting still work; writes then fail with IoError EROFS.
   */
  create: boolean;
  signal?: AbortSignal | undefined;
  /**
   * Called when the file exists but holds no table (0 bytes, or a never-initialized database),
   * before anything is created in it: the store refuses an empty index whose cache names another
   * (a lost or truncated index, docs/storage.md §3.3).
   */
  onEmpty?: (() => void) | undefined;
}

/** `<home>/db/msb.db` */
export function indexPath(home: string): string {
  return join(home, 'db', 'msb.db');
}

/** A `DatabaseError` with a recovery hint (printed by the CLI under the message). */
function withHint<E extends MsbError>(e: E, hint: string): E {
  (e.details as Record<string, unknown>).hint = hint;
  return e;
}

/** Refuses a foreign or newer database (steps 2–3 of docs/storage.md §3.3); nothing is written. */
function checkOurs(found: Inspection, path: string): void {
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
}

/** Step 4: the pragmas, then each missing migration in its own transaction. */
async function migrate(conn: Db, found: Inspection, path: string, signal?: AbortSignal): Promise<void> {
  await retryBusy('set journal mode', path, () => conn.pragma('journal_mode = WAL'), signal);
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
      signal,
    );
  }
}

/** The `index_info` id of an opened (and migrated) index. */
function indexIdOf(conn: Db, path: string): string {
  const info = conn.prepare('SELECT index_id FROM index_info WHERE id = 1').get() as { index_id: string } | undefined;
  if (!info) throw new DatabaseError(`index ${path} has no index_info row`);
  return info.index_id;
}

/**
 * The index of a home whose `db/` cannot be written. SQLite cannot open a WAL database read-only
 * when it cannot create the `-shm` file, so: with a `-wal` beside it (uncheckpointed commits, and
 * so a `-shm`), a plain read-only open; without one the file is the whole index, read into memory
 * (its journal-mode bytes set to rollback, the in-memory copy only). Never migrates.
 */
function openReadOnly(path: string): IndexDb | null {
  let conn: Db;
  try {
    const wal = statSync(`${path}-wal`, { throwIfNoEntry: false });
    if (wal && wal.size > 0) conn = new Database(path, { readonly: true, fileMustExist: true });
    else {
      const buf = readFileSync(path);
      if (buf.length === 0) return null;
      if (buf.length >= 20 && buf[18] === 2 && buf[19] === 2) buf[18] = buf[19] = 1;
      conn = new Database(buf, { readonly: true });
    }
  } catch (err) {
    throw toDatabaseError(err, `open index ${path} read-only`, path);
  }
  try {
    const found = inspectSync(conn);
    if (found.tables.length === 0) return null;
    checkOurs(found, path);
    if (!MIGRATIONS.every((m) => found.versions.some((v) => v.version === m.version))) {
      throw withHint(
        new DatabaseError(`index ${path} needs a migration, but ${dirname(path)} is read-only`),
        'run this msb once on a writable home to migrate it',
      );
    }
    return new IndexDb(path, conn, indexIdOf(conn, path), true);
  } catch (err) {
    conn.close();
    throw toDatabaseError(err, `open index ${path} read-only`, path);
  }
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
    // A read-only mount or no write permission: open read-only (listing and inspecting still work).
    if (writeErrnoSync(dbDir) !== null) return openReadOnly(path);
    try {
      return await openWritable(path, opts);
    } catch (err) {
      // A full disk cannot hold the `-shm` file a WAL reader needs: a read still works from a copy.
      if (err instanceof IoError && err.errno === 'ENOSPC') return openReadOnly(path);
      throw err;
    }
  }
  ensureDirSync(dbDir, 0o700);
  return openWritable(path, opts);
}

/** Steps 1–5 of docs/storage.md §3.3 under `db/migrate.lock` (creating the database when `opts.create`). */
async function openWritable(path: string, opts: OpenIndexOptions): Promise<IndexDb | null> {
  const lock = await acquireFileLock(join(dirname(path), 'migrate.lock'), { signal: opts.signal });
  let db: Db | null = null;
  try {
    if (!opts.create && !existsSync(path)) return null;
    try {
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    } catch (err) {
      throw toDatabaseError(err, `cannot open index ${path}`, path);
    }
    const found = await inspect(db, path, opts.signal);
    checkOurs(found, path);
    if (found.tables.length === 0) {
      opts.onEmpty?.();
      if (!opts.create) return null; // an empty file: nothing to read, nothing to create
    }
    await migrate(db, found, path, opts.signal);
    const out = new IndexDb(path, db, indexIdOf(db, path));
    db = null; // ownership passes to IndexDb
    return out;
  } catch (err) {
    throw toDatabaseError(err, `open index ${path}`, path);
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

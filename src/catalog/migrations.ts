/**
 * The index schema as an ordered list of forward-only migrations (docs/storage.md §3.3). A released
 * migration is never edited: add a new one instead. Migration 1 also writes the `index_info` row
 * whose `index_id` ties the cache marker (docs/storage.md §1) to this index.
 */
import { randomBytes } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';

export interface Migration {
  version: number;
  /** Stored in `schema_migrations.name`; version 1's name identifies an msb-image index. */
  name: string;
  up(db: BetterSqlite3.Database, now: number): void;
}

/** The name of migration 1: a `schema_migrations` table whose version-1 row carries it is ours. */
export const MIGRATION_1_NAME = 'msb-image/initial-schema';

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: MIGRATION_1_NAME,
    // long: the schema is one DDL script, read as a whole (docs/storage.md §3.2)
    up(db: BetterSqlite3.Database, now: number): void {
      db.exec(`
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                applied_at INTEGER NOT NULL) STRICT;

CREATE TABLE index_info (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  index_id    TEXT NOT NULL,
  created_at  INTEGER NOT NULL) STRICT;

CREATE TABLE config (
  digest      TEXT PRIMARY KEY,
  raw         BLOB NOT NULL,
  created_at  INTEGER NOT NULL) STRICT;

CREATE TABLE manifest (
  id              INTEGER PRIMARY KEY,
  digest          TEXT NOT NULL UNIQUE,
  media_type      TEXT NOT NULL,
  raw             BLOB NOT NULL,
  config_digest   TEXT NOT NULL REFERENCES config(digest) ON DELETE RESTRICT,
  os TEXT, architecture TEXT, variant TEXT,
  layer_count     INTEGER NOT NULL,
  source          TEXT NOT NULL CHECK (source IN ('registry','archive')),
  fsmeta_bytes    INTEGER,
  vmdk_bytes      INTEGER,
  size_bytes      INTEGER,
  created_at      INTEGER NOT NULL,
  materialized_at INTEGER) STRICT;

CREATE TABLE layer (
  id                 INTEGER PRIMARY KEY,
  diff_id            TEXT NOT NULL UNIQUE,
  erofs_size_bytes   INTEGER,
  erofs_alloc_bytes  INTEGER,
  inodes             INTEGER NOT NULL,
  blocks             INTEGER NOT NULL,
  created_at         INTEGER NOT NULL,
  last_used_at       INTEGER NOT NULL) STRICT;

CREATE TABLE manifest_layer (
  manifest_id  INTEGER NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  layer_id     INTEGER NOT NULL REFERENCES layer(id) ON DELETE RESTRICT,
  blob_digest  TEXT NOT NULL,
  media_type   TEXT NOT NULL,
  compressed_size_bytes INTEGER,
  PRIMARY KEY (manifest_id, position)) STRICT, WITHOUT ROWID;
CREATE INDEX manifest_layer_by_layer ON manifest_layer(layer_id);

CREATE TABLE image_ref (
  id            INTEGER PRIMARY KEY,
  reference     TEXT NOT NULL UNIQUE,
  manifest_id   INTEGER NOT NULL REFERENCES manifest(id) ON DELETE RESTRICT,
  index_digest  TEXT,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER NOT NULL) STRICT;
CREATE INDEX image_ref_by_manifest ON image_ref(manifest_id);
CREATE INDEX image_ref_by_created  ON image_ref(created_at DESC, reference ASC);

CREATE TABLE pin (
  kind             TEXT NOT NULL CHECK (kind IN ('sandbox','snapshot')),
  key              TEXT NOT NULL,
  name             TEXT,
  manifest_digest  TEXT NOT NULL,
  reference        TEXT,
  created_at       INTEGER NOT NULL,
  PRIMARY KEY (kind, key)) STRICT, WITHOUT ROWID;
CREATE INDEX pin_by_manifest ON pin(manifest_digest);
CREATE UNIQUE INDEX pin_snapshot_name ON pin(name) WHERE kind = 'snapshot' AND name IS NOT NULL;

CREATE TABLE lease (
  id          TEXT PRIMARY KEY,
  operation   TEXT NOT NULL,
  hostname    TEXT NOT NULL,
  boot_id     TEXT,
  pid         INTEGER NOT NULL,
  pid_start   TEXT,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL) STRICT;
CREATE TABLE lease_item (
  lease_id  TEXT NOT NULL REFERENCES lease(id) ON DELETE CASCADE,
  kind      TEXT NOT NULL CHECK (kind IN ('manifest','layer','blob','temp')),
  value     TEXT NOT NULL,
  PRIMARY KEY (lease_id, kind, value)) STRICT, WITHOUT ROWID;
CREATE INDEX lease_item_by_value ON lease_item(kind, value);
`);
      db.prepare('INSERT INTO index_info (id, index_id, created_at) VALUES (1, ?, ?)').run(
        randomBytes(16).toString('hex'),
        now,
      );
    },
  },
  {
    version: 2,
    name: 'msb-image/artifact-digests',
    // docs/storage.md §10.1: the content digest of each artifact, recorded when it is written.
    // Rows of an older index get NULL, measured (and recorded) by the first verify.
    up(db: BetterSqlite3.Database): void {
      db.exec(`
ALTER TABLE layer ADD COLUMN content_digest TEXT;
ALTER TABLE manifest ADD COLUMN fsmeta_digest TEXT;
ALTER TABLE manifest ADD COLUMN vmdk_digest TEXT;
`);
    },
  },
]);

export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

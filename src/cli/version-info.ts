/** The package version, and what `msb version --format json` reports about the runtime. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The native modules msb loads (each built for this Node's ABI). */
export const NATIVE_MODULES = ['better-sqlite3', 'zstd-napi', 'fs-ext'] as const;

function readVersion(file: string | URL): string | null {
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** This package's version (`0.1.0`), or `unknown` when package.json cannot be read. */
export function packageVersion(): string {
  return readVersion(new URL('../../../package.json', import.meta.url)) ?? 'unknown';
}

export interface VersionInfo {
  version: string;
  node: string;
  /** Node's N-API and module ABI versions, which the native modules were built for. */
  napi: string | null;
  modules: string;
  platform: string;
  arch: string;
  /** Native dependency → its package version (null when it cannot be found). */
  native: Record<string, string | null>;
  /** The SQLite library inside better-sqlite3 (null when it cannot be loaded). */
  sqlite: string | null;
}

export function versionInfo(): VersionInfo {
  const native: Record<string, string | null> = {};
  for (const m of NATIVE_MODULES) {
    let v: string | null = null;
    try {
      v = readVersion(require.resolve(`${m}/package.json`));
    } catch {
      v = null;
    }
    native[m] = v;
  }
  let sqlite: string | null = null;
  try {
    const Database = require('better-sqlite3') as new (
      f: string,
    ) => {
      prepare(s: string): { pluck(): { get(): unknown } };
      close(): void;
    };
    const db = new Database(':memory:');
    sqlite = String(db.prepare('SELECT sqlite_version()').pluck().get());
    db.close();
  } catch {
    sqlite = null;
  }
  return {
    version: packageVersion(),
    node: process.versions.node,
    napi: process.versions.napi ?? null,
    modules: process.versions.modules,
    platform: process.platform,
    arch: process.arch,
    native,
    sqlite,
  };
}

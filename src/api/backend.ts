/**
 * Backends (docs/api.md §8). A `LocalBackend` owns one SQLite connection on `<home>/db/msb.db` and one
 * cache directory. It opens lazily: read-only calls (`get`, `list`, `inspect`, `diskUsage`) on a
 * home without an index create nothing and answer as for an empty index; the first call that
 * writes creates the directories, the database and the cache marker (docs/storage.md §1).
 *
 * `CloudBackend` only carries connection settings: it has no image-cache surface, and its apiKey
 * is held in a private field that never appears in JSON, `util.inspect` or error messages.
 *
 * Choices where the contract is silent:
 * - `close()` waits for running operations, closes the database and forgets the open state; a
 *   later call on the same object reopens it (like a lazy backend).
 * - The cloud default URL is `https://api.microsandbox.dev`.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspect as utilInspect } from 'node:util';
import { SettingsError, wrapError } from '../errors.js';
import { resolveLimits, type Limits } from '../limits.js';
import { openStore, type Store, type StoreConfig, type StoreOpener } from '../store/store.js';
import { tryParseDuration } from '../util/duration.js';
import { DEFAULT_TEMP_GRACE, overlaySettings, readSettings, type Settings } from '../settings/settings.js';

/** Options of a LocalBackend (docs/api.md §8); the builder sets the same fields. */
export interface LocalBackendOptions {
  /** Default: MSB_HOME, else ~/.msb-image. */
  home?: string;
  /** Default: config `paths.cache`, else `<home>/cache`. */
  cacheDir?: string;
  /** Overlays config.json. */
  settings?: Partial<Settings>;
  pullConcurrency?: number;
  limits?: Partial<Limits>;
  tempGraceMs?: number;
}

export type { Store, StoreOpener } from '../store/store.js';

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  const h = env.MSB_HOME?.trim();
  return h ? resolve(h) : join(homedir(), '.msb-image');
}

/**
 * A local image cache: one home directory, one cache directory and its SQLite index
 * (docs/api.md §8). Opens lazily; `close()` releases the database.
 */
export class LocalBackend implements StoreOpener {
  readonly kind = 'local' as const;
  readonly home: string;
  private readonly options: LocalBackendOptions;
  private settingsCache: Settings | null = null;
  private opening: Promise<Store | null> | null = null;
  private store: Store | null = null;
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  /** Use `LocalBackend.lazy()` or `LocalBackend.builder()`. */
  constructor(options: LocalBackendOptions = {}) {
    this.options = { ...options };
    this.home = options.home !== undefined ? resolve(options.home) : defaultHome();
  }

  /** A LocalBackendBuilder, to set options and then `build()` or `buildLazy()`. */
  static builder(): LocalBackendBuilder {
    return new LocalBackendBuilder();
  }

  /** A backend that does no I/O until its first call. */
  static lazy(options: LocalBackendOptions = {}): LocalBackend {
    return new LocalBackend(options);
  }

  /** Settings: config.json overlaid with the builder's `settings` (read once, then cached). */
  get settings(): Settings {
    if (!this.settingsCache) this.settingsCache = overlaySettings(readSettings(this.home), this.options.settings);
    return this.settingsCache;
  }

  /**
   * The configured cache directory (absolute; not yet resolved through symlinks). Reading it may
   * read config.json when `paths.cache` decides it.
   */
  get cacheDir(): string {
    if (this.options.cacheDir !== undefined) return resolve(this.options.cacheDir);
    return this.settings.paths.cache ?? join(this.home, 'cache');
  }

  /** @internal Opens (once) for reading: `null` means "no index yet" (nothing was created). */
  async _open(mode: 'read'): Promise<Store | null>;
  /** @internal Opens (once) for writing: creates directories, DB and marker as needed. */
  async _open(mode: 'write', signal?: AbortSignal): Promise<Store>;
  async _open(mode: 'read' | 'write', signal?: AbortSignal): Promise<Store | null> {
    const cur = this.store;
    if (cur && !cur.index.isClosed && (mode === 'read' || cur.writeReady)) return cur;
    while (this.opening) {
      try {
        await this.opening;
      } catch {
        /* the next attempt reports its own error */
      }
      const s = this.store;
      if (s && !s.index.isClosed && (mode === 'read' || s.writeReady)) return s;
    }
    const p = this.doOpen(mode, signal);
    this.opening = p;
    try {
      return await p;
    } finally {
      this.opening = null;
    }
  }

  private async doOpen(mode: 'read' | 'write', signal?: AbortSignal): Promise<Store | null> {
    const settings = this.settings;
    const config: StoreConfig = {
      home: this.home,
      cacheDir: this.cacheDir,
      settings,
      limits: resolveLimits({ maxLayers: settings.pull.maxLayers }, this.options.limits),
      tempGraceMs:
        this.options.tempGraceMs ?? tryParseDuration(settings.prune.tempGrace) ?? tryParseDuration(DEFAULT_TEMP_GRACE)!,
      pullConcurrency: this.options.pullConcurrency ?? settings.pull.concurrency,
    };
    const store = await openStore(config, mode, this.store, signal);
    if (store) this.store = store;
    return store;
  }

  /**
   * @internal Tracks a running operation so that close() can wait for it. The API's one wrapping
   * point (docs/api.md §9): whatever `fn` throws leaves as an MsbError (`wrapError`: fs errors →
   * IO with their errno, SQLite → IO or DATABASE, anything else → INTERNAL), except the caller's
   * own `onProgress` error, which is returned unchanged.
   */
  async _run<T>(fn: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await fn();
    } catch (err) {
      throw wrapError(err, this.home);
    } finally {
      this.running--;
      if (this.running === 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    }
  }

  /** Waits for this backend's running operations, then closes the database. */
  async close(): Promise<void> {
    while (this.running > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    if (this.opening) {
      try {
        await this.opening;
      } catch {
        /* nothing to close */
      }
    }
    const s = this.store;
    this.store = null;
    s?.index.close();
  }

  /** A plain `{ kind, home, cacheDir }` for JSON output. */
  toJSON(): object {
    return {
      kind: this.kind,
      home: this.home,
      cacheDir: this.options.cacheDir !== undefined ? resolve(this.options.cacheDir) : undefined,
    };
  }
}

/** Builds a LocalBackend: set fields, then `build()` (opens now) or `buildLazy()`. */
export class LocalBackendBuilder {
  private readonly opts: LocalBackendOptions = {};
  /** The home directory (default: MSB_HOME, else ~/.msb-image). */
  home(p: string): this {
    this.opts.home = p;
    return this;
  }
  /** The cache directory (default: config.json `paths.cache`, else `<home>/cache`). */
  cacheDir(p: string): this {
    this.opts.cacheDir = p;
    return this;
  }
  /** Settings overlaid on the home's config.json (docs/api.md §7). */
  settings(s: Partial<Settings>): this {
    this.opts.settings = s;
    return this;
  }
  /** Layers fetched at once by a pull that sets no `concurrency` (default: config.json). */
  pullConcurrency(n: number): this {
    this.opts.pullConcurrency = n;
    return this;
  }
  /** Resource limits overriding the defaults (docs/api.md §6). */
  limits(l: Partial<Limits>): this {
    this.opts.limits = l;
    return this;
  }
  /** The minimum age of temp files prune deletes (default: config.json `prune.temp_grace`). */
  tempGraceMs(ms: number): this {
    this.opts.tempGraceMs = ms;
    return this;
  }
  /**
   * Eager: creates directories, opens and migrates the DB, writes the cache marker, reads settings.
   * Rejects SETTINGS_INVALID, DATABASE, IO.
   */
  async build(): Promise<LocalBackend> {
    const b = new LocalBackend(this.opts);
    await b._run(() => b._open('write'));
    return b;
  }
  /** A LocalBackend that does no I/O until its first call; it never rejects here. */
  buildLazy(): LocalBackend {
    return LocalBackend.lazy(this.opts);
  }
}

export const DEFAULT_CLOUD_URL = 'https://api.microsandbox.dev';

/**
 * A remote backend's connection settings (docs/api.md §8). It has no image cache: ambient `Image`,
 * `Sandbox` and `Snapshot` calls reject with UNSUPPORTED while it is the default. The apiKey is
 * never serialized or printed.
 */
export class CloudBackend {
  readonly kind = 'cloud' as const;
  readonly url: string;
  readonly #apiKey: string;
  constructor(options: { apiKey: string; url?: string }) {
    if (!options || typeof options.apiKey !== 'string' || options.apiKey.trim() === '') {
      throw new SettingsError('apiKey', 'CloudBackend needs a non-empty apiKey');
    }
    this.#apiKey = options.apiKey;
    this.url = options.url ?? DEFAULT_CLOUD_URL;
  }
  /** @internal For a future cloud client; never serialized. */
  _apiKey(): string {
    return this.#apiKey;
  }
  /** `{ kind, url }` for JSON output: never the apiKey. */
  toJSON(): object {
    return { kind: this.kind, url: this.url };
  }
  [utilInspect.custom](): string {
    return `CloudBackend { kind: 'cloud', url: ${JSON.stringify(this.url)} }`;
  }
}

// ---------------------------------------------------------------------------------------------
// Ambient default backend (docs/api.md §8)

type DefaultSpec = 'local' | LocalBackend | CloudBackend | { kind: 'cloud'; apiKey: string; url?: string };

let explicitDefault: LocalBackend | CloudBackend | null = null;
let resolvedDefault: LocalBackend | CloudBackend | null = null;

/** Sets the ambient backend; resets the cached resolution. */
export function setDefaultBackend(b: DefaultSpec): void {
  if (b === 'local') explicitDefault = LocalBackend.lazy();
  else if (b instanceof LocalBackend || b instanceof CloudBackend) explicitDefault = b;
  else if (b && typeof b === 'object' && (b as { kind?: unknown }).kind === 'cloud') {
    const c = b as { apiKey: string; url?: string };
    explicitDefault = new CloudBackend({ apiKey: c.apiKey, ...(c.url !== undefined ? { url: c.url } : {}) });
  } else {
    throw new SettingsError(
      'setDefaultBackend',
      "setDefaultBackend expects 'local', a LocalBackend, a CloudBackend or {kind:'cloud', apiKey}",
    );
  }
  resolvedDefault = explicitDefault;
}

/**
 * Resolves a backend from environment variables (rules 2–3 of docs/api.md §8). `home` (the CLI's
 * `--home`) forces a local backend on that home.
 */
export function backendFromEnv(env: NodeJS.ProcessEnv, home?: string): LocalBackend | CloudBackend {
  if (home !== undefined) return LocalBackend.lazy({ home });
  const raw = env.MSB_BACKEND;
  if (raw !== undefined && raw.trim() !== '') {
    const v = raw.trim().toLowerCase();
    if (v === 'local') return LocalBackend.lazy({ home: defaultHome(env) });
    if (v === 'cloud') {
      const key = env.MSB_API_KEY;
      if (!key || key.trim() === '')
        throw new SettingsError('MSB_API_KEY', 'MSB_BACKEND=cloud needs a non-empty MSB_API_KEY');
      const url = env.MSB_API_URL?.trim();
      return new CloudBackend({ apiKey: key, ...(url ? { url } : {}) });
    }
    throw new SettingsError('MSB_BACKEND', `MSB_BACKEND must be "local" or "cloud", not ${JSON.stringify(raw)}`);
  }
  return LocalBackend.lazy({ home: defaultHome(env) });
}

/**
 * The ambient backend. Resolved on first use and cached until `setDefaultBackend`. A bad
 * MSB_BACKEND / MSB_API_KEY throws SettingsError synchronously (and is not cached, so fixing the
 * environment takes effect on the next call).
 */
export function defaultBackend(): LocalBackend | CloudBackend {
  if (resolvedDefault) return resolvedDefault;
  resolvedDefault = explicitDefault ?? backendFromEnv(process.env);
  return resolvedDefault;
}

/** @internal Test hook: forget both the explicit and the resolved default. */
export function _resetDefaultBackend(): void {
  explicitDefault = null;
  resolvedDefault = null;
}

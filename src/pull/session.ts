/**
 * What one pull holds while it runs (docs/pull.md §8 steps 1–2 and 8): the open store, the
 * normalized options, the ref's lock, the lease, the event emitter, and the collaborators loaded
 * on demand — the registry client and the converter are loaded only when needed, so a cache hit
 * loads neither (undici, zstd…). `close()` releases all of it.
 */
import { InvalidArgumentError } from '../errors.js';
import { resolveLimits, type Limits } from '../limits.js';
import { hostPlatform, parsePlatform, type Platform } from '../oci/platform.js';
import type { ParsedReference } from '../reference/reference.js';
import type { RegistryCache, RegistryClient } from '../registry/client.js';
import { configRaw } from '../catalog/queries.js';
import { createLease, type Lease } from '../store/lease.js';
import type { Store, StoreOpener } from '../store/store.js';
import { acquireFileLock } from '../util/flock.js';
import { timed } from '../util/profile.js';
import type { PullDeps, PullHookPoint } from './deps.js';
import type { PullEmitter } from './events.js';
import type { PullOptions } from './types.js';

type Policy = 'if-missing' | 'always' | 'never';

export interface Normalized {
  policy: Policy;
  force: boolean;
  target: Platform;
  explicitPlatform: boolean;
  concurrency: number;
  limits: Limits;
}

/** §8 step 1: the options checked and defaulted (argument errors before any I/O). */
export function normalizeOptions(backend: StoreOpener, options: PullOptions, store: Store | null): Normalized {
  const policy = options.policy ?? 'if-missing';
  if (policy !== 'if-missing' && policy !== 'always' && policy !== 'never') {
    throw new InvalidArgumentError(
      'policy',
      `invalid pull policy ${JSON.stringify(policy)}: expected if-missing, always or never`,
    );
  }
  const force = options.force === true;
  if (force && policy === 'never')
    throw new InvalidArgumentError('force', "force cannot be combined with policy 'never'");
  const explicitPlatform = options.platform !== undefined && options.platform !== null;
  const target = explicitPlatform ? parsePlatform(options.platform) : hostPlatform();
  const concurrency = options.concurrency ?? store?.pullConcurrency ?? backend.settings.pull.concurrency;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError(
      'concurrency',
      `concurrency must be a positive integer, not ${JSON.stringify(options.concurrency)}`,
    );
  }
  const limits = resolveLimits(store?.limits, options.limits);
  return { policy, force, target, explicitPlatform, concurrency, limits };
}

/** Ping and token caches live as long as the backend (docs/pull.md §2.2 "once per host per backend"). */
const registryCaches = new WeakMap<StoreOpener, RegistryCache>();
function registryCacheOf(backend: StoreOpener, deps: PullDeps): RegistryCache {
  let c = registryCaches.get(backend);
  if (!c) {
    c = deps.createRegistryCache();
    registryCaches.set(backend, c);
  }
  return c;
}

/** What callers inside the library may add to a pull's options. */
export interface InternalPullOptions {
  /** Sandbox.create: the caller's lease (see pullImage). */
  lease?: unknown;
  /**
   * verify --repair (docs/storage.md §10.3): diff_ids to fetch and convert again even though their
   * files pass the §5 checks (a digest mismatch), each renamed over the old file.
   */
  refetch?: ReadonlySet<string>;
}

export interface SessionInput {
  backend: StoreOpener;
  parsed: ParsedReference;
  options: PullOptions & InternalPullOptions;
  emitter: PullEmitter;
  signal: AbortSignal;
  /** The collaborators (the test override, else the real modules), loaded on first use. */
  getDeps(): Promise<PullDeps>;
  /** The test override's hook, if any (never loads the real collaborators). */
  hook?: ((p: PullHookPoint) => void | Promise<void>) | undefined;
}

export class PullSession {
  lease: Lease | null = null;
  /** The endpoint that served the manifest or answered the HEAD. */
  source: string | null = null;
  private client: RegistryClient | null = null;
  private depsP: Promise<PullDeps> | null = null;
  private releaseRef: (() => void) | null = null;

  private constructor(
    readonly input: SessionInput,
    readonly store: Store,
    readonly n: Normalized,
  ) {}

  /** §8 steps 1–2: the store, the options, the ref's lock (abortable), then the lease. */
  static async open(input: SessionInput): Promise<PullSession> {
    const { backend, signal, options } = input;
    const store = await timed('store-open', () => backend._open('write', signal));
    const s = new PullSession(input, store, normalizeOptions(backend, options, store));
    const lock = await acquireFileLock(store.paths.lock('ref', input.parsed.canonical), { signal });
    s.releaseRef = () => lock.release();
    try {
      s.lease = options.lease ? (options.lease as Lease) : await createLease(store, 'pull', { signal });
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  get emitter(): PullEmitter {
    return this.input.emitter;
  }

  get signal(): AbortSignal {
    return this.input.signal;
  }

  get parsed(): ParsedReference {
    return this.input.parsed;
  }

  deps(): Promise<PullDeps> {
    this.depsP ??= timed('module-load', () => this.input.getDeps());
    return this.depsP;
  }

  warn(code: string, message: string): void {
    this.emitter.emit({ type: 'warning', code, message });
  }

  async hook(p: PullHookPoint): Promise<void> {
    await this.input.hook?.(p);
  }

  /** The registry client, built on first use (a cache hit never builds one). */
  async getClient(): Promise<RegistryClient> {
    if (this.client) return this.client;
    const deps = await this.deps();
    const { options, backend, signal } = this.input;
    const { store } = this;
    this.client = deps.createClient({
      home: store.home,
      settings: store.settings,
      ...(options.auth !== undefined ? { auth: options.auth } : {}),
      ...(options.insecure !== undefined ? { insecure: options.insecure } : {}),
      ...(options.caCerts !== undefined ? { caCerts: options.caCerts } : {}),
      signal,
      cache: registryCacheOf(backend, deps),
      onRetry: (info) => this.emitter.emit({ type: 'retry', ...info }),
      onWarning: (w) => this.warn(w.code, w.message),
      // A config already in the index is not fetched again (acceptance C19: a zstd twin of a
      // cached image costs no blob GET at all); the client re-verifies it.
      localBlob: (digest) => store.index.read(() => configRaw(store.index, digest)),
    });
    return this.client;
  }

  /** §8 step 8: the lease (when it is ours), the ref's lock, the client, the converter's workers. */
  async close(): Promise<void> {
    try {
      if (!this.input.options.lease && this.lease) await this.lease.release();
    } finally {
      this.releaseRef?.();
      this.releaseRef = null;
      await this.client?.close().catch(() => {});
      if (this.depsP) await (await this.depsP.catch(() => null))?.converter.pool?.close();
    }
  }
}

/**
 * Typed errors (docs/api.md §9). Every rejection of the public API is an `MsbError` with a stable
 * `code`; subclasses expose their details as typed fields. Messages never carry credentials,
 * tokens or signed URL queries: callers pass already-redacted strings (see `redactUrl`).
 */

export type ErrorCode =
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_IN_USE'
  | 'IMAGE_REFERENCED'
  | 'UNSUPPORTED'
  | 'INVALID_REFERENCE'
  | 'INVALID_ARGUMENT'
  | 'NOT_CACHED'
  | 'PLATFORM_NOT_FOUND'
  | 'DIGEST_MISMATCH'
  | 'MANIFEST_INVALID'
  | 'CONFIG_INVALID'
  | 'LAYER_INVALID'
  | 'REGISTRY_AUTH'
  | 'REGISTRY'
  | 'NETWORK'
  | 'ARCHIVE_INVALID'
  | 'CACHE_CORRUPT'
  | 'LIMIT_EXCEEDED'
  | 'ABORTED'
  | 'SETTINGS_INVALID'
  | 'IO'
  | 'DATABASE'
  | 'PIN_NOT_FOUND'
  | 'INTERNAL';

/**
 * The base of every typed error. An error whose remedy is an API option sets `details.option` to
 * that option's name and ends its message with `; <advice naming the option>`: a front end (the
 * CLI) replaces that last clause with its own wording (`-f`, `--tag`).
 */
export class MsbError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = details;
    this.name = new.target.name;
  }
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }
  /** What `JSON.stringify(err)` gives: `{ name, code, message, details }` (no stack). */
  toJSON(): object {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** IMAGE_NOT_FOUND: the reference, digest or image ID is not in the local index. */
export class ImageNotFoundError extends MsbError {
  readonly reference: string;
  constructor(reference: string, message = `image ${reference} not found`) {
    super('IMAGE_NOT_FOUND', message, { reference });
    this.reference = reference;
  }
}

/** A sandbox or snapshot pin, as listed by ImageInUseError.pins. */
export interface PinRef {
  kind: 'sandbox' | 'snapshot';
  name: string;
}

/** IMAGE_IN_USE: `remove` without `{ force: true }` of a pinned manifest's last reference (docs/api.md §2.4). */
export class ImageInUseError extends MsbError {
  readonly reference: string;
  readonly manifestDigest: string;
  readonly pins: PinRef[];
  constructor(reference: string, manifestDigest: string, pins: PinRef[]) {
    const used = pins.map((p) => `${p.kind} '${p.name}'`).join(', ');
    super('IMAGE_IN_USE', `${reference} is used by ${used}; pass { force: true } to untag anyway`, {
      reference,
      manifestDigest,
      pins,
      option: 'force',
    });
    this.reference = reference;
    this.manifestDigest = manifestDigest;
    this.pins = pins;
  }
}

/**
 * A digest or image ID given to `remove` names a manifest several references point at; without
 * `force` nothing is untagged (docker: "image is referenced in multiple repositories").
 */
export class ImageReferencedError extends MsbError {
  readonly reference: string;
  readonly manifestDigest: string;
  /** The references (familiar forms) the removal would untag. */
  readonly references: string[];
  constructor(reference: string, manifestDigest: string, references: string[]) {
    super(
      'IMAGE_REFERENCED',
      `${reference} is referenced by ${references.join(', ')}; pass { force: true } to untag them all`,
      { reference, manifestDigest, references, option: 'force' },
    );
    this.reference = reference;
    this.manifestDigest = manifestDigest;
    this.references = references;
  }
}

/**
 * UNSUPPORTED: the operation cannot run here: an ambient call on a cloud backend, or `mount` without root or kernel
 * EROFS support.
 */
export class UnsupportedError extends MsbError {
  readonly operation: string;
  readonly backend: string;
  /** `message` when the reason is not the backend (mounting an image without root). */
  constructor(operation: string, backend = 'cloud', message?: string) {
    super('UNSUPPORTED', message ?? `${operation} is not supported by the ${backend} backend; use a local backend`, {
      operation,
      backend,
    });
    this.operation = operation;
    this.backend = backend;
  }
}

/** INVALID_REFERENCE: a reference, digest or image ID that does not parse; `reason` says why. */
export class InvalidReferenceError extends MsbError {
  readonly input: string;
  readonly reason: string;
  constructor(input: string, reason: string) {
    super('INVALID_REFERENCE', `invalid reference ${JSON.stringify(input)}: ${reason}`, { input, reason });
    this.input = input;
    this.reason = reason;
  }
}

/**
 * INVALID_ARGUMENT: a bad option or argument value (platform, pin name, policy, conflicting options, a `tag` option on
 * a multi-image archive); `argument` names it.
 */
export class InvalidArgumentError extends MsbError {
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('INVALID_ARGUMENT', message, { argument });
    this.argument = argument;
  }
}

/**
 * NOT_CACHED: a pull with `{ policy: 'never' }` found the image, or one of its layers, absent or invalid in the cache.
 */
export class NotCachedError extends MsbError {
  readonly reference: string;
  constructor(reference: string, message = `${reference} is not cached (policy 'never')`) {
    super('NOT_CACHED', message, { reference });
    this.reference = reference;
  }
}

/** PLATFORM_NOT_FOUND: no index entry or config matches the platform asked for; `available` lists the image's. */
export class PlatformNotFoundError extends MsbError {
  readonly requested: string;
  readonly available: string[];
  constructor(requested: string, available: string[], message?: string) {
    super(
      'PLATFORM_NOT_FOUND',
      message ??
        `no manifest for platform ${requested}; available: ${available.length ? available.join(', ') : '(none)'}`,
      { requested, available },
    );
    this.requested = requested;
    this.available = available;
  }
}

/**
 * DIGEST_MISMATCH: a manifest, config, blob or diff_id hashed to something other than its expected digest; nothing is
 * published.
 */
export class DigestMismatchError extends MsbError {
  readonly what: string;
  readonly expected: string;
  readonly actual: string;
  constructor(what: string, expected: string, actual: string, message?: string) {
    super('DIGEST_MISMATCH', message ?? `${what} digest mismatch: expected ${expected}, got ${actual}`, {
      what,
      expected,
      actual,
    });
    this.what = what;
    this.expected = expected;
    this.actual = actual;
  }
}

/** MANIFEST_INVALID: a malformed or unsupported manifest or index (schema 1, unknown layer type). */
export class ManifestInvalidError extends MsbError {
  readonly digest?: string;
  constructor(message: string, digest?: string) {
    super('MANIFEST_INVALID', message, digest === undefined ? {} : { digest });
    if (digest !== undefined) this.digest = digest;
  }
}

/** CONFIG_INVALID: a malformed image config, or diff_ids that do not fit the layers. */
export class ConfigInvalidError extends MsbError {
  readonly digest: string;
  constructor(digest: string, message: string) {
    super('CONFIG_INVALID', message, { digest });
    this.digest = digest;
  }
}

/**
 * LAYER_INVALID: a hostile or corrupt layer tar (`entry` names the bad member), or content that is neither gzip, zstd
 * nor tar.
 */
export class LayerInvalidError extends MsbError {
  readonly diffId?: string;
  readonly entry?: string;
  readonly reason: string;
  constructor(reason: string, opts: { entry?: string; diffId?: string; cause?: unknown } = {}) {
    super(
      'LAYER_INVALID',
      opts.entry !== undefined ? `${opts.entry}: ${reason}` : reason,
      {
        reason,
        ...(opts.entry !== undefined ? { entry: opts.entry } : {}),
        ...(opts.diffId !== undefined ? { diffId: opts.diffId } : {}),
      },
      { cause: opts.cause },
    );
    this.reason = reason;
    if (opts.entry !== undefined) this.entry = opts.entry;
    if (opts.diffId !== undefined) this.diffId = opts.diffId;
  }
}

/**
 * REGISTRY_AUTH: the registry refused the credentials (401/403 after re-authenticating), a refused token realm, or a
 * failing credential helper.
 */
export class RegistryAuthError extends MsbError {
  readonly registry: string;
  readonly status: number;
  constructor(registry: string, status: number, message: string) {
    super('REGISTRY_AUTH', message, { registry, status });
    this.registry = registry;
    this.status = status;
  }
}

/**
 * REGISTRY: any other HTTP or protocol failure of a registry: 404, 5xx/429 after the retries, a too long Retry-After,
 * too many redirects.
 */
export class RegistryError extends MsbError {
  readonly registry: string;
  readonly status: number;
  readonly registryCode?: string;
  readonly retryAfterMs?: number;
  constructor(
    registry: string,
    status: number,
    message: string,
    extra: { registryCode?: string; retryAfterMs?: number; [k: string]: unknown } = {},
  ) {
    super('REGISTRY', message, { registry, status, ...extra });
    this.registry = registry;
    this.status = status;
    if (extra.registryCode !== undefined) this.registryCode = extra.registryCode;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

/** NETWORK: DNS, connect, TLS or connection-reset failure that outlasted the retries. */
export class NetworkError extends MsbError {
  readonly registry: string;
  constructor(registry: string, message: string, cause?: unknown) {
    super('NETWORK', message, { registry }, { cause });
    this.registry = registry;
  }
}

/**
 * ARCHIVE_INVALID: a malformed `docker save`/OCI archive, an image without a name, or a missing or escaping member
 * (`member`); docs/archives.md §9.
 */
export class ArchiveInvalidError extends MsbError {
  readonly member?: string;
  constructor(message: string, member?: string) {
    super('ARCHIVE_INVALID', message, member === undefined ? {} : { member });
    if (member !== undefined) this.member = member;
  }
}

/**
 * CACHE_CORRUPT: a cached artifact or index row is corrupt and cannot be repaired by this call (e.g. `save` of a bad
 * layer); `Image.verify(…, { repair: true })` may fix it.
 */
export class CacheCorruptError extends MsbError {
  readonly path: string;
  /** `remedy`: the API option that fixes it (`repair`: `verify` with `{ repair: true }`). */
  constructor(path: string, reason: string, remedy?: 'repair') {
    const advice = remedy ? '; repair it with verify({ repair: true })' : '';
    super('CACHE_CORRUPT', `${path}: ${reason}${advice}`, { path, reason, ...(remedy ? { option: remedy } : {}) });
    this.path = path;
  }
}

/** LIMIT_EXCEEDED: a resource limit (docs/api.md §6) was exceeded (`limit`, `value`, `max`); nothing published. */
export class LimitExceededError extends MsbError {
  readonly limit: string;
  readonly value: number;
  readonly max: number;
  constructor(limit: string, value: number, max: number, what?: string) {
    super('LIMIT_EXCEEDED', `${what ? what + ': ' : ''}limit ${limit} exceeded (${value} > ${max})`, {
      limit,
      value,
      max,
    });
    this.limit = limit;
    this.value = value;
    this.max = max;
  }
}

/** ABORTED: the caller's AbortSignal fired; `cause` is the signal's reason. */
export class AbortedError extends MsbError {
  constructor(reason?: unknown) {
    super('ABORTED', 'the operation was aborted', {}, { cause: reason });
  }
}

/**
 * SETTINGS_INVALID: bad config.json, environment variable, secret file mode, CA file or docker config, or a cache
 * directory that belongs to another home; `source` names it.
 */
export class SettingsError extends MsbError {
  readonly source: string;
  constructor(source: string, message: string) {
    super('SETTINGS_INVALID', message, { source });
    this.source = source;
  }
}

/**
 * IO: a filesystem failure (ENOSPC, EACCES, a planted symlink, a SQLite disk-full or read-only condition); `errno` is
 * Node's error code, `path` where it happened.
 */
export class IoError extends MsbError {
  readonly path: string;
  readonly errno: string;
  constructor(path: string, errno: string, message?: string, cause?: unknown) {
    super('IO', message ?? `${errno}: ${path}`, { path, errno }, { cause });
    this.path = path;
    this.errno = errno;
  }
}

/**
 * DATABASE: the SQLite index failed after its retries, has a newer schema, is foreign, or is empty or unreadable
 * (docs/storage.md §3.3).
 */
export class DatabaseError extends MsbError {
  constructor(message: string, cause?: unknown) {
    super('DATABASE', message, {}, { cause });
  }
}

/** PIN_NOT_FOUND: no sandbox or snapshot of that name (or digest) exists. */
export class PinNotFoundError extends MsbError {
  readonly kind: 'sandbox' | 'snapshot';
  /** The pin's name (docs/api.md §9 typed field); it shadows Error.name on purpose. */
  override readonly name: string;
  constructor(kind: 'sandbox' | 'snapshot', name: string) {
    super('PIN_NOT_FOUND', `${kind} '${name}' not found`, { kind, name });
    this.kind = kind;
    this.name = name;
  }
}

/**
 * A broken invariant of msb-image itself (our own output failed our own validation): a bug, never
 * a property of the input. Carries the original error as `cause` when there is one.
 */
export class InternalError extends MsbError {
  constructor(message: string, cause?: unknown) {
    super('INTERNAL', `internal error (a bug in msb-image, please report it): ${message}`, {}, { cause });
  }
}

/** Wraps a Node fs error into an IoError (errno = Node's err.code); passes MsbErrors through. */
export function toIoError(err: unknown, path: string): MsbError {
  if (err instanceof MsbError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
  const msg = (err as Error | undefined)?.message ?? String(err);
  return new IoError(path, code, `${code}: ${path}: ${msg.replace(/^[A-Z]+: /, '')}`, err);
}

/** Throws AbortedError (cause = signal.reason) when the signal has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AbortedError(signal.reason);
}

/**
 * The one redaction of URLs for anything printed or returned: userinfo is removed and a query
 * string becomes `?…` (a signed URL's query is a credential; docs/pull.md §3). `text` may be a URL or a message
 * with URLs in it (`GET https://user:pw@host/v2/… failed`): each URL in it is redacted.
 */
export function redactUrl(text: string): string {
  const one = (url: string): string => {
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
      // A bare origin keeps its form (URL would add a `/`).
      const bare = /^[a-z]+:\/\/[^/]*$/i.test(url.replace(/[?#].*$/, ''));
      return `${u.origin}${bare ? '' : u.pathname}${u.search ? '?…' : ''}`;
    } catch {
      return url.replace(/\/\/[^/@\s]*@/, '//').replace(/\?.*$/, '?…');
    }
  };
  if (/^[a-z][a-z0-9+.-]*:\/\/\S*$/i.test(text)) return one(text);
  // A URL in a message ends before whitespace, quotes and trailing punctuation.
  return text.replace(/\bhttps?:\/\/[^\s"'<>]*[^\s"'<>.,:;)\]]/gi, one);
}

/** Errors thrown by the caller's own callbacks (`onProgress`): returned to them unchanged. */
const callerErrors = new WeakSet<object>();

/** Marks `err` as the caller's own (a throwing `onProgress`): `wrapError` passes it through as is. */
export function markCallerError(err: unknown): void {
  if (typeof err === 'object' && err !== null) callerErrors.add(err);
}

/** SQLite result codes that are the filesystem's doing, with the errno they stand for. */
const SQLITE_IO: Record<string, string> = {
  SQLITE_FULL: 'ENOSPC',
  SQLITE_READONLY: 'EROFS',
  SQLITE_CANTOPEN: 'EACCES',
  SQLITE_IOERR: 'EIO',
  SQLITE_PERM: 'EPERM',
};

/** errno of a SQLite error that is an I/O condition (`SQLITE_FULL` → ENOSPC, …), else null. */
export function sqliteErrno(code: string): string | null {
  for (const [k, errno] of Object.entries(SQLITE_IO)) if (code === k || code.startsWith(`${k}_`)) return errno;
  return null;
}

/**
 * The one wrapping of an error that reaches an API boundary (docs/api.md §9): an MsbError passes;
 * a Node system error (`code` + `syscall`, or an errno-like code) → IoError with that errno; a
 * SQLite error → IoError for I/O conditions (disk full, read-only, cannot open, I/O error), else
 * DatabaseError; an AbortError → AbortedError; anything else is a bug → InternalError (the original
 * as `cause`). Errors the caller's own callbacks threw (`markCallerError`) and non-object values
 * (which only a caller's callback throws) are returned unchanged.
 */
export function wrapError(err: unknown, path = '<unknown>'): unknown {
  if (err instanceof MsbError) return err;
  if (typeof err !== 'object' || err === null) return err;
  if (callerErrors.has(err)) return err;
  return toMsbError(err, path);
}

/** As `wrapError`, for any value: the result is always an MsbError. */
export function toMsbError(err: unknown, path = '<unknown>'): MsbError {
  if (err instanceof MsbError) return err;
  const e = err as { code?: unknown; syscall?: unknown; path?: unknown; name?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  const where = typeof e?.path === 'string' ? e.path : path;
  if (e?.name === 'AbortError') return new AbortedError(err);
  if (code.startsWith('SQLITE_')) {
    const errno = sqliteErrno(code);
    if (errno) return new IoError(where, errno, `${errno}: ${where}: ${msg}`, err);
    return new DatabaseError(msg, err);
  }
  if (/^E[A-Z0-9]+$/.test(code) && (typeof e?.syscall === 'string' || typeof e?.path === 'string'))
    return toIoError(err, where);
  return new InternalError(msg, err);
}

/**
 * An API function whose every rejection leaves through `wrapError`: the boundary of the standalone
 * utilities (`convertLayer`, `stitchLayers`), which have no backend and so no `_run`.
 */
export function guarded<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (err) {
      throw wrapError(err);
    }
  };
}

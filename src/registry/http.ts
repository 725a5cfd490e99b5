/**
 * HTTP plumbing for registry traffic (docs/pull.md §1.3): undici@7 dispatchers with automatic
 * redirects off, per-trust-set TLS options, HTTPS_PROXY/HTTP_PROXY/NO_PROXY through
 * `EnvHttpProxyAgent`, the three timeouts, and the error classification the retry loop uses.
 */
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { Agent, envHttpProxyAgent } from './undici.js';
import { IoError, SettingsError } from '../errors.js';
import { FIXED_LIMITS } from '../limits.js';
import { readSmallFileSync } from '../util/fs.js';

export interface Timeouts {
  connectMs: number;
  headersMs: number;
  idleMs: number;
}
export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 30_000, headersMs: 30_000, idleMs: 60_000 };

/** True when any proxy variable is set; without one a plain Agent is used. */
export function proxyConfigured(env: NodeJS.ProcessEnv): boolean {
  return !!(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
}

/**
 * Reads PEM CA files. An unreadable file, one that is not a regular file (a FIFO, a device), or one
 * with no certificate in it, is SettingsError (docs/pull.md §1.3); one over `caCertFileBytes` is
 * LIMIT_EXCEEDED.
 */
export function loadCaFiles(files: string[]): string[] {
  return files.map((f) => {
    let text: string;
    try {
      text = readSmallFileSync(f, {
        maxBytes: FIXED_LIMITS.caCertFileBytes,
        limitName: 'caCertFileBytes',
      }).data.toString('utf8');
    } catch (e) {
      if (!(e instanceof IoError)) throw e;
      throw new SettingsError(
        f,
        `CA certificate file ${f} cannot be read: ${e.errno === 'EINVAL' ? e.message : e.errno}`,
      );
    }
    if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(text)) {
      throw new SettingsError(f, `CA certificate file ${f} holds no PEM certificate`);
    }
    return text;
  });
}

/** One dispatcher per (trust set, verify) pair; closed together. */
export class DispatcherPool {
  private readonly map = new Map<string, Dispatcher>();
  constructor(
    private readonly timeouts: Timeouts,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** `caFiles` extend the system roots; `verify=false` only for hosts marked insecure. */
  get(caFiles: string[], verify: boolean): Dispatcher {
    const key = `${verify ? 'v' : 'nv'}|${caFiles.join('\0')}`;
    let d = this.map.get(key);
    if (d) return d;
    const tls = caFiles.length
      ? { ca: [...rootCertificates, ...loadCaFiles(caFiles)], rejectUnauthorized: verify }
      : { rejectUnauthorized: verify };
    const common = {
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.idleMs,
      connect: { timeout: this.timeouts.connectMs, ...tls },
      // Redirects are followed by hand (docs/pull.md §3); undici@7 Agents do not follow any by default.
    };
    if (proxyConfigured(this.env)) {
      const EnvHttpProxyAgent = envHttpProxyAgent();
      d = new EnvHttpProxyAgent({
        ...common,
        requestTls: tls,
        ...optional('httpProxy', this.env.HTTP_PROXY ?? this.env.http_proxy),
        ...optional(
          'httpsProxy',
          this.env.HTTPS_PROXY ?? this.env.https_proxy ?? this.env.HTTP_PROXY ?? this.env.http_proxy,
        ),
        noProxy: this.env.NO_PROXY ?? this.env.no_proxy ?? '',
      });
    } else {
      d = new Agent(common);
    }
    this.map.set(key, d);
    return d;
  }

  /**
   * Destroys one dispatcher and forgets it (the next `get` builds a fresh one). Used when a
   * request is stuck before its headers in a way undici does not end by itself.
   */
  evict(d: Dispatcher): void {
    for (const [k, v] of this.map) if (v === d) this.map.delete(k);
    d.destroy(new Error('dispatcher evicted after a stuck request')).catch(() => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.map.values()];
    this.map.clear();
    await Promise.allSettled(all.map((d) => d.close()));
  }
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
]);

/** The error code of a network error (walking `cause`), or ''. */
export function errorCode(e: unknown): string {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const c = (cur as { code?: unknown }).code;
    if (typeof c === 'string' && c) return c;
    cur = (cur as { cause?: unknown }).cause;
  }
  return '';
}

/** Network errors worth a retry (docs/pull.md §4): resets, timeouts, EAI_AGAIN, TLS handshake resets. */
export function isRetryableNetworkError(e: unknown): boolean {
  const code = errorCode(e);
  if (RETRYABLE_CODES.has(code)) return true;
  const msg = String((e as Error)?.message ?? '');
  return /socket hang up|other side closed|Client network socket disconnected before secure TLS connection/i.test(msg);
}

/** TLS-level failures (handshake, certificate): the loopback http fallback of docs/pull.md §1.3 keys on these. */
export function isTlsError(e: unknown): boolean {
  const code = errorCode(e);
  return (
    /^ERR_SSL_|^ERR_TLS_|^EPROTO$|CERT|^DEPTH_ZERO_SELF_SIGNED_CERT$|^UNABLE_TO_VERIFY|^SELF_SIGNED/.test(code) ||
    /wrong version number|ssl3_get_record|packet length too long|before secure TLS connection/i.test(
      String((e as Error)?.message ?? ''),
    )
  );
}

/** A short, secret-free description of a network error for messages and `cause`. */
export function describeNetworkError(e: unknown): string {
  const code = errorCode(e);
  const msg = String((e as Error)?.message ?? e)
    .split('\n')[0]!
    .slice(0, 200);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/** `{ [key]: value }`, or `{}` when value is undefined (an absent option, not an undefined one). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * Digests (`alg:hex`). Every digest is validated before it reaches a path (docs/storage.md §2):
 * sha256/sha384/sha512, lowercase hex of exactly the right length. Path form is `<alg>_<hex>`.
 */
import { createHash, type Hash } from 'node:crypto';
import { CacheCorruptError } from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha384' | 'sha512';

const DIGEST_RE = /^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/;

/** True iff `s` is exactly a valid digest (`alg:hex`, lowercase, right length). */
export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

export function digestAlgorithm(d: string): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm;
}

export function digestHex(d: string): string {
  return d.slice(d.indexOf(':') + 1);
}

/** The 12 hex characters shown for a digest, docker's short ID (docs/cli.md §2). */
export function shortDigest(d: string): string {
  return digestHex(d).slice(0, 12);
}

/**
 * `sha256:abc…` → `sha256_abc…`. Paths are never built from an invalid digest: every input is
 * validated where it enters, so an invalid one here came from a damaged index row (a digest the
 * index holds) and is CACHE_CORRUPT, which callers such as prune record per item.
 */
export function digestPathForm(d: string): string {
  if (!isDigest(d)) throw invalidStoredDigest(d);
  return d.replace(':', '_');
}

/** CACHE_CORRUPT for a digest that reached a path or lock builder unvalidated (see digestPathForm). */
export function invalidStoredDigest(d: unknown): CacheCorruptError {
  return new CacheCorruptError(`index row ${JSON.stringify(d)}`, 'not a valid digest (the index is damaged)');
}

/** `sha256_abc….erofs` → `sha256:abc…` or null when the name is not of that form. */
export function digestFromPathForm(name: string, ext: string): string | null {
  if (!name.endsWith(ext)) return null;
  const base = name.slice(0, -ext.length);
  const i = base.indexOf('_');
  if (i < 0) return null;
  const d = base.slice(0, i) + ':' + base.slice(i + 1);
  return isDigest(d) ? d : null;
}

export function newHash(alg: DigestAlgorithm = 'sha256'): Hash {
  return createHash(alg);
}

export function digestOf(data: Buffer | string, alg: DigestAlgorithm = 'sha256'): string {
  return `${alg}:${createHash(alg).update(data).digest('hex')}`;
}

/** First 16 bytes of the binary digest value (hex chars 0–31 decoded): EROFS uuid (docs/erofs.md §3). */
export function digestUuid(d: string): Buffer {
  return Buffer.from(digestHex(d).slice(0, 32), 'hex');
}

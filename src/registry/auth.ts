/**
 * Authentication (docs/pull.md §2): which credential an endpoint gets (looked up once per client,
 * src/registry/mirrors.ts and credentials.ts decide from where), and the Authorization header a
 * challenge asks for — Basic with the credential itself, Bearer with a token from the realm,
 * cached per host, service, scopes and credential until shortly before it expires. Every secret
 * learnt here is registered with the scrubber before it can reach a message.
 */
import { createHash } from 'node:crypto';
import { RegistryAuthError } from '../errors.js';
import type { Challenge } from './challenge.js';
import type { CredentialContext } from './credentials.js';
import { credentialKey, endpointCredential } from './mirrors.js';
import type { PingResult } from './ping.js';
import type { SecretScrubber } from './scrub.js';
import { basicAuthorization, type Token, type TokenRequest } from './token.js';
import type { Credential, Endpoint, RegistryAuth } from './types.js';

/** A cached token is renewed this long before it expires. */
export const TOKEN_EARLY_MS = 10_000;

/** The scopes to ask for (pure): pull on `repo` first, then the challenge's own, without repeats. */
export function bearerScopes(repo: string | null, challenge: Challenge): string[] {
  const scopes: string[] = [];
  if (repo) scopes.push(`repository:${repo}:pull`);
  for (const s of (challenge.params.scope ?? '').split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
  return scopes;
}

/**
 * Whether an answer means "authenticate again" (pure): a 401, or a 403/400 that says the token
 * is invalid (in the body or in a WWW-Authenticate `error="invalid_token"`).
 */
export function needsReauth(status: number, bodyText: string, challenges: Challenge[]): boolean {
  if (status === 401) return true;
  if (status !== 403 && status !== 400) return false;
  return /invalid_token/.test(bodyText) || challenges.some((c) => c.params.error === 'invalid_token');
}

/** A short stable fingerprint of a credential: tokens fetched with different credentials are kept apart. */
function fingerprint(c: Credential): string {
  return createHash('sha256').update(JSON.stringify(c)).digest('hex').slice(0, 16);
}

export interface AuthenticatorOptions {
  /** Where credentials are looked up (home, settings, env). */
  context: Omit<CredentialContext, 'signal'>;
  /** Explicit credentials for the origin (never sent to mirrors). */
  explicit?: RegistryAuth | undefined;
  /** The token cache (shared per backend). */
  tokens: Map<string, { token: string; expiresAt: number }>;
  scrubber: SecretScrubber;
  fetchToken: (req: TokenRequest, signal: AbortSignal | undefined) => Promise<Token>;
}

export class Authenticator {
  private readonly creds = new Map<string, Promise<Credential>>();
  constructor(private readonly o: AuthenticatorOptions) {}

  /** The credential for an endpoint, looked up once per client (a failed lookup is forgotten). */
  credentialFor(ep: Endpoint, signal: AbortSignal | undefined): Promise<Credential> {
    const cacheKey = credentialKey(ep);
    let p = this.creds.get(cacheKey);
    if (!p) {
      p = endpointCredential(ep, { ...this.o.context, signal }, this.o.explicit).then((c) => {
        const s = this.o.scrubber;
        if (c.kind === 'basic') s.add(c.password, `${c.username}:${c.password}`);
        if (c.kind === 'token') s.add(c.token);
        if (c.kind === 'identity') s.add(c.identityToken);
        return c;
      });
      this.creds.set(cacheKey, p);
      p.catch(() => this.creds.delete(cacheKey));
    }
    return p;
  }

  /**
   * The Authorization header for a request to `ep` about `repo`, or null (anonymous / no auth).
   * `challenge` is the one in force (the ping's, or a later 401's).
   */
  async authorization(
    ep: Endpoint,
    ping: PingResult,
    challenge: Challenge | null,
    repo: string | null,
    signal: AbortSignal | undefined,
  ): Promise<string | null> {
    const cred = await this.credentialFor(ep, signal);
    if (cred.kind === 'token') return `Bearer ${cred.token}`;
    if (!challenge) return null;
    if (challenge.scheme === 'basic') {
      if (cred.kind !== 'basic') {
        const none = cred.kind === 'anonymous' ? '; none are configured' : '';
        const msg = `${ep.source} requires a username and password (Basic authentication)${none}`;
        throw new RegistryAuthError(ep.key, 401, msg);
      }
      return basicAuthorization(cred.username, cred.password);
    }
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryAuthError(ep.key, 401, `${ep.source} sent a Bearer challenge without a realm`);
    const service = challenge.params.service ?? '';
    const scopes = bearerScopes(repo, challenge);
    const key = `${ep.host}|${service}|${scopes.join(' ')}|${fingerprint(cred)}`;
    const cached = this.o.tokens.get(key);
    if (cached && cached.expiresAt - TOKEN_EARLY_MS > Date.now()) return `Bearer ${cached.token}`;
    const tok = await this.o.fetchToken({ ep, ping, realm, service, scopes, cred }, signal);
    this.o.scrubber.add(tok.token, tok.refreshToken);
    this.o.tokens.set(key, { token: tok.token, expiresAt: tok.expiresAt });
    return `Bearer ${tok.token}`;
  }

  /** Forgets every token of the endpoint's host (after a 401 or an invalid_token). */
  dropTokens(ep: Endpoint): void {
    for (const k of [...this.o.tokens.keys()]) if (k.startsWith(`${ep.host}|`)) this.o.tokens.delete(k);
  }
}

/**
 * Bearer token requests (docs/pull.md §2.2, §2.3): a registry's challenge names a realm that
 * trades credentials for a short-lived token. The realm is checked before anything is sent to it
 * (src/registry/realm.ts); it gets Basic credentials with a GET, or an OAuth2 refresh token with
 * a POST, for this one request and never through a redirect. The answer is parsed here; caching
 * the token is the authenticator's business (src/registry/auth.ts).
 */
import { RegistryAuthError, redactUrl } from '../errors.js';
import { readSmallOrEmpty, type Resp } from './body.js';
import type { PingResult } from './ping.js';
import { validateRealm, type Resolver } from './realm.js';
import type { Retrier } from './retry.js';
import type { Transport } from './transport.js';
import type { Credential, Endpoint } from './types.js';

const TOKEN_BODY_MAX = 1024 * 1024;
/** Lifetime assumed when the response gives none (the distribution spec's default). */
const DEFAULT_EXPIRES_IN_S = 60;
const CLIENT_ID = 'msb-image';

export interface Token {
  token: string;
  /** ms since the epoch. */
  expiresAt: number;
  /** An OAuth2 refresh token in the answer (registered as a secret, not used). */
  refreshToken?: string;
}

export interface TokenRequest {
  ep: Endpoint;
  ping: PingResult;
  realm: string;
  service: string;
  scopes: string[];
  cred: Credential;
}

export interface TokenDeps {
  transport: Transport;
  retrier: Retrier;
  /** DNS resolver for the realm check (tests). */
  resolve?: Resolver | undefined;
}

/** `Basic <base64(user:password)>`. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** Asks the challenge's realm for a token; RegistryAuthError when it refuses or answers nonsense. */
export async function fetchToken(deps: TokenDeps, req: TokenRequest, signal: AbortSignal | undefined): Promise<Token> {
  const { ep } = req;
  const u = await validateRealm(req.realm, {
    registry: ep.key,
    registryScheme: req.ping.scheme,
    registryHostname: ep.hostname,
    registryInsecure: ep.insecure,
    ...(deps.resolve ? { resolve: deps.resolve } : {}),
  });
  const shown = redactUrl(u.toString());
  const res = await sendTokenRequest(deps, req, u, shown, signal);
  const body = await readSmallOrEmpty(res, TOKEN_BODY_MAX);
  return parseTokenResponse(res.statusCode, body, { registry: ep.key, realm: shown });
}

/** The GET (Basic or anonymous) or POST (refresh token) to the realm, with retries. */
function sendTokenRequest(
  deps: TokenDeps,
  req: TokenRequest,
  u: URL,
  shown: string,
  signal: AbortSignal | undefined,
): Promise<Resp> {
  const { ep, cred, scopes, service } = req;
  // The realm is verified like any https host, even for an insecure registry.
  const dispatcher = deps.transport.dispatcher(ep.caFiles, true);
  if (cred.kind === 'identity') {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      service,
      client_id: CLIENT_ID,
      refresh_token: cred.identityToken,
    });
    if (scopes.length) form.set('scope', scopes.join(' '));
    const headers = { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': CLIENT_ID };
    return deps.retrier.run(ep.key, `POST ${shown}`, null, signal, () =>
      deps.transport.request(u, { method: 'POST', dispatcher, headers, body: form.toString() }, signal),
    );
  }
  const q = new URL(u);
  if (service) q.searchParams.set('service', service);
  for (const s of scopes) q.searchParams.append('scope', s);
  const headers: Record<string, string> = { 'user-agent': CLIENT_ID };
  if (cred.kind === 'basic') headers.authorization = basicAuthorization(cred.username, cred.password);
  return deps.retrier.run(ep.key, `GET ${shown}`, null, signal, () =>
    deps.transport.request(q, { method: 'GET', headers, dispatcher }, signal),
  );
}

/**
 * A token response (pure): 401/403 is refused credentials, any other non-200 a failure; the body
 * must be JSON with `token` or `access_token`. `expires_in` (default 60 s) counts from
 * `issued_at` when that parses, else from `now`.
 */
export function parseTokenResponse(
  status: number,
  body: Buffer,
  at: { registry: string; realm: string },
  now = Date.now(),
): Token {
  if (status === 401 || status === 403) {
    throw new RegistryAuthError(
      at.registry,
      status,
      `token request to ${at.realm} was refused (HTTP ${status}): check the credentials for ${at.registry}`,
    );
  }
  if (status !== 200)
    throw new RegistryAuthError(at.registry, status, `token request to ${at.realm} failed with HTTP ${status}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryAuthError(at.registry, 200, `token response from ${at.realm} is not JSON`);
  }
  // `null` or a bare number is JSON too: read fields from objects only.
  const v = (parsed && typeof parsed === 'object' ? parsed : {}) as {
    token?: unknown;
    access_token?: unknown;
    expires_in?: unknown;
    issued_at?: unknown;
    refresh_token?: unknown;
  };
  const token = nonEmpty(v.token) ?? nonEmpty(v.access_token);
  if (!token) throw new RegistryAuthError(at.registry, 200, `token response from ${at.realm} has no token`);
  const expiresIn = typeof v.expires_in === 'number' && v.expires_in > 0 ? v.expires_in : DEFAULT_EXPIRES_IN_S;
  const issued = typeof v.issued_at === 'string' ? Date.parse(v.issued_at) : Number.NaN;
  const start = Number.isNaN(issued) ? now : issued;
  return {
    token,
    expiresAt: start + expiresIn * 1000,
    ...(typeof v.refresh_token === 'string' ? { refreshToken: v.refresh_token } : {}),
  };
}

function nonEmpty(v: unknown): string | null {
  return typeof v === 'string' && v ? v : null;
}

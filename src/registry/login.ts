/**
 * Checking credentials without pulling (msb registry login, docs/cli.md §7 step 3): a login must
 * fail when the registry would refuse the credentials, so they are tried the way a pull would —
 * a 2xx on `/v2/` with Basic, or a token fetched with them for a Bearer challenge. An open
 * registry accepts anything.
 */
import { RegistryAuthError } from '../errors.js';
import { discard } from './body.js';
import { pickChallenge } from './challenge.js';
import type { Session } from './session.js';

export async function checkLogin(s: Session, domain: string, signal?: AbortSignal): Promise<void> {
  const eps = s.endpoints(domain);
  const ep = eps[eps.length - 1]!; // the origin: mirrors have credentials of their own
  const sig = s.signalFor(signal);
  const ping = await s.pinger.ping(ep, sig);
  const ch = pickChallenge(ping.challenges);
  if (!ch) return;
  const authz = await s.auth.authorization(ep, ping, ch, null, sig);
  if (ch.scheme !== 'basic') return; // the token was fetched with the credentials: they work
  const url = `${ping.base}/v2/`;
  const res = await s.retrier.run(ep.key, `GET ${url}`, null, sig, () =>
    s.transport.follow(ep, ping.base, 'GET', url, {}, authz, sig).then((r) => r.res),
  );
  await discard(res);
  if (res.statusCode < 200 || res.statusCode >= 300)
    throw new RegistryAuthError(ep.key, res.statusCode, `login to ${domain} failed (HTTP ${res.statusCode})`);
}

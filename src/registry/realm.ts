/**
 * Token realm validation (docs/pull.md §2.2): a registry's challenge must not be able to point our
 * credentials (or even an anonymous request) at cloud metadata services or internal hosts.
 *
 * - the realm must be `https`, unless the registry itself is spoken to over plain HTTP;
 * - a realm resolving to a link-local address is refused unless the registry is link-local;
 * - a realm resolving to a loopback or private address is refused when the registry host is a
 *   public address and is not configured as insecure.
 * Every address a name resolves to is checked, so a name that also resolves to 169.254.x.x is
 * refused. A refused realm is RegistryAuthError and no request is sent to it.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { RegistryAuthError, redactUrl } from '../errors.js';

export type AddressClass = 'link-local' | 'loopback' | 'private' | 'public';

/** Classifies one literal IP address (v4, v6, v4-mapped v6). */
export function classifyIp(ip: string): AddressClass {
  let a = ip.toLowerCase().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) a = mapped[1]!;
  if (isIP(a) === 4) {
    const [o1, o2] = a.split('.').map(Number) as [number, number];
    if (o1 === 169 && o2 === 254) return 'link-local';
    if (o1 === 127) return 'loopback';
    if (
      o1 === 10 ||
      (o1 === 172 && o2 >= 16 && o2 <= 31) ||
      (o1 === 192 && o2 === 168) ||
      (o1 === 100 && o2 >= 64 && o2 <= 127) ||
      o1 === 0
    )
      return 'private';
    return 'public';
  }
  if (isIP(a) === 6) {
    if (a === '::1') return 'loopback';
    if (a === '::') return 'private';
    const first = parseInt(a.split(':')[0] || '0', 16);
    if ((first & 0xffc0) === 0xfe80) return 'link-local';
    if ((first & 0xfe00) === 0xfc00) return 'private';
    return 'public';
  }
  return 'public';
}

export type Resolver = (hostname: string) => Promise<string[]>;

export const defaultResolver: Resolver = async (hostname) => {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (isIP(h)) return [h];
  if (h.toLowerCase() === 'localhost' || h.toLowerCase().endsWith('.localhost')) return ['127.0.0.1'];
  const r = await lookup(h, { all: true, verbatim: true });
  return r.map((x) => x.address);
};

async function classes(hostname: string, resolve: Resolver): Promise<Set<AddressClass>> {
  try {
    return new Set((await resolve(hostname)).map(classifyIp));
  } catch {
    // Unresolvable: nothing to classify; the request itself will fail with a network error.
    return new Set();
  }
}

export interface RealmContext {
  /** The registry's registry name for errors (`host[:port]`). */
  registry: string;
  /** Scheme the registry is spoken to over. */
  registryScheme: 'http' | 'https';
  /** Registry hostname (no port, brackets allowed). */
  registryHostname: string;
  registryInsecure: boolean;
  resolve?: Resolver;
}

/** Throws RegistryAuthError when `realm` may not be contacted; returns the parsed URL otherwise. */
export async function validateRealm(realm: string, ctx: RealmContext): Promise<URL> {
  const resolve = ctx.resolve ?? defaultResolver;
  let u: URL;
  try {
    u = new URL(realm);
  } catch {
    throw new RegistryAuthError(
      ctx.registry,
      401,
      `token realm ${JSON.stringify(redactUrl(realm))} is not a valid URL`,
    );
  }
  const shown = redactUrl(u.toString());
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && ctx.registryScheme === 'http')) {
    throw new RegistryAuthError(
      ctx.registry,
      401,
      `token realm ${shown} refused: it must be https for a registry spoken to over ${ctx.registryScheme}`,
    );
  }
  if (u.username || u.password)
    throw new RegistryAuthError(ctx.registry, 401, `token realm ${shown} refused: it carries userinfo`);
  const realmClasses = await classes(u.hostname, resolve);
  if (realmClasses.has('link-local')) {
    const reg = await classes(ctx.registryHostname, resolve);
    if (!reg.has('link-local'))
      throw new RegistryAuthError(
        ctx.registry,
        401,
        `token realm ${shown} refused: it resolves to a link-local address`,
      );
  }
  if ((realmClasses.has('loopback') || realmClasses.has('private')) && !ctx.registryInsecure) {
    const reg = await classes(ctx.registryHostname, resolve);
    const registryPublic = reg.size > 0 && [...reg].every((c) => c === 'public');
    if (registryPublic)
      throw new RegistryAuthError(
        ctx.registry,
        401,
        `token realm ${shown} refused: a public registry may not send credentials to a loopback or private address`,
      );
  }
  return u;
}

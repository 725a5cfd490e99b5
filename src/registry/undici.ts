/**
 * The undici entry points the registry client uses, required from undici's own modules instead
 * of its index: `import 'undici'` evaluates every feature (fetch, WebSocket, caches, mocks…) and
 * took ~125 ms of each cold pull; these modules take ~45 ms. They are the very objects the index
 * re-exports (undici@7 has no "exports" map, so the paths are reachable), and `request` does what
 * the index's `request` does when a dispatcher is given: split the URL, then `api-request` with
 * the dispatcher as `this`.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

export const Agent: typeof Undici.Agent = require('undici/lib/dispatcher/agent.js');

/**
 * Only a configured proxy needs it: required on first use, through the full index, whose
 * `Object.assign(Dispatcher.prototype, api)` gives the proxy's inner client the `connect` it
 * tunnels with.
 */
export function envHttpProxyAgent(): typeof Undici.EnvHttpProxyAgent {
  return (require('undici') as typeof Undici).EnvHttpProxyAgent;
}

const apiRequest = require('undici/lib/api/api-request.js') as (
  this: Undici.Dispatcher,
  opts: object,
) => Promise<Undici.Dispatcher.ResponseData>;

const { parseURL } = require('undici/lib/core/util.js') as { parseURL(u: URL): URL };

/** undici's `request(url, opts)` for an explicit `opts.dispatcher` (no global dispatcher). */
export function request(
  url: URL,
  opts: {
    dispatcher: Undici.Dispatcher;
    method: string;
    headers?: Record<string, string>;
    body?: string;
    signal?: AbortSignal | undefined;
  },
): Promise<Undici.Dispatcher.ResponseData> {
  const u = parseURL(url);
  return apiRequest.call(opts.dispatcher, {
    ...opts,
    origin: u.origin,
    path: u.search ? `${u.pathname}${u.search}` : u.pathname,
    method: opts.method || (opts.body ? 'PUT' : 'GET'),
  });
}

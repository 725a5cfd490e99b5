/**
 * F, the fault server of docs/acceptance.md: a small real HTTP(S) server that proxies a real registry
 * (R0 by default) and lets a test inject the faults a real registry cannot produce. Every request
 * is logged with its headers. Handlers run in order; the first that returns true has answered;
 * otherwise the request is proxied unchanged.
 */
import {
  createServer as createHttp,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface LoggedRequest {
  method: string;
  url: string;
  path: string;
  headers: IncomingHttpHeaders;
}
export type FaultHandler = (req: IncomingMessage, res: ServerResponse, f: FaultServer) => boolean | Promise<boolean>;

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ProxyOptions {
  /** Drop the client's Range header (a server that ignores Range). */
  ignoreRange?: boolean;
  /** Rewrite the upstream body (headers are fixed up: Content-Length). */
  mutate?: (body: Buffer) => Buffer;
  /** Send this many body bytes, then reset the connection. */
  resetAfter?: number;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

export class FaultServer {
  readonly log: LoggedRequest[] = [];
  handlers: FaultHandler[] = [];
  private sockets = new Set<Socket>();
  private constructor(
    readonly server: Server,
    readonly upstream: string,
    readonly scheme: 'http' | 'https',
  ) {}

  /** Starts F on `host` (default 127.0.0.1) at a free port. `tls` makes it HTTPS. */
  static async start(
    opts: { upstream?: string; host?: string; tls?: { key: string | Buffer; cert: string | Buffer } } = {},
  ): Promise<FaultServer> {
    const upstream = opts.upstream ?? 'http://127.0.0.1:5000';
    let f!: FaultServer;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      void f.handle(req, res);
    };
    const server = opts.tls
      ? createHttps({ key: opts.tls.key, cert: opts.tls.cert }, onRequest)
      : createHttp(onRequest);
    f = new FaultServer(server, upstream, opts.tls ? 'https' : 'http');
    server.on('connection', (s: Socket) => {
      f.sockets.add(s);
      s.on('close', () => f.sockets.delete(s));
    });
    server.on('secureConnection', (s: Socket) => {
      f.sockets.add(s);
      s.on('close', () => f.sockets.delete(s));
    });
    await new Promise<void>((ok) => server.listen(0, opts.host ?? '127.0.0.1', ok));
    return f;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  get hostname(): string {
    return (this.server.address() as AddressInfo).address;
  }
  /** `host:port`, usable as a registry domain. */
  get host(): string {
    return `${this.hostname}:${this.port}`;
  }
  get url(): string {
    return `${this.scheme}://${this.host}`;
  }

  /** Logged requests whose path matches. */
  requests(re: RegExp, method?: string): LoggedRequest[] {
    return this.log.filter((r) => re.test(r.path) && (!method || r.method === method));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    this.log.push({ method: req.method ?? 'GET', url: req.url ?? '/', path, headers: { ...req.headers } });
    try {
      for (const h of this.handlers) if (await h(req, res, this)) return;
      await this.proxy(req, res);
    } catch (e) {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end(String(e));
      } else res.destroy();
    }
  }

  /** Fetches `path` from the upstream (whole body), forwarding selected headers. */
  fetchUpstream(method: string, path: string, headers: IncomingHttpHeaders = {}): Promise<UpstreamResponse> {
    const h: Record<string, string> = {};
    for (const k of ['accept', 'range', 'authorization'])
      if (typeof headers[k] === 'string') h[k] = headers[k] as string;
    return new Promise((ok, fail) => {
      const r = httpRequest(`${this.upstream}${path}`, { method, headers: h }, (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => ok({ status: up.statusCode ?? 502, headers: up.headers, body: Buffer.concat(chunks) }));
        up.on('error', fail);
      });
      r.on('error', fail);
      r.end();
    });
  }

  /** Proxies the request to the upstream, optionally with a fault. */
  async proxy(req: IncomingMessage, res: ServerResponse, opts: ProxyOptions = {}): Promise<void> {
    const headers = { ...req.headers };
    if (opts.ignoreRange) delete headers.range;
    const up = await this.fetchUpstream(req.method ?? 'GET', req.url ?? '/', headers);
    let body = up.body;
    if (opts.mutate) body = opts.mutate(body);
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(up.headers)) {
      if (v === undefined || ['content-length', 'connection', 'transfer-encoding', 'keep-alive'].includes(k)) continue;
      out[k] = v;
    }
    Object.assign(out, opts.headers ?? {});
    out['content-length'] = String(req.method === 'HEAD' ? (up.headers['content-length'] ?? body.length) : body.length);
    res.writeHead(up.status, out);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (opts.resetAfter !== undefined && opts.resetAfter < body.length) {
      res.write(body.subarray(0, opts.resetAfter), () => setTimeout(() => res.socket?.resetAndDestroy(), 20));
      return;
    }
    res.end(body);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

/** Sends a JSON body. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const b = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(b.length), ...headers });
  res.end(b);
}

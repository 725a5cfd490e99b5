/**
 * Shapes shared by the registry client modules. `RegistrySettings` is the subset of the parsed
 * `Settings` (docs/api.md §7, docs/cli.md §8; camelCase) that registry traffic reads. It is declared
 * structurally here so that the full `Settings` object of src/api/settings.ts can be passed as is.
 */
export interface ConfigAuth {
  username: string;
  secret?: string;
  passwordEnv?: string;
}

/** A mirror: a `scheme://host[:port]` URL, or an object with its own TLS, credentials and capabilities (src/registry/mirrors.ts). */
export type MirrorConfig =
  | string
  | {
      url: string;
      insecure?: boolean;
      caCerts?: string[];
      auth?: ConfigAuth | null;
      capabilities?: ('pull' | 'resolve')[];
    };

export interface RegistryHostSettings {
  insecure?: boolean;
  auth?: ConfigAuth | null;
  /** Tried in order before the origin (src/registry/mirrors.ts). */
  mirrors?: MirrorConfig[];
  caCerts?: string[];
}

export interface RegistrySettings {
  registries?: {
    caCerts?: string[];
    credHelperTimeoutMs?: number;
    hosts?: Record<string, RegistryHostSettings>;
  };
  pull?: {
    retries?: number;
    timeouts?: { connectMs?: number; headersMs?: number; idleMs?: number };
  };
}

/** docs/api.md §2.6 `RegistryAuth`: overrides every other credential source for the origin. */
export type RegistryAuth = { username: string; password: string } | { anonymous: true } | { registryToken: string };

/** A resolved credential. `identity` is an OAuth2 refresh token (docs/pull.md §2.1, §2.3). */
export type Credential =
  | { kind: 'anonymous' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'token'; token: string }
  | { kind: 'identity'; username: string; identityToken: string };

export type CredentialSource = 'explicit' | 'config' | 'docker-helper' | 'docker-auths' | 'anonymous';

/** The `retry` progress event of docs/api.md §2.6 (without `type`/`elapsedMs`, which the pipeline adds). */
export interface RetryInfo {
  layerIndex: number | null;
  attempt: number;
  delayMs: number;
  reason: string;
}
/** The `warning` progress event (e.g. MIRROR_FALLBACK). */
export interface WarningInfo {
  code: string;
  message: string;
}

/** What an endpoint may be asked for (containerd hosts.toml `capabilities`). */
export type Capability = 'pull' | 'resolve';

/** One place a repository can be fetched from: a mirror or the origin. */
export interface Endpoint {
  /** Settings/credential key: `host[:port]` (`docker.io` for Docker Hub's origin). */
  key: string;
  /** `host[:port]` put in URLs (`registry-1.docker.io` for Docker Hub). */
  host: string;
  /** Hostname without port and brackets (for realm checks and loopback detection). */
  hostname: string;
  isMirror: boolean;
  /** PullResult.source: the domain for the origin, the mirror URL without userinfo for a mirror. */
  source: string;
  /** Schemes to try in order. */
  schemes: ('https' | 'http')[];
  /** TLS without verification and https→http redirects allowed. */
  insecure: boolean;
  caFiles: string[];
  /** `pull` (manifests by digest, blobs) and/or `resolve` (tags). The origin has both. */
  capabilities: Capability[];
  /** A mirror's own credentials (its `auth` object, or the userinfo of its URL); else looked up by `key`. */
  auth?: { config: ConfigAuth; key: string } | { username: string; password: string };
  /** Distinguishes mirrors on one host with different credentials (credential cache key). */
  id: string;
}

/** Anything with a registry domain and a repository (a ParsedReference fits). */
export interface RepoRef {
  domain: string;
  repository: string;
}

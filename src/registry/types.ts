/**
 * Shapes shared by the registry client modules. `RegistrySettings` is the subset of the parsed
 * `Settings` (docs/api.md §7, docs/cli.md §8; camelCase) that registry traffic reads. It is declared
 * structurally here so that the full `Settings` object of src/api/settings.ts can be passed as is.
 */
export interface RegistryHostSettings {
  insecure?: boolean;
  auth?: { username: string; secret?: string; passwordEnv?: string } | null;
  /** `scheme://host[:port]` base URLs, tried in order before the origin (docs/pull.md §12). */
  mirrors?: string[];
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
export interface RetryInfo { layerIndex: number | null; attempt: number; delayMs: number; reason: string }
/** The `warning` progress event (e.g. MIRROR_FALLBACK). */
export interface WarningInfo { code: string; message: string }

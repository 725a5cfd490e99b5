/**
 * What the pull orchestrator needs from its collaborators: the layer converter (behind
 * `ConverterDeps`), a registry client factory, and the EROFS reader. `defaultPullDeps()`
 * (deps-default.ts) wires the real modules; tests may wrap them to inject crashes at named points.
 */
import type { DirNode } from '../erofs/tree.js';
import type { RegistryCache, RegistryClient, RegistryClientOptions } from '../registry/client.js';
import type { ConverterDeps } from './blob-pipeline.js';

export interface PullDeps {
  converter: ConverterDeps;
  /** Created lazily: a pull that is a cache hit never builds one (no network). */
  createClient(opts: RegistryClientOptions): RegistryClient;
  /** The ping/token cache kept per backend (docs/pull.md §2.2). */
  createRegistryCache(): RegistryCache;
  /** Reads a cached layer EROFS back into the shared tree shape (docs/erofs.md §5), for stitching. */
  readTree(path: string): Promise<DirNode>;
  /** Crash-injection hook for tests: awaited at named points of the pipeline. */
  hook?: (point: PullHookPoint) => void | Promise<void>;
}

export type PullHookPoint =
  | 'resolved'
  | 'layer-downloading'
  | 'layer-converted'
  | 'layer-renamed'
  | 'layers-done'
  | 'fsmeta-written'
  | 'vmdk-written'
  | 'before-commit'
  | 'committed';

/** Options and results of archive load and save, re-exported by the API. */
import type { Platform } from '../oci/platform.js';
import type { PullEvent } from '../pull/events.js';

/**
 * Options of `Image.load`: `tag` names an image the archive leaves unnamed (one image only),
 * `platform` picks one from an index (docs/archives.md §6).
 */
export interface LoadOptions {
  tag?: string | string[];
  platform?: string | Platform;
  onProgress?: (e: PullEvent) => void;
  signal?: AbortSignal | undefined;
}
/**
 * Options of `Image.save`: `format` of the archive written, `docker` (default) or `oci`
 * (docs/archives.md §8).
 */
export interface SaveOptions {
  format?: 'docker' | 'oci';
  onProgress?: (e: PullEvent) => void;
  signal?: AbortSignal | undefined;
}
/** What `Image.save` wrote: the format, the bytes and each image with its manifest and diff_ids. */
export interface SaveResult {
  format: 'docker' | 'oci';
  bytesWritten: number;
  images: { reference: string; manifestDigest: string; diffIds: string[] }[];
}

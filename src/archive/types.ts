/** Options and results of archive load and save, re-exported by the API. */
import type { Platform } from '../oci/platform.js';
import type { PullEvent } from '../pull/events.js';

export interface LoadOptions {
  tag?: string | string[];
  platform?: string | Platform;
  onProgress?: (e: PullEvent) => void;
  signal?: AbortSignal | undefined;
}
export interface SaveOptions {
  format?: 'docker' | 'oci';
  onProgress?: (e: PullEvent) => void;
  signal?: AbortSignal | undefined;
}
export interface SaveResult {
  format: 'docker' | 'oci';
  bytesWritten: number;
  images: { reference: string; manifestDigest: string; diffIds: string[] }[];
}

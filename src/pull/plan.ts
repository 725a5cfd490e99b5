/**
 * The image a pull works on (`ImagePlan`), whether it came from the registry (§8 step 4) or from
 * the index (step 3), and what is derived from it: the `resolved` event, the commit record (step
 * 7) and the `PullResult`.
 */
import { lstat } from 'node:fs/promises';
import type { Platform } from '../oci/platform.js';
import type { ParsedReference } from '../reference/reference.js';
import type { ImageHandle } from '../store/handle.js';
import type { publishImage } from '../store/publish.js';
import type { Store } from '../store/store.js';
import type { ResolvedImage } from '../registry/resolve.js';
import type { LayerOutcome, LayerPosition } from './layer.js';
import type { PullEmitter } from './events.js';
import type { PullResult } from './types.js';
import { runsInPool } from './conversion.js';

/** Everything the later steps need, whether it came from the registry or from the index. */
export interface ImagePlan {
  manifestDigest: string;
  manifestMediaType: string;
  manifestRaw: Buffer;
  configDigest: string;
  configRaw: Buffer;
  indexDigest: string | null;
  platform: Platform;
  positions: LayerPosition[];
}

/** The plan of an image the registry resolved (manifest, config and platform verified). */
export function planFromResolved(r: ResolvedImage): ImagePlan {
  return {
    manifestDigest: r.manifestDigest,
    manifestMediaType: r.manifest.mediaType,
    manifestRaw: r.manifestBytes,
    configDigest: r.configDigest,
    configRaw: r.configBytes,
    indexDigest: r.indexDigest,
    platform: r.platform,
    positions: r.manifest.layers.map((l, i) => ({
      position: i,
      diffId: r.config.diffIds[i]!,
      blob: { digest: l.digest, size: l.size, mediaType: l.mediaType },
    })),
  };
}

/** Lease items of an image: its manifest and its distinct layers. */
export function leaseItems(
  manifestDigest: string,
  diffIds: readonly string[],
): { kind: 'manifest' | 'layer'; value: string }[] {
  return [
    { kind: 'manifest', value: manifestDigest },
    ...[...new Set(diffIds)].map((d) => ({ kind: 'layer' as const, value: d })),
  ];
}

/** `resolved` (§10). */
export function emitResolved(
  emitter: PullEmitter,
  canonical: string,
  p: ImagePlan,
  o: { totalDownloadBytes: number | null; cached: boolean; source: string | null },
): void {
  emitter.emit({
    type: 'resolved',
    reference: canonical,
    manifestDigest: p.manifestDigest,
    indexDigest: p.indexDigest,
    platform: p.platform,
    layerCount: p.positions.length,
    totalDownloadBytes: o.totalDownloadBytes,
    cached: o.cached,
    source: o.source,
  });
}

/** What the commit transaction records (§8 step 7). */
export function commitRecord(canonical: string, p: ImagePlan): Parameters<typeof publishImage>[1] {
  return {
    references: [canonical],
    indexDigest: p.indexDigest,
    manifest: { digest: p.manifestDigest, mediaType: p.manifestMediaType, raw: p.manifestRaw, source: 'registry' },
    platform: { os: p.platform.os, architecture: p.platform.architecture, variant: p.platform.variant },
    config: { digest: p.configDigest, raw: p.configRaw },
    layers: p.positions.map((l) => ({
      diffId: l.diffId,
      blobDigest: l.blob.digest,
      mediaType: l.blob.mediaType,
      compressedSizeBytes: l.blob.size,
    })),
  };
}

export function pullResult(
  store: Store,
  parsed: ParsedReference,
  p: ImagePlan,
  handle: ImageHandle,
  o: { cached: boolean; source: string | null; outcomes: Map<string, LayerOutcome> | null },
): PullResult {
  const seen = new Set<string>();
  return {
    reference: parsed.familiar,
    canonicalReference: parsed.canonical,
    manifestDigest: p.manifestDigest,
    indexDigest: p.indexDigest,
    configDigest: p.configDigest,
    platform: p.platform,
    cached: o.cached,
    source: o.source,
    layers: p.positions.map((l) => {
      const out = o.outcomes?.get(l.diffId);
      const first = !seen.has(l.diffId);
      seen.add(l.diffId);
      return {
        position: l.position,
        diffId: l.diffId,
        blobDigest: l.blob.digest,
        mediaType: l.blob.mediaType,
        downloaded: first && !!out?.downloaded,
        materialized: first && !!out?.materialized,
      };
    }),
    artifacts: store.paths.artifacts(p.manifestDigest, p.positions),
    handle,
  };
}

/**
 * The sum of the descriptor sizes of the distinct layers whose file looks absent (a progress
 * figure, §10; null when a size is unknown), and how many of them convert in the worker pool.
 */
export async function downloadEstimate(
  store: Store,
  plan: ImagePlan,
  force: boolean,
): Promise<{ bytes: number | null; pooled: number }> {
  let bytes: number | null = 0;
  let pooled = 0;
  const seen = new Set<string>();
  for (const p of plan.positions) {
    if (seen.has(p.diffId)) continue;
    seen.add(p.diffId);
    let present = false;
    if (!force) {
      try {
        present = (await lstat(store.paths.layer(p.diffId))).isFile();
      } catch {
        present = false;
      }
    }
    if (present) continue;
    if (runsInPool(p.blob.mediaType)) pooled++;
    bytes = bytes !== null && Number.isSafeInteger(p.blob.size) ? bytes + p.blob.size : null;
  }
  return { bytes, pooled };
}

/**
 * The real collaborators of the pull: the registry client, the layer converter (compression
 * detection + decompressors, the streaming layer writer; whole conversions in worker threads) and
 * the EROFS reader.
 */
import type { Readable } from 'node:stream';
import { readErofsTree } from '../erofs/reader.js';
import { writeLayer } from '../erofs/layer-writer.js';
import { RegistryCache, RegistryClient } from '../registry/client.js';
import { createDecompressor, detectCompression, mapDecoderError } from '../layer/compression.js';
import type { ConverterDeps } from './blob-pipeline.js';
import type { PullDeps } from './deps.js';
import { WorkerPool } from './worker-pool.js';

export async function defaultConverterDeps(): Promise<ConverterDeps> {
  return {
    detectCompression,
    createDecompressor: (kind) => createDecompressor(kind),
    mapDecodeError: (kind, err) => mapDecoderError(kind, err),
    pool: new WorkerPool(),
    writeLayer: (tar: Readable, candidatePath, o) =>
      writeLayer(tar, candidatePath, {
        ...(o.limits ? { limits: o.limits } : {}),
        signal: o.signal,
        diffIdAlgorithm: o.diffIdAlgorithm,
        // Recorded in the index for verify (docs/storage.md §10.1).
        contentDigest: true,
        onProgress: o.onProgress,
        onWarning: (code, message) => o.onWarning({ code, message }),
      }),
  };
}

export async function defaultPullDeps(): Promise<PullDeps> {
  return {
    converter: await defaultConverterDeps(),
    createClient: (opts) => new RegistryClient(opts),
    createRegistryCache: () => new RegistryCache(),
    readTree: async (path) => (await readErofsTree(path)).root,
  };
}

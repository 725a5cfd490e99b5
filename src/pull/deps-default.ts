/**
 * The real collaborators of the pull: the registry client, the layer converter (compression
 * detection + decompressors, the streaming layer writer) and the EROFS reader.
 */
import type { Readable } from 'node:stream';
import { readErofsTree } from '../erofs/reader.js';
import { writeLayer } from '../erofs/layer-writer.js';
import { RegistryClient } from '../registry/client.js';
import type { Compression, ConverterDeps } from './blob-pipeline.js';
import type { PullDeps } from './deps.js';

/** src/layer/compression.ts (the converter's): magic-byte detection and streaming decoders. */
interface CompressionModule {
  detectCompression(head: Buffer): Compression | null;
  createDecompressor(kind: Compression, opts?: { signal?: AbortSignal }): NodeJS.ReadWriteStream;
}

let compression: Promise<CompressionModule> | null = null;
function loadCompression(): Promise<CompressionModule> {
  // Resolved at run time: the module is owned by the layer converter.
  compression ??= import('../layer/compression.js' as string) as Promise<CompressionModule>;
  return compression;
}

export async function defaultConverterDeps(): Promise<ConverterDeps> {
  const c = await loadCompression();
  return {
    detectCompression: (head) => c.detectCompression(head),
    createDecompressor: (kind, o) => c.createDecompressor(kind, o),
    writeLayer: (tar: Readable, candidatePath, o) => writeLayer(tar, candidatePath, {
      ...(o.limits ? { limits: o.limits } : {}),
      signal: o.signal,
      onProgress: o.onProgress,
      onWarning: (code, message) => o.onWarning({ code, message }),
    }),
  };
}

export async function defaultPullDeps(): Promise<PullDeps> {
  return {
    converter: await defaultConverterDeps(),
    createClient: (opts) => new RegistryClient(opts),
    readTree: async (path) => (await readErofsTree(path)).root,
  };
}

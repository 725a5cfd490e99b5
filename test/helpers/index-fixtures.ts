/**
 * Small, well-formed images published through the real `publishImage` path (real files on disk,
 * real SQLite), for index/API/CLI tests that do not need a registry. Layer "EROFS" files are
 * 4096-byte-aligned files whose diff_id is the sha256 of a seed string, so two images given the
 * same seed share a layer exactly as two pulled images would.
 */
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync, lstatSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LocalBackend } from '../../src/api/backend.js';
import { parseReference } from '../../src/reference/reference.js';
import { withLock } from '../../src/store/locks.js';
import { lockPath } from '../../src/store/paths.js';
import { publishImage, upsertLayerRow } from '../../src/store/publish.js';
import { digestOf } from '../../src/util/digest.js';

export interface FakeImageSpec {
  /** any spelling; stored canonical */
  refs: string[];
  /** layer seeds, bottom to top (same seed → same diff_id → shared file) */
  layers: string[];
  /** blocks per layer file (default 1 + seed length % 3) */
  layerBlocks?: number[];
  config?: Record<string, unknown>;
  architecture?: string;
  os?: string;
  variant?: string | null;
  /** makes the manifest unique when everything else is equal */
  salt?: string;
  now?: number;
}

export interface FakeImage {
  manifestDigest: string;
  configDigest: string;
  diffIds: string[];
  canonical: string[];
}

export function diffIdOf(seed: string): string {
  return digestOf(`layer:${seed}`);
}

function writeSized(path: string, bytes: number, fill: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const b = Buffer.alloc(bytes);
  b.write(fill.repeat(Math.ceil(bytes / Math.max(1, fill.length))).slice(0, bytes));
  writeFileSync(path, b);
}

export async function publishFakeImage(backend: LocalBackend, spec: FakeImageSpec): Promise<FakeImage> {
  const store = await backend._open('write');
  const diffIds = spec.layers.map(diffIdOf);
  for (let i = 0; i < spec.layers.length; i++) {
    const d = diffIds[i]!;
    const path = store.paths.layer(d);
    const blocks = spec.layerBlocks?.[i] ?? 1 + (spec.layers[i]!.length % 3);
    await withLock(await backend._open('write'), 'layer', d, async () => {
      let exists = false;
      try {
        lstatSync(path);
        exists = true;
      } catch {
        /* new */
      }
      if (!exists) writeSized(path, blocks * 4096, spec.layers[i]!);
      const size = lstatSync(path).size;
      await upsertLayerRow(await backend._open('write'), {
        diffId: d,
        erofsSizeBytes: size,
        inodes: 3,
        blocks: size / 4096,
      });
    });
  }
  const architecture = spec.architecture ?? 'amd64';
  const os = spec.os ?? 'linux';
  const config = Buffer.from(
    JSON.stringify({
      architecture,
      os,
      ...(spec.variant ? { variant: spec.variant } : {}),
      config: spec.config ?? { Env: ['PATH=/usr/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      ...(spec.salt ? { comment: spec.salt } : {}),
    }),
  );
  const configDigest = digestOf(config);
  const layerDescs = diffIds.map((_d, i) => ({
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: digestOf(`blob:${spec.layers[i]}`),
    size: 1000 + i,
  }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layerDescs,
    }),
  );
  const manifestDigest = digestOf(manifest);
  writeSized(store.paths.fsmeta(manifestDigest), 8192, `fsmeta:${manifestDigest}`);
  writeSized(store.paths.vmdk(manifestDigest), 300, '# Disk DescriptorFile\n');
  const canonical = spec.refs.map((r) => parseReference(r).canonical);
  await publishImage(await backend._open('write'), {
    references: canonical,
    manifest: {
      digest: manifestDigest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      raw: manifest,
      source: 'registry',
    },
    platform: { os, architecture, variant: spec.variant ?? null },
    config: { digest: configDigest, raw: config },
    layers: diffIds.map((d, i) => ({
      diffId: d,
      blobDigest: layerDescs[i]!.digest,
      mediaType: layerDescs[i]!.mediaType,
      compressedSizeBytes: layerDescs[i]!.size,
    })),
    ...(spec.now !== undefined ? { now: spec.now } : {}),
  });
  return { manifestDigest, configDigest, diffIds, canonical };
}

/** st_blocks*512 of a file (0 if missing). */
export function allocOf(path: string): number {
  try {
    return lstatSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

/**
 * Synthesizes `refs` references over `images` manifests straight into the index (one transaction),
 * with one shared layer and one own layer per image and real fsmeta/VMDK/layer files, for the
 * list/prune scale tests and the benchmark. Refs are `docker.io/library/img<i>:t<j>`.
 */
export async function synthesizeIndex(
  backend: LocalBackend,
  refs: number,
  images: number,
  opts: { files?: boolean } = {},
): Promise<{ manifests: string[] }> {
  const store = await backend._open('write');
  const index = store.index;
  const files = opts.files !== false;
  const now = Date.now();
  const shared = diffIdOf('synth-shared');
  const manifests: string[] = [];
  const layerDiffIds = [shared, ...Array.from({ length: images }, (_, i) => diffIdOf(`synth-${i}`))];
  if (files) for (const d of layerDiffIds) writeSized(store.paths.layer(d), 4096, d);
  // A pull would have created the lock files of every layer and image it published.
  const touchLock = (p: string) => {
    if (!existsSync(p)) closeSync(openSync(p, 'a', 0o644));
  };
  if (files) for (const d of layerDiffIds) touchLock(lockPath(store.cacheDir, 'layer', d));
  const configs: Buffer[] = [];
  const raws: Buffer[] = [];
  for (let i = 0; i < images; i++) {
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: [`I=${i}`] },
        rootfs: { type: 'layers', diff_ids: [shared, layerDiffIds[i + 1]] },
      }),
    );
    const raw = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: digestOf(config) }, n: i }));
    configs.push(config);
    raws.push(raw);
    const m = digestOf(raw);
    manifests.push(m);
    if (files) {
      touchLock(lockPath(store.cacheDir, 'image', m));
      writeSized(store.paths.fsmeta(m), 4096, m);
      writeSized(store.paths.vmdk(m), 200, m);
    }
  }
  await index.write(() => {
    const insL = index.stmt(
      'INSERT OR IGNORE INTO layer (diff_id, erofs_size_bytes, erofs_alloc_bytes, inodes, blocks, created_at, last_used_at) VALUES (?, 4096, 4096, 1, 1, ?, ?)',
    );
    for (const d of layerDiffIds) insL.run(d, now, now);
    const lid = index.stmt('SELECT id FROM layer WHERE diff_id = ?');
    const insC = index.stmt('INSERT OR IGNORE INTO config (digest, raw, created_at) VALUES (?, ?, ?)');
    const insM =
      index.stmt(`INSERT INTO manifest (digest, media_type, raw, config_digest, os, architecture, variant, layer_count, source,
      fsmeta_bytes, vmdk_bytes, size_bytes, created_at, materialized_at) VALUES (?, 'application/vnd.oci.image.manifest.v1+json', ?, ?, 'linux', 'amd64', NULL, 2, 'registry', 4096, 200, 16384, ?, ?)`);
    const insML =
      index.stmt(`INSERT INTO manifest_layer (manifest_id, position, layer_id, blob_digest, media_type, compressed_size_bytes)
      VALUES (?, ?, ?, ?, 'application/vnd.oci.image.layer.v1.tar+gzip', 100)`);
    const insR = index.stmt(
      'INSERT INTO image_ref (reference, manifest_id, index_digest, created_at, last_used_at) VALUES (?, ?, NULL, ?, ?)',
    );
    const ids: number[] = [];
    for (let i = 0; i < images; i++) {
      insC.run(digestOf(configs[i]!), configs[i]!, now);
      const id = Number(insM.run(manifests[i]!, raws[i]!, digestOf(configs[i]!), now, now).lastInsertRowid);
      ids.push(id);
      insML.run(id, 0, (lid.get(shared) as { id: number }).id, digestOf('blob-shared'));
      insML.run(id, 1, (lid.get(layerDiffIds[i + 1]!) as { id: number }).id, digestOf(`blob-${i}`));
    }
    for (let j = 0; j < refs; j++) {
      const i = j % images;
      insR.run(`docker.io/library/img${i}:t${j}`, ids[i]!, now - j, now - j);
    }
  });
  return { manifests };
}

/**
 * Every file under `dir` (path relative to dir → st_blocks*512), directories excluded. With
 * `reclaimable`, a file with other hard links counts 0: what deleting it would free (docs/storage.md §8).
 */
export function fileAlloc(dir: string, opts: { reclaimable?: boolean } = {}): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else out.set(p.slice(dir.length), opts.reclaimable && st.nlink !== 1 ? 0 : st.blocks * 512);
    }
  };
  walk(dir);
  return out;
}

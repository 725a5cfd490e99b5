/**
 * Fixture access shared by the stitch tests (not a test file itself: importing a test file would
 * run its tests in the importer).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OciLayer {
  blob: string;
  digest: string;
  diffId: string;
}

/** The layers of OCI_LAYOUT:TAG in manifest order, with the config's diff_ids. */
export function ociLayers(oci: string, tag: string): { manifestDigest: string; layers: OciLayer[] } {
  const blob = (d: string) => join(oci, 'blobs', d.replace(':', '/'));
  const idx = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = idx.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(m, `tag ${tag} in ${oci}`);
  const man = JSON.parse(readFileSync(blob(m.digest), 'utf8')) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const cfg = JSON.parse(readFileSync(blob(man.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  assert.equal(cfg.rootfs.diff_ids.length, man.layers.length);
  return {
    manifestDigest: m.digest,
    layers: man.layers.map((l, i) => ({ blob: blob(l.digest), digest: l.digest, diffId: cfg.rootfs.diff_ids[i]! })),
  };
}

/**
 * Zero-layer images (docs/pull.md §6: valid; fsmeta has an empty root): fsmeta alone is the disk, the
 * VMDK names only fsmeta, and the kernel mounts it (qemu-img raw) with an empty root. Through the
 * cache: Image.load commits one, a `never` pull is a cache hit on it, and a corrupt fsmeta is
 * rebuilt offline by the pull's stitch step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image } from '../../src/api/image.js';
import type { PullEvent } from '../../src/api/types.js';
import { buildFsmeta, stitchVmdkText } from '../../src/stitch/build.js';
import { validateFsmetaFile, validateVmdkFile } from '../../src/stitch/validate.js';
import { cidOf } from '../../src/stitch/vmdk.js';
import { digestUuid } from '../../src/util/digest.js';
import { tempDir } from '../helpers/env.js';
import { freshHome, indexProblems, mountVmdk } from '../helpers/pull-env.js';
import { dir, file, tar } from '../helpers/tar-writer.js';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

test('zero layers: fsmeta (empty device table) + fsmeta-only VMDK validate and mount with an empty root', async (t) => {
  const w = tempDir('msb-zero-');
  t.after(w.cleanup);
  const m = sha('zero-layer manifest');
  const fsmeta = join(w.dir, 'fsmeta.erofs');
  const built = await buildFsmeta([], fsmeta, { uuid: digestUuid(m) });
  const b = readFileSync(fsmeta);
  assert.equal(b.length, built.sizeBytes);
  assert.equal(b.readUInt32LE(1024 + 0x50), 0xc, 'fsmeta keeps CHUNKED_FILE|DEVICE_TABLE');
  assert.equal(b.readUInt16LE(1024 + 0x56), 0, 'no extra devices');
  assert.equal(await validateFsmetaFile(fsmeta, { uuid: digestUuid(m), layers: [] }), null);
  const vmdk = join(w.dir, 'rootfs.vmdk');
  writeFileSync(vmdk, stitchVmdkText(cidOf(m), { path: fsmeta, sizeBytes: built.sizeBytes }, []));
  assert.equal(await validateVmdkFile(vmdk, { paths: [fsmeta], sizes: [built.sizeBytes], cid: cidOf(m) }), null);
  const mnt = mountVmdk(vmdk, w.dir);
  t.after(mnt.umount);
  assert.deepEqual(readdirSync(mnt.dir), []);
});

test('zero layers through the cache: load commits it, a never pull hits it, a corrupt fsmeta is rebuilt offline', async (t) => {
  const w = tempDir('msb-zero-load-');
  t.after(w.cleanup);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [],
    }),
  );
  const archive = join(w.dir, 'zero.oci.tar');
  writeFileSync(
    archive,
    tar(
      dir('blobs/'),
      dir('blobs/sha256/'),
      file(`blobs/sha256/${sha(config).slice(7)}`, config),
      file(`blobs/sha256/${sha(manifest).slice(7)}`, manifest),
      file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'),
      file(
        'index.json',
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: sha(manifest),
              size: manifest.length,
              annotations: { 'org.opencontainers.image.ref.name': 'example.com/zero:1' },
            },
          ],
        }),
      ),
    ),
  );
  const A = await freshHome(t);
  const [h] = await Image.loadLocal(A.backend, archive);
  assert.equal(h!.manifestDigest, sha(manifest));
  assert.equal(h!.layerCount, 0);
  assert.deepEqual(await indexProblems(A.home), []);

  const hit = await Image.pullLocal(A.backend, 'example.com/zero:1', { policy: 'never' });
  assert.equal(hit.cached, true);
  assert.deepEqual(hit.artifacts.layers, []);
  const mnt = mountVmdk(hit.artifacts.vmdkPath, w.dir);
  t.after(mnt.umount);
  assert.deepEqual(readdirSync(mnt.dir), []);

  writeFileSync(hit.artifacts.fsmetaPath, Buffer.alloc(4096));
  const events: PullEvent[] = [];
  const again = await Image.pullLocal(A.backend, 'example.com/zero:1', {
    policy: 'never',
    onProgress: (e) => events.push(e),
  });
  assert.equal(again.cached, false);
  assert.ok(
    events.some((e) => e.type === 'warning' && e.code === 'ARTIFACT_REBUILT'),
    'the rebuild is reported',
  );
  assert.ok(events.some((e) => e.type === 'stitchComplete' && !e.reused));
  assert.deepEqual(await indexProblems(A.home), []);
});

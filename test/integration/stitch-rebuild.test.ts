/**
 * docs/erofs.md §7.3.4: fsmeta rebuilt from the cached layer files (read back with the reader) is
 * byte-identical to fsmeta built from the trees the layer writer handed over at ingest. Shown on
 * `multilayer` (whiteouts, opaque, hardlinks, xattrs, devices, type changes) and on `edge-dup`
 * (one layer at two positions, plus an empty layer).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { readErofsTree } from '../../src/erofs/reader.js';
import { writeLayer } from '../../src/erofs/layer-writer.js';
import { buildFsmeta, type FsmetaLayer } from '../../src/stitch/build.js';
import { diffIdTag } from '../../src/stitch/fsmeta.js';
import { validateFsmetaFile } from '../../src/stitch/validate.js';
import { digestUuid } from '../../src/util/digest.js';
import { ensureImages, tempDir } from '../helpers/env.js';
import { ociLayers } from '../helpers/stitch-fixtures.js';

for (const tag of ['multilayer', 'edge-dup']) {
  test(`§7.3.4 ${tag}: fsmeta from fresh ingest trees == fsmeta from cached layer files`, async (t) => {
    const { dir, cleanup } = tempDir('msb-rebuild-');
    t.after(cleanup);
    const { manifestDigest, layers } = ociLayers(ensureImages().oci, tag);
    const fresh: FsmetaLayer[] = [];
    const paths: string[] = [];
    const byDiffId = new Map<string, FsmetaLayer & { path: string }>();
    for (const [k, l] of layers.entries()) {
      let entry = byDiffId.get(l.diffId);
      if (!entry) {
        const path = join(dir, `layer-${k}.erofs`);
        const gz = (await readFile(l.blob)).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]));
        const input = gz ? createReadStream(l.blob).pipe(createGunzip()) : createReadStream(l.blob);
        const r = await writeLayer(input, path, {});
        assert.equal(r.diffId, l.diffId);
        entry = { path, root: r.root, sizeBytes: r.blocks * 4096, tag: diffIdTag(l.diffId) };
        byDiffId.set(l.diffId, entry);
      }
      fresh.push({ root: entry.root, sizeBytes: entry.sizeBytes, tag: entry.tag });
      paths.push(entry.path);
    }
    const uuid = digestUuid(manifestDigest);
    const a = join(dir, 'fresh.erofs');
    await buildFsmeta(fresh, a, { uuid });

    const cached: FsmetaLayer[] = [];
    for (const [k, p] of paths.entries()) {
      const r = await readErofsTree(p);
      cached.push({ root: r.root, sizeBytes: r.blocks * 4096, tag: diffIdTag(layers[k]!.diffId) });
    }
    const b = join(dir, 'rebuilt.erofs');
    await buildFsmeta(cached, b, { uuid });
    const [ba, bb] = [await readFile(a), await readFile(b)];
    assert.equal(ba.length, bb.length);
    assert.ok(ba.equals(bb), 'byte-identical');
    assert.equal(
      await validateFsmetaFile(b, { uuid, layers: cached.map((l) => ({ sizeBytes: l.sizeBytes, tag: l.tag })) }),
      null,
    );
  });
}

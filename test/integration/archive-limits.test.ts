/**
 * Archive limits (acceptance F17): 1,000,001 members → LIMIT_EXCEEDED (maxArchiveMembers), read
 * as a gzip stream (so nothing but the spool directory is created, and it is removed); an index
 * nested 9 deep → LIMIT_EXCEEDED (indexDepth), while 8 deep loads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { Image } from '../../src/api/image.js';
import { MsbError } from '../../src/errors.js';
import { freshHome, rows, tmpEntries } from '../helpers/pull-env.js';
import { dir, file, header, tar } from '../helpers/tar-writer.js';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function code(p: Promise<unknown>): Promise<MsbError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MsbError, String(e));
    return e;
  }
  assert.fail('expected a rejection');
}

test('F17: 1,000,001 archive members → LIMIT_EXCEEDED (maxArchiveMembers); the spool is removed', async (t) => {
  const H = await freshHome(t);
  const total = 1_000_001;
  async function* members(): AsyncGenerator<Buffer> {
    const batch: Buffer[] = [];
    for (let i = 0; i < total; i++) {
      batch.push(header({ name: `m/${i}`, size: 0 }));
      if (batch.length === 4096) {
        yield Buffer.concat(batch);
        batch.length = 0;
      }
    }
    batch.push(Buffer.alloc(1024));
    yield Buffer.concat(batch);
  }
  const gz = Readable.from(members()).pipe(createGzip({ level: 1 }));
  const e = await code(Image.loadLocal(H.backend, gz));
  assert.equal(e.code, 'LIMIT_EXCEEDED', e.message);
  assert.equal((e.details as { limit: string }).limit, 'maxArchiveMembers');
  assert.equal((e.details as { value: number }).value, total);
  assert.deepEqual(tmpEntries(H.home), []);
});

/** An OCI archive whose index.json points at an index nested `depth` deep (then a manifest). */
function nested(depth: number): Buffer {
  const layer = tar(file('a.txt', 'a'));
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    }),
  );
  const blobs: Buffer[] = [layer, config, manifest];
  let child = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha(manifest),
    size: manifest.length,
    platform: { os: 'linux', architecture: 'amd64' },
  } as Record<string, unknown>;
  for (let i = 0; i < depth; i++) {
    const idx = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [child] }),
    );
    blobs.push(idx);
    child = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha(idx), size: idx.length };
  }
  const index = {
    schemaVersion: 2,
    manifests: [{ ...child, annotations: { 'io.containerd.image.name': `deep/${depth}:x` } }],
  };
  return tar(
    dir('blobs/'),
    dir('blobs/sha256/'),
    ...blobs.map((b) => file(`blobs/sha256/${sha(b).slice(7)}`, b)),
    file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'),
    file('index.json', JSON.stringify(index)),
  );
}

test('F17: an index nested 9 deep → LIMIT_EXCEEDED (indexDepth); 8 deep loads', async (t) => {
  const H = await freshHome(t);
  const e = await code(Image.loadLocal(H.backend, Readable.from([nested(9)])));
  assert.equal(e.code, 'LIMIT_EXCEEDED', e.message);
  assert.equal((e.details as { limit: string }).limit, 'indexDepth');
  assert.equal(rows<{ n: number }>(H.home, 'SELECT COUNT(*) AS n FROM image_ref')[0]!.n, 0);
  const h = await Image.loadLocal(H.backend, Readable.from([nested(8)]));
  assert.deepEqual(
    h.map((x) => x.reference),
    ['deep/8:x'],
  );
});

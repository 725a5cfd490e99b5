/** docs/pull.md §5.1, §6, §7: manifest/index/config parsing and validation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest, parseImageConfig } from '../../src/oci/manifest.js';
import { layerCompression, MEDIA_TYPES, MANIFEST_ACCEPT, LAYER_MEDIA_TYPES } from '../../src/oci/media-types.js';
import { ConfigInvalidError, LimitExceededError, ManifestInvalidError } from '../../src/errors.js';

const dig = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const B = (o: unknown) => Buffer.from(JSON.stringify(o));
const layer = (i: number, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip') => ({
  mediaType,
  digest: dig(100 + i),
  size: 10 + i,
});
const manifest = (extra: Record<string, unknown> = {}) => ({
  schemaVersion: 2,
  mediaType: MEDIA_TYPES.ociManifest,
  config: { mediaType: MEDIA_TYPES.ociConfig, digest: dig(1), size: 5 },
  layers: [layer(0), layer(1)],
  ...extra,
});

test('Accept lists all four manifest types', () => {
  assert.deepEqual([...MANIFEST_ACCEPT].sort(), [
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
  ]);
});

test('OCI and docker manifests parse; layer compressions from the media type table', () => {
  const m = parseManifest(B(manifest()));
  assert.equal(m.kind, 'manifest');
  assert.ok(m.kind === 'manifest' && m.layers.every((l) => l.compression === 'gzip'));
  const d = parseManifest(
    B(
      manifest({
        mediaType: MEDIA_TYPES.dockerManifest,
        layers: [
          layer(0, 'application/vnd.docker.image.rootfs.diff.tar.gzip'),
          layer(1, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'),
        ],
      }),
    ),
  );
  assert.equal(d.mediaType, MEDIA_TYPES.dockerManifest);
  const expect: Record<string, string> = {
    'application/vnd.oci.image.layer.v1.tar': 'none',
    'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
    'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
    'application/vnd.docker.image.rootfs.diff.tar': 'none',
    'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
    'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
    'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
  };
  assert.deepEqual({ ...LAYER_MEDIA_TYPES }, expect);
  for (const [t, c] of Object.entries(expect)) assert.equal(layerCompression(t), c);
  for (const t of [
    'application/vnd.example+foo',
    'application/vnd.oci.image.layer.v1.tar+encrypted',
    'toString',
    '__proto__',
    '',
  ]) {
    assert.throws(() => layerCompression(t), ManifestInvalidError, t);
    assert.throws(() => parseManifest(B(manifest({ layers: [layer(0, t)] }))), ManifestInvalidError, t);
  }
});

test('type: body mediaType, else Content-Type, else shape; conflicts are MANIFEST_INVALID', () => {
  const noType = manifest();
  delete (noType as Record<string, unknown>).mediaType;
  assert.equal(
    parseManifest(B(noType), { contentType: 'application/vnd.oci.image.manifest.v1+json' }).mediaType,
    MEDIA_TYPES.ociManifest,
  );
  assert.equal(
    parseManifest(B(noType), { contentType: 'application/vnd.docker.distribution.manifest.v2+json; charset=utf-8' })
      .mediaType,
    MEDIA_TYPES.dockerManifest,
  );
  assert.equal(parseManifest(B(noType), { contentType: 'application/json' }).kind, 'manifest');
  assert.equal(parseManifest(B(noType)).kind, 'manifest');
  const index = {
    schemaVersion: 2,
    manifests: [
      { mediaType: MEDIA_TYPES.ociManifest, digest: dig(5), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  const pi = parseManifest(B(index));
  assert.equal(pi.kind, 'index');
  assert.equal(pi.kind === 'index' && pi.manifests[0]!.platform?.architecture, 'amd64');
  // Conflicts.
  assert.throws(() => parseManifest(B({ ...index, mediaType: MEDIA_TYPES.ociManifest })), ManifestInvalidError);
  assert.throws(() => parseManifest(B({ ...manifest(), mediaType: MEDIA_TYPES.ociIndex })), ManifestInvalidError);
  assert.throws(() => parseManifest(B(noType), { contentType: MEDIA_TYPES.dockerManifestList }), ManifestInvalidError);
  assert.throws(() => parseManifest(B({ schemaVersion: 2 })), ManifestInvalidError);
  assert.throws(() => parseManifest(B({ ...manifest(), manifests: [] })), ManifestInvalidError);
  assert.throws(
    () => parseManifest(B({ ...manifest(), mediaType: 'application/vnd.example+json' })),
    ManifestInvalidError,
  );
  assert.throws(() => parseManifest(Buffer.from('not json')), ManifestInvalidError);
  assert.throws(() => parseManifest(Buffer.from('[1]')), ManifestInvalidError);
  assert.throws(() => parseManifest(B({ ...manifest(), schemaVersion: 3 })), ManifestInvalidError);
});

test('schema 1 is refused with a clear message', () => {
  for (const [body, ct] of [
    [{ schemaVersion: 1, name: 'x', tag: 'latest', fsLayers: [] }, null],
    [{ schemaVersion: 1, name: 'x', fsLayers: [] }, MEDIA_TYPES.dockerSchema1Signed],
    [{ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerSchema1 }, null],
  ] as const) {
    assert.throws(
      () => parseManifest(B(body), { contentType: ct }),
      (e: unknown) => {
        assert.ok(e instanceof ManifestInvalidError);
        assert.match(e.message, /schema 1/);
        return true;
      },
    );
  }
});

test('every digest validated; sizes non-negative integers', () => {
  const badDigests = ['sha256:../../etc/passwd', `sha256:${'A'.repeat(64)}`, 'md5:abc', '', 42];
  for (const d of badDigests) {
    assert.throws(
      () => parseManifest(B(manifest({ config: { mediaType: MEDIA_TYPES.ociConfig, digest: d, size: 1 } }))),
      ManifestInvalidError,
      String(d),
    );
    assert.throws(
      () => parseManifest(B(manifest({ layers: [{ ...layer(0), digest: d }] }))),
      ManifestInvalidError,
      String(d),
    );
    assert.throws(
      () =>
        parseManifest(
          B({
            schemaVersion: 2,
            mediaType: MEDIA_TYPES.ociIndex,
            manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: d, size: 1 }],
          }),
        ),
      ManifestInvalidError,
    );
  }
  for (const size of [-1, 1.5, '10', null, Number.MAX_SAFE_INTEGER + 2]) {
    assert.throws(
      () => parseManifest(B(manifest({ layers: [{ ...layer(0), size }] }))),
      ManifestInvalidError,
      String(size),
    );
  }
  assert.throws(() => parseManifest(B(manifest({ layers: [{ digest: dig(3), size: 1 }] }))), /mediaType is missing/);
  assert.throws(
    () =>
      parseManifest(
        B({
          schemaVersion: 2,
          mediaType: MEDIA_TYPES.ociIndex,
          manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: dig(3), size: 1, platform: 'linux' }],
        }),
      ),
    ManifestInvalidError,
  );
  assert.equal(parseManifest(B(manifest({ layers: [] }))).kind, 'manifest');
});

test('maxLayers: 1001 layers is LIMIT_EXCEEDED', () => {
  const layers = Array.from({ length: 1001 }, (_, i) => layer(i));
  assert.throws(
    () => parseManifest(B(manifest({ layers })), { maxLayers: 1000 }),
    (e: unknown) => e instanceof LimitExceededError && e.limit === 'maxLayers' && e.value === 1001,
  );
  assert.equal(parseManifest(B(manifest({ layers: layers.slice(0, 1000) })), { maxLayers: 1000 }).kind, 'manifest');
});

test('config: rootfs.type layers, diff_ids valid, count equals layers', () => {
  const cfg = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [dig(7), dig(8)] },
    config: { Env: ['A=1'] },
  };
  const c = parseImageConfig(B(cfg), dig(1), 2);
  assert.deepEqual(c.diffIds, [dig(7), dig(8)]);
  assert.equal(c.architecture, 'amd64');
  assert.equal(c.variant, null);
  assert.deepEqual(parseImageConfig(B({ ...cfg, rootfs: { type: 'layers', diff_ids: [] } }), dig(1), 0).diffIds, []);
  const bads: unknown[] = [
    { ...cfg, rootfs: undefined },
    { ...cfg, rootfs: { type: 'tarball', diff_ids: [dig(7), dig(8)] } },
    { ...cfg, rootfs: { type: 'layers' } },
    { ...cfg, rootfs: { type: 'layers', diff_ids: [dig(7), 'sha256:zz'] } },
    { ...cfg, rootfs: { type: 'layers', diff_ids: [dig(7)] } },
    [1, 2],
  ];
  for (const b of bads)
    assert.throws(
      () => parseImageConfig(B(b), dig(1), 2),
      (e: unknown) => e instanceof ConfigInvalidError && e.digest === dig(1),
      JSON.stringify(b),
    );
  assert.throws(() => parseImageConfig(Buffer.from('{'), dig(1), 0), ConfigInvalidError);
});

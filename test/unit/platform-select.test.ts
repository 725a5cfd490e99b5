/** docs/pull.md §5.2: host platform, parsing, normalization, variant order, candidates, nested indexes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  hostPlatform,
  parsePlatform,
  normalizePlatform,
  isPlatformCompatible,
  selectPlatform,
  recordedPlatform,
  formatPlatform,
  type Platform,
} from '../../src/oci/platform.js';
import type { ImageIndex, IndexEntry } from '../../src/oci/manifest.js';
import { MEDIA_TYPES } from '../../src/oci/media-types.js';
import { InvalidArgumentError, LimitExceededError, PlatformNotFoundError } from '../../src/errors.js';

const dig = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
let counter = 1;
function entry(platform: IndexEntry['platform'] | undefined, extra: Partial<IndexEntry> = {}): IndexEntry {
  const e: IndexEntry = { mediaType: MEDIA_TYPES.ociManifest, digest: dig(counter++), size: 100, ...extra };
  if (platform) e.platform = platform;
  return e;
}
const idx = (...manifests: IndexEntry[]): ImageIndex => ({ kind: 'index', mediaType: MEDIA_TYPES.ociIndex, manifests });
const noNested = async (): Promise<ImageIndex> => {
  throw new Error('no nested index expected');
};
const P = (s: string): Platform => parsePlatform(s);

test('host platform from process.arch', () => {
  assert.deepEqual(hostPlatform('x64'), { os: 'linux', architecture: 'amd64', variant: null });
  assert.deepEqual(hostPlatform('arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(hostPlatform('arm', '6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.deepEqual(hostPlatform('arm', '7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(hostPlatform('ia32'), { os: 'linux', architecture: '386', variant: null });
  assert.deepEqual(hostPlatform('ppc64', undefined, 'LE'), { os: 'linux', architecture: 'ppc64le', variant: null });
  assert.deepEqual(hostPlatform('s390x'), { os: 'linux', architecture: 's390x', variant: null });
  assert.deepEqual(hostPlatform('riscv64'), { os: 'linux', architecture: 'riscv64', variant: null });
  assert.equal(hostPlatform().os, 'linux');
});

test('platform strings parse; bad ones are INVALID_ARGUMENT', () => {
  assert.deepEqual(P('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(P(' linux/amd64 '), { os: 'linux', architecture: 'amd64', variant: null });
  assert.deepEqual(parsePlatform({ os: 'linux', architecture: 'arm' }), {
    os: 'linux',
    architecture: 'arm',
    variant: null,
  });
  for (const b of ['linux', 'linux/', '/amd64', 'linux/amd64/v8/x', 'linux amd64', '', 'linux//v7', 'linux/../x']) {
    assert.throws(
      () => parsePlatform(b),
      (e: unknown) => e instanceof InvalidArgumentError && e.argument === 'platform',
      b,
    );
  }
  assert.throws(() => parsePlatform({ os: 'linux' } as never), InvalidArgumentError);
  assert.throws(() => parsePlatform(42 as never), InvalidArgumentError);
});

test('normalization on both sides', () => {
  assert.deepEqual(normalizePlatform(P('Linux/x86_64')), {
    os: 'linux',
    architecture: 'amd64',
    variant: 'v1',
    variantImplied: true,
  });
  assert.equal(normalizePlatform(P('linux/x86-64')).architecture, 'amd64');
  assert.deepEqual(normalizePlatform(P('linux/aarch64')), {
    os: 'linux',
    architecture: 'arm64',
    variant: 'v8',
    variantImplied: true,
  });
  assert.deepEqual(normalizePlatform(P('linux/armhf')), {
    os: 'linux',
    architecture: 'arm',
    variant: 'v7',
    variantImplied: false,
  });
  assert.deepEqual(normalizePlatform(P('linux/armel')), {
    os: 'linux',
    architecture: 'arm',
    variant: 'v6',
    variantImplied: false,
  });
  assert.equal(normalizePlatform(P('linux/i386')).architecture, '386');
  assert.equal(normalizePlatform(P('linux/arm')).variant, 'v7');
  assert.equal(normalizePlatform(P('linux/ARM64/8')).variant, 'v8');
  assert.ok(isPlatformCompatible(P('linux/aarch64'), P('linux/arm64/v8')));
  assert.ok(isPlatformCompatible(P('linux/arm64/v8'), P('LINUX/ARM64')));
  assert.ok(isPlatformCompatible(P('linux/x86_64'), P('linux/amd64')));
});

test('variant order: never a higher variant', () => {
  assert.ok(isPlatformCompatible(P('linux/arm/v6'), P('linux/arm/v7')));
  assert.ok(!isPlatformCompatible(P('linux/arm/v7'), P('linux/arm/v6')));
  assert.ok(isPlatformCompatible(P('linux/arm/v5'), P('linux/arm64/v8')) === false, 'arch must be equal');
  assert.ok(isPlatformCompatible(P('linux/amd64/v2'), P('linux/amd64/v3')));
  assert.ok(!isPlatformCompatible(P('linux/amd64/v3'), P('linux/amd64')));
  assert.ok(!isPlatformCompatible(P('linux/arm'), P('linux/arm/v6')), 'arm with no variant means v7');
  assert.ok(!isPlatformCompatible(P('windows/amd64'), P('linux/amd64')));
  assert.ok(isPlatformCompatible(P('linux/s390x'), P('linux/s390x')));
  assert.ok(!isPlatformCompatible(P('linux/riscv64/rva22'), P('linux/riscv64/rva20')));
});

test('multiarch-like index: arm64 and arm64/v8 targets choose the arm64 entry; s390x lists available', async () => {
  const amd = entry({ os: 'linux', architecture: 'amd64' });
  const arm = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  const att = entry(
    { os: 'unknown', architecture: 'unknown' },
    { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
  );
  const i = idx(amd, arm, att);
  assert.equal((await selectPlatform(i, P('linux/arm64'), noNested)).descriptor.digest, arm.digest);
  assert.equal((await selectPlatform(i, P('linux/arm64/v8'), noNested)).descriptor.digest, arm.digest);
  const sel = await selectPlatform(i, P('linux/amd64'), noNested);
  assert.equal(sel.descriptor.digest, amd.digest);
  assert.deepEqual(sel.platform, { os: 'linux', architecture: 'amd64', variant: null });
  await assert.rejects(selectPlatform(i, P('linux/s390x'), noNested), (e: unknown) => {
    assert.ok(e instanceof PlatformNotFoundError);
    assert.deepEqual(e.available, ['linux/amd64', 'linux/arm64/v8']);
    assert.equal(e.requested, 'linux/s390x');
    assert.match(e.message, /linux\/amd64, linux\/arm64\/v8/);
    return true;
  });
});

test('arm v6/v7 choices, exact variant beats implied, highest compatible wins, index order breaks ties', async () => {
  const v6 = entry({ os: 'linux', architecture: 'arm', variant: 'v6' });
  const v7 = entry({ os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal((await selectPlatform(idx(v6, v7), P('linux/arm/v7'), noNested)).descriptor.digest, v7.digest);
  assert.equal((await selectPlatform(idx(v7, v6), P('linux/arm/v6'), noNested)).descriptor.digest, v6.digest);
  await assert.rejects(selectPlatform(idx(v7), P('linux/arm/v6'), noNested), PlatformNotFoundError);
  const v5 = entry({ os: 'linux', architecture: 'arm', variant: 'v5' });
  assert.equal(
    (await selectPlatform(idx(v5, v6), P('linux/arm/v7'), noNested)).descriptor.digest,
    v6.digest,
    'highest compatible',
  );
  // An exact variant beats an entry that states none (both normalize to v8 / v7).
  const armNone = entry({ os: 'linux', architecture: 'arm64' });
  const arm8 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(
    (await selectPlatform(idx(armNone, arm8), P('linux/arm64/v8'), noNested)).descriptor.digest,
    arm8.digest,
  );
  assert.equal((await selectPlatform(idx(armNone, arm8), P('linux/arm64'), noNested)).descriptor.digest, arm8.digest);
  const a1 = entry({ os: 'linux', architecture: 'amd64' });
  const a2 = entry({ os: 'linux', architecture: 'amd64' });
  assert.equal(
    (await selectPlatform(idx(a1, a2), P('linux/amd64'), noNested)).descriptor.digest,
    a1.digest,
    'index order',
  );
  // Recorded platform keeps the spelling as written.
  const x = entry({ os: 'linux', architecture: 'aarch64' });
  const s = await selectPlatform(idx(x), P('linux/arm64/v8'), noNested);
  assert.deepEqual(s.platform, { os: 'linux', architecture: 'aarch64', variant: null });
});

test('candidates: no platform, attestations, unknown media types are skipped and not listed', async () => {
  const noPlat = entry(undefined);
  const attUnknown = entry({ os: 'unknown', architecture: 'unknown' });
  const attAnn = entry(
    { os: 'linux', architecture: 'amd64' },
    { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
  );
  const artifact = entry(
    { os: 'linux', architecture: 'amd64' },
    { mediaType: 'application/vnd.example.artifact+json' },
  );
  const noType = entry({ os: 'linux', architecture: 'amd64' });
  delete (noType as { mediaType?: string }).mediaType;
  await assert.rejects(
    selectPlatform(idx(noPlat, attUnknown, attAnn, artifact, noType), P('linux/amd64'), noNested),
    (e: unknown) => {
      assert.ok(e instanceof PlatformNotFoundError);
      assert.deepEqual(e.available, []);
      return true;
    },
  );
  const good = entry({ os: 'linux', architecture: 'amd64' }, { mediaType: MEDIA_TYPES.dockerManifest });
  assert.equal((await selectPlatform(idx(attAnn, good), P('linux/amd64'), noNested)).descriptor.digest, good.digest);
});

test('nested indexes: followed when platform matches or is absent; depth and entry limits', async () => {
  const inner = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  const nestedNoPlat = entry(undefined, { mediaType: MEDIA_TYPES.ociIndex });
  const nestedOther = entry({ os: 'windows', architecture: 'amd64' }, { mediaType: MEDIA_TYPES.dockerManifestList });
  const loaded: string[] = [];
  const load = async (e: IndexEntry) => {
    loaded.push(e.digest);
    if (e.digest === nestedNoPlat.digest) return idx(inner);
    throw new Error('must not load a non-matching nested index');
  };
  const s = await selectPlatform(idx(nestedOther, nestedNoPlat), P('linux/arm64'), load);
  assert.equal(s.descriptor.digest, inner.digest);
  assert.deepEqual(s.via, [nestedNoPlat.digest]);
  assert.deepEqual(loaded, [nestedNoPlat.digest]);

  // Depth: a chain of 8 indexes (top = 1) is fine, 9 is LIMIT_EXCEEDED indexDepth.
  const chain = (n: number) => {
    const load2 = async (e: IndexEntry) =>
      Number(BigInt('0x' + e.digest.slice(7))) < n
        ? idx(
            entry(undefined, {
              mediaType: MEDIA_TYPES.ociIndex,
              digest: dig(Number(BigInt('0x' + e.digest.slice(7))) + 1),
            }),
          )
        : idx(entry({ os: 'linux', architecture: 'amd64' }));
    return selectPlatform(
      idx(entry(undefined, { mediaType: MEDIA_TYPES.ociIndex, digest: dig(2) })),
      P('linux/amd64'),
      load2,
    );
  };
  await chain(8);
  await assert.rejects(chain(9), (e: unknown) => e instanceof LimitExceededError && e.limit === 'indexDepth');

  const many = idx(...Array.from({ length: 1025 }, () => entry({ os: 'linux', architecture: 'ppc64le' })));
  await assert.rejects(
    selectPlatform(many, P('linux/amd64'), noNested),
    (e: unknown) => e instanceof LimitExceededError && e.limit === 'indexEntries' && e.max === 1024,
  );
  const ok = idx(...Array.from({ length: 1024 }, () => entry({ os: 'linux', architecture: 'amd64' })));
  await selectPlatform(ok, P('linux/amd64'), noNested);
});

test('recorded platform: config of a single manifest; explicit mismatch is PLATFORM_NOT_FOUND, host mismatch warns', () => {
  const cfg = { os: 'linux', architecture: 'arm64', variant: 'v8' };
  assert.deepEqual(recordedPlatform({ indexEntry: null, config: cfg, target: P('linux/arm64'), explicit: true }), {
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    warning: null,
  });
  assert.throws(
    () => recordedPlatform({ indexEntry: null, config: cfg, target: P('linux/amd64'), explicit: true }),
    (e: unknown) => e instanceof PlatformNotFoundError && e.available[0] === 'linux/arm64/v8',
  );
  const r = recordedPlatform({ indexEntry: null, config: cfg, target: P('linux/amd64'), explicit: false });
  assert.equal(r.warning?.code, 'PLATFORM_MISMATCH');
  assert.equal(formatPlatform(r.platform), 'linux/arm64/v8');
  // Index entry and config disagree: trust the entry, warn.
  const r2 = recordedPlatform({ indexEntry: P('linux/amd64'), config: cfg, target: P('linux/amd64'), explicit: true });
  assert.equal(formatPlatform(r2.platform), 'linux/amd64');
  assert.equal(r2.warning?.code, 'PLATFORM_MISMATCH');
  const r3 = recordedPlatform({
    indexEntry: P('linux/arm64/v8'),
    config: { os: 'linux', architecture: 'arm64' },
    target: P('linux/arm64'),
    explicit: false,
  });
  assert.equal(r3.warning, null);
});

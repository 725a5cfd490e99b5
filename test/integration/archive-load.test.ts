/**
 * Image.load against real archives (acceptance F1–F12): skopeo's legacy docker-archive (symlinked
 * `<id>/layer.tar`) and oci-archives of the fixture images, generated archives (nested indexes,
 * unnamed / duplicate-named images), plain, gzip, zstd and stdin input, and a real registry pull
 * (a private CNCF distribution instance) as the reference for layer files and manifest digests.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Image } from '../../src/api/image.js';
import { Sandbox } from '../../src/api/sandbox.js';
import type { PullEvent } from '../../src/api/types.js';
import { MsbError } from '../../src/errors.js';
import { ensureImages, ensureRegistry, PROJECT_ROOT, run, tempDir } from '../helpers/env.js';
import {
  freshHome,
  indexProblems,
  privateRegistry,
  rows,
  tmpEntries,
  type PrivateRegistry,
} from '../helpers/pull-env.js';
import { dir, file, symlink, tar } from '../helpers/tar-writer.js';
import { cli } from '../helpers/msb-cli.js';
import { flipByte } from '../helpers/bytes.js';

ensureRegistry('noauth');
const fx = ensureImages();
const OUT = join(fx.dir, 'out');
const work = tempDir('msb-archive-load-');
let P: PrivateRegistry;
before(async () => {
  P = await privateRegistry();
});
after(async () => {
  await P.stop();
  work.cleanup();
});

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const hex = (d: string) => d.slice(7);
async function rejectsCode(p: Promise<unknown>, code: string, match?: RegExp): Promise<MsbError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MsbError, `expected an MsbError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (match) assert.match(e.message, match);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}
const refCount = (home: string) => rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM image_ref')[0]!.n;
const manifestCount = (home: string) => rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM manifest')[0]!.n;

/** Members of a tar (GNU tar reads it; we need the bytes of a few). */
function extract(archive: string, into: string): string {
  run('mkdir', ['-p', into]);
  run('tar', ['xf', archive, '-C', into]);
  return into;
}

/** An OCI layout archive from blobs (name → bytes) plus index.json. */
function ociArchive(blobs: Map<string, Buffer>, index: unknown, extra: Buffer[] = []): Buffer {
  const parts = [dir('blobs/'), dir('blobs/sha256/')];
  for (const [d, b] of blobs) parts.push(file(`blobs/sha256/${hex(d)}`, b));
  parts.push(file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'), file('index.json', JSON.stringify(index)), ...extra);
  return tar(...parts);
}

/** A one-layer docker-save archive (legacy names) with the given RepoTags and layer content. */
function dockerArchive(images: { repoTags: string[] | null; content: string }[]): Buffer {
  const parts: Buffer[] = [];
  const manifest: unknown[] = [];
  for (const im of images) {
    const layer = tar(file('hello.txt', im.content));
    const diff = sha(layer);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diff] } }),
    );
    parts.push(file(`${hex(diff)}.tar`, layer), file(`${hex(sha(config))}.json`, config));
    manifest.push({ Config: `${hex(sha(config))}.json`, RepoTags: im.repoTags, Layers: [`${hex(diff)}.tar`] });
  }
  parts.push(file('manifest.json', JSON.stringify(manifest)));
  return tar(...parts);
}

function put(name: string, data: Buffer): string {
  const p = join(work.dir, name);
  writeFileSync(p, data);
  return p;
}

async function load(
  b: Parameters<typeof Image.loadLocal>[0],
  input: Parameters<typeof Image.loadLocal>[1],
  o: Parameters<typeof Image.loadLocal>[2] = {},
) {
  const events: PullEvent[] = [];
  const handles = await Image.loadLocal(b, input, { ...o, onProgress: (e) => events.push(e) });
  return { handles, events };
}

test('F1: skopeo legacy docker archive (symlinked layer.tar) loads; layer files equal a registry pull; a later pull downloads no layer', async (t) => {
  const members = run('tar', ['tvf', join(OUT, 'multilayer.docker.tar')]);
  assert.match(
    members,
    /^l.* [0-9a-f]{64}\/layer\.tar -> \.\.\/[0-9a-f]{64}\.tar$/m,
    'the fixture really has symlinked layer.tar members',
  );
  const A = await freshHome(t);
  const { handles, events } = await load(A.backend, join(OUT, 'multilayer.docker.tar'));
  assert.deepEqual(
    handles.map((h) => h.reference),
    ['peers/multilayer:latest'],
  );
  assert.equal(handles[0]!.layerCount, 5);
  assert.ok(!events.some((e) => e.type.startsWith('layerDownload')), 'no download events');
  assert.deepEqual(
    rows<{ source: string }>(A.home, 'SELECT source FROM manifest').map((r) => r.source),
    ['archive'],
  );
  assert.deepEqual(await indexProblems(A.home), []);
  assert.deepEqual(tmpEntries(A.home), []);

  const B = await freshHome(t);
  const pulled = await Image.pullLocal(B.backend, `${P.host}/peers/multilayer:latest`);
  const detail = await Image.inspectLocal(A.backend, 'peers/multilayer:latest');
  assert.deepEqual(
    detail.layers.map((l) => l.diffId),
    pulled.layers.map((l) => l.diffId),
  );
  for (const l of pulled.artifacts.layers) {
    const mine = detail.artifacts.layers[l.position]!.path;
    assert.ok(readFileSync(mine).equals(readFileSync(l.path)), `layer ${l.diffId} differs from the registry pull's`);
  }
  const before = P.blobGets().length;
  const r = await Image.pullLocal(A.backend, `${P.host}/peers/multilayer:latest`);
  const gets = P.blobGets().slice(before);
  const layerBlobs = new Set(r.layers.map((l) => l.blobDigest));
  assert.equal(
    gets.filter((g) => [...layerBlobs].some((d) => g.includes(d))).length,
    0,
    `layer blobs were downloaded: ${gets.join('\n')}`,
  );
  assert.ok(r.layers.every((l) => !l.downloaded && !l.materialized));
});

test('F2: oci archive with a bare ref.name needs --tag; with it the manifest digest equals the registry one', async (t) => {
  const A = await freshHome(t);
  const e = await rejectsCode(
    Image.loadLocal(A.backend, join(OUT, 'multilayer.oci.tar')),
    'ARCHIVE_INVALID',
    /has no name; pass the tag option to name it$/,
  );
  assert.equal((e.details as { option?: string }).option, 'tag');
  assert.equal(refCount(A.home), 0);
  const { handles } = await load(A.backend, join(OUT, 'multilayer.oci.tar'), { tag: 'multilayer:oci' });
  assert.deepEqual(
    handles.map((h) => h.reference),
    ['multilayer:oci'],
  );
  const B = await freshHome(t);
  const pulled = await Image.pullLocal(B.backend, `${P.host}/peers/multilayer:latest`);
  assert.equal(handles[0]!.manifestDigest, pulled.manifestDigest);
  // CLI: the unnamed image exits 1 with the CLI's hint instead of the API's advice.
  const c = await cli(['--home', A.home, 'load', '-i', join(OUT, 'multilayer.oci.tar')]);
  assert.equal(c.status, 1);
  assert.match(c.stderr, /^msb: ARCHIVE_INVALID: image [0-9a-f]{12} has no name\nhint: pass --tag to name it\n$/);
});

test('F3: multiarch index: host picks amd64, --platform linux/arm64 picks arm64/v8, s390x → PLATFORM_NOT_FOUND with nothing committed', async (t) => {
  const A = await freshHome(t);
  const amd = await Image.loadLocal(A.backend, join(OUT, 'multiarch.oci.tar'), { tag: 'ma:host' });
  assert.equal(process.arch, 'x64', 'this test expects an amd64 host');
  assert.equal(amd[0]!.architecture, 'amd64');
  const arm = await Image.loadLocal(A.backend, join(OUT, 'multiarch.oci.tar'), {
    tag: 'ma:arm',
    platform: 'linux/arm64',
  });
  assert.equal(arm[0]!.architecture, 'arm64');
  assert.equal(arm[0]!.variant, 'v8');
  assert.notEqual(arm[0]!.manifestDigest, amd[0]!.manifestDigest);
  const C = await freshHome(t);
  const e = await rejectsCode(
    Image.loadLocal(C.backend, join(OUT, 'multiarch.oci.tar'), { tag: 'ma:s390x', platform: 'linux/s390x' }),
    'PLATFORM_NOT_FOUND',
  );
  assert.ok((e.details as { available: string[] }).available.includes('linux/arm64/v8'));
  assert.equal(refCount(C.home), 0);
  assert.equal(manifestCount(C.home), 0);
});

/** Blobs of multiarch.oci.tar and its index (parsed). */
function multiarchParts() {
  const d = extract(join(OUT, 'multiarch.oci.tar'), join(work.dir, `ma-${Math.random().toString(16).slice(2)}`));
  const blobs = new Map<string, Buffer>();
  for (const n of readdirSync(join(d, 'blobs', 'sha256')))
    blobs.set(`sha256:${n}`, readFileSync(join(d, 'blobs', 'sha256', n)));
  const top = JSON.parse(readFileSync(join(d, 'index.json'), 'utf8')) as {
    manifests: { digest: string; size: number; mediaType: string }[];
  };
  const idx = JSON.parse(blobs.get(top.manifests[0]!.digest)!.toString()) as {
    manifests: { digest: string; size: number; mediaType: string; platform: unknown }[];
  };
  return { blobs, top, idx };
}

function addJson(blobs: Map<string, Buffer>, v: unknown): { digest: string; size: number } {
  const b = Buffer.from(JSON.stringify(v));
  blobs.set(sha(b), b);
  return { digest: sha(b), size: b.length };
}

test('F4: index → index → manifest with ref.name on top loads; a nameless nested index loads with -t; unknown and incompatible siblings are skipped', async (t) => {
  const { blobs, idx } = multiarchParts();
  const amd = idx.manifests.find((m) => (m.platform as { architecture: string }).architecture === 'amd64')!;
  const armEntry = idx.manifests.find((m) => (m.platform as { architecture: string }).architecture === 'arm64')!;
  const inner = addJson(blobs, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.example.unknown+json', digest: sha('x'), size: 1 }, armEntry, amd],
  });
  const outer = addJson(blobs, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...inner }],
  });
  const named = put(
    'nested-named.tar',
    ociArchive(blobs, {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...outer,
          annotations: { 'org.opencontainers.image.ref.name': 'example.com/nested:1' },
        },
      ],
    }),
  );
  const A = await freshHome(t);
  const h = await Image.loadLocal(A.backend, named);
  assert.deepEqual(
    h.map((x) => x.reference),
    ['example.com/nested:1'],
  );
  assert.equal(h[0]!.manifestDigest, amd.digest);
  assert.equal(h[0]!.architecture, 'amd64');
  const nameless = put(
    'nested-nameless.tar',
    ociArchive(blobs, {
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...outer }],
    }),
  );
  await rejectsCode(Image.loadLocal(A.backend, nameless), 'ARCHIVE_INVALID', /pass the tag option/);
  const h2 = await Image.loadLocal(A.backend, nameless, { tag: 'nested:tagged' });
  assert.deepEqual(
    h2.map((x) => x.reference),
    ['nested:tagged'],
  );
  assert.equal(h2[0]!.manifestDigest, amd.digest);
});

test('F5: our dual archive takes the OCI path (names from io.containerd.image.name); a buildkit-style archive with only that annotation is named', async (t) => {
  const A = await freshHome(t);
  const [h] = await Image.loadLocal(A.backend, join(OUT, 'busybox.oci.tar'), { tag: 'localhost:5000/bb:dual' });
  const out = join(work.dir, 'dual.tar');
  await Image.saveLocal(A.backend, ['localhost:5000/bb:dual'], out);
  const B = await freshHome(t);
  const [h2] = await Image.loadLocal(B.backend, out);
  assert.equal(h2!.reference, 'localhost:5000/bb:dual');
  // The OCI path stores the saved manifest bytes: its digest is the index.json descriptor's.
  const idx = JSON.parse(run('tar', ['xOf', out, 'index.json'])) as { manifests: { digest: string }[] };
  assert.equal(h2!.manifestDigest, idx.manifests[0]!.digest);
  assert.equal(
    rows<{ media_type: string }>(B.home, 'SELECT media_type FROM manifest')[0]!.media_type,
    'application/vnd.oci.image.manifest.v1+json',
  );
  void h;
  // buildkit style: OCI layout only, containerd name only.
  const { blobs, idx: mi } = multiarchParts();
  const amd = mi.manifests.find((m) => (m.platform as { architecture: string }).architecture === 'amd64')!;
  const bk = put(
    'buildkit.tar',
    ociArchive(blobs, {
      schemaVersion: 2,
      manifests: [{ ...amd, annotations: { 'io.containerd.image.name': 'docker.io/org/app:bk' } }],
    }),
  );
  const [h3] = await Image.loadLocal(B.backend, bk);
  assert.equal(h3!.reference, 'org/app:bk');
});

test('F6: stdin gives the same result as a path; gzip and zstd archives load', async (t) => {
  const A = await freshHome(t);
  const byPath = await Image.loadLocal(A.backend, join(OUT, 'multilayer.docker.tar'));
  const B = await freshHome(t);
  const byStream = await Image.loadLocal(B.backend, createReadStream(join(OUT, 'multilayer.docker.tar')));
  assert.deepEqual(
    byStream.map((h) => [h.reference, h.manifestDigest]),
    byPath.map((h) => [h.reference, h.manifestDigest]),
  );
  assert.deepEqual(tmpEntries(B.home), [], 'the spool is removed');
  const gz = put('multilayer.docker.tar.gz', gzipSync(readFileSync(join(OUT, 'multilayer.docker.tar'))));
  const zst = join(work.dir, 'multilayer.docker.tar.zst');
  run('zstd', ['-q', '-f', join(OUT, 'multilayer.docker.tar'), '-o', zst]);
  for (const f of [gz, zst]) {
    const C = await freshHome(t);
    const h = await Image.loadLocal(C.backend, f);
    assert.deepEqual(
      h.map((x) => [x.reference, x.manifestDigest]),
      byPath.map((x) => [x.reference, x.manifestDigest]),
      f,
    );
    assert.deepEqual(tmpEntries(C.home), []);
  }
  // msb load from stdin (a zstd stream through a real pipe).
  const D = await freshHome(t);
  const r = run('bash', [
    '-c',
    `cat '${zst}' | '${process.execPath}' --import tsx '${join(PROJECT_ROOT, 'test/helpers/msb-cli.ts')}' --home '${D.home}' load`,
  ]);
  assert.equal(r, 'Loaded image: peers/multilayer:latest\n');
});

test('F7: a changed blob → DIGEST_MISMATCH naming the member; a changed legacy layer.tar → DIGEST_MISMATCH (diffId); nothing committed', async (t) => {
  const { blobs, idx } = multiarchParts();
  const amd = idx.manifests.find((m) => (m.platform as { architecture: string }).architecture === 'amd64')!;
  const man = JSON.parse(blobs.get(amd.digest)!.toString()) as { layers: { digest: string }[] };
  const layerDigest = man.layers[0]!.digest;
  const bad = Buffer.from(blobs.get(layerDigest)!);
  flipByte(bad, bad.length >> 1, 0xff);
  blobs.set(layerDigest, bad);
  const p = put(
    'changed-blob.tar',
    ociArchive(blobs, {
      schemaVersion: 2,
      manifests: [{ ...amd, annotations: { 'io.containerd.image.name': 'x/changed:1' } }],
    }),
  );
  const A = await freshHome(t);
  const e = await rejectsCode(Image.loadLocal(A.backend, p), 'DIGEST_MISMATCH');
  assert.match(e.message, new RegExp(`blobs/sha256/${hex(layerDigest)}`));
  assert.equal(refCount(A.home), 0);
  assert.equal(manifestCount(A.home), 0);
  // Legacy layer: flip a byte inside the body of the layer member of busybox.docker.tar.
  const raw = Buffer.from(readFileSync(join(OUT, 'busybox.docker.tar')));
  const list = run('tar', ['tvf', join(OUT, 'busybox.docker.tar')]);
  const layerName = /([0-9a-f]{64}\.tar)$/m.exec(list)![1]!;
  const at = raw.indexOf(Buffer.from(layerName + '\0'));
  assert.ok(at >= 0 && at % 512 === 0);
  flipByte(raw, at + 512 + 300000, 0x01); // inside file data of the busybox binary
  const p2 = put('changed-legacy.tar', raw);
  const e2 = await rejectsCode(Image.loadLocal(A.backend, p2), 'DIGEST_MISMATCH');
  assert.equal((e2.details as { what: string }).what, 'diffId');
  assert.equal(refCount(A.home), 0);
  assert.deepEqual(tmpEntries(A.home), []);
});

test('F8: missing layer or config member, ../evil, a symlink to /etc/passwd or outside, a symlink loop → ARCHIVE_INVALID', async (t) => {
  const A = await freshHome(t);
  const layer = tar(file('hello.txt', 'hi'));
  const diff = sha(layer);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diff] } }),
  );
  const cfgName = `${hex(sha(config))}.json`;
  const mj = (layers: string[]) =>
    file('manifest.json', JSON.stringify([{ Config: cfgName, RepoTags: ['evil:1'], Layers: layers }]));
  const cases: [string, Buffer, RegExp][] = [
    ['missing layer', tar(file(cfgName, config), mj(['abc/layer.tar'])), /abc\/layer\.tar/],
    ['missing config', tar(file(`${hex(diff)}.tar`, layer), mj([`${hex(diff)}.tar`])), new RegExp(cfgName)],
    [
      '../evil',
      tar(file(cfgName, config), file('../evil', 'x'), file(`${hex(diff)}.tar`, layer), mj([`${hex(diff)}.tar`])),
      /\.\./,
    ],
    [
      'symlink /etc/passwd',
      tar(file(cfgName, config), symlink('l/layer.tar', '/etc/passwd'), mj(['l/layer.tar'])),
      /absolute/,
    ],
    [
      'symlink outside',
      tar(file(cfgName, config), symlink('l/layer.tar', '../../etc/passwd'), mj(['l/layer.tar'])),
      /outside the archive/,
    ],
    [
      'loop',
      tar(
        file(cfgName, config),
        symlink('a/layer.tar', '../b/layer.tar'),
        symlink('b/layer.tar', '../a/layer.tar'),
        mj(['a/layer.tar']),
      ),
      /hops/,
    ],
  ];
  for (const [what, buf, re] of cases) {
    const e = await rejectsCode(
      Image.loadLocal(A.backend, put(`f8-${what.replace(/\W/g, '_')}.tar`, buf)),
      'ARCHIVE_INVALID',
      re,
    );
    assert.ok(e.message.length > 0, what);
  }
  // A valid symlinked layer inside the archive loads (control).
  const ok = tar(
    file(cfgName, config),
    file(`${hex(diff)}.tar`, layer),
    symlink('id/layer.tar', `../${hex(diff)}.tar`),
    mj(['id/layer.tar']),
  );
  const h = await Image.loadLocal(A.backend, put('f8-ok.tar', ok));
  assert.deepEqual(
    h.map((x) => x.reference),
    ['evil:1'],
  );
  assert.equal(refCount(A.home), 1);
});

test('F9: a repositories-only archive and a random tar → ARCHIVE_INVALID', async (t) => {
  const A = await freshHome(t);
  const e = await rejectsCode(
    Image.loadLocal(A.backend, put('repos.tar', tar(file('repositories', '{"x":{"latest":"abc"}}')))),
    'ARCHIVE_INVALID',
    /repositories/,
  );
  assert.match(String((e.details as { hint?: string }).hint), /re-save/);
  await rejectsCode(
    Image.loadLocal(A.backend, put('random.tar', tar(file('etc/hosts', '127.0.0.1 localhost\n')))),
    'ARCHIVE_INVALID',
    /not a docker-save or OCI-layout archive/,
  );
  await rejectsCode(Image.loadLocal(A.backend, put('garbage.bin', Buffer.alloc(4096, 7))), 'ARCHIVE_INVALID');
});

test('F10: RepoTags null needs -t; -t on a multi-image archive is INVALID_ARGUMENT; two images claiming one tag → ARCHIVE_INVALID', async (t) => {
  const A = await freshHome(t);
  const nul = put('nulltags.tar', dockerArchive([{ repoTags: null, content: 'a' }]));
  await rejectsCode(Image.loadLocal(A.backend, nul), 'ARCHIVE_INVALID', /pass the tag option/);
  const h = await Image.loadLocal(A.backend, nul, { tag: 'named:1' });
  assert.deepEqual(
    h.map((x) => x.reference),
    ['named:1'],
  );
  const multi = put(
    'multi.tar',
    dockerArchive([
      { repoTags: ['one:1'], content: 'a' },
      { repoTags: ['two:1', 'two:2'], content: 'b' },
    ]),
  );
  await rejectsCode(Image.loadLocal(A.backend, multi, { tag: 'x:1' }), 'INVALID_ARGUMENT', /archive holds 2 images/);
  const c = await cli(['--home', A.home, 'load', '-i', multi, '-t', 'x:1']);
  assert.equal(c.status, 2);
  const both = await Image.loadLocal(A.backend, multi);
  assert.deepEqual(
    both.map((x) => x.reference),
    ['one:1', 'two:1', 'two:2'],
    'archive order: image order, then name order',
  );
  const clash = put(
    'clash.tar',
    dockerArchive([
      { repoTags: ['same:1'], content: 'a' },
      { repoTags: ['same:1'], content: 'b' },
    ]),
  );
  await rejectsCode(Image.loadLocal(A.backend, clash), 'ARCHIVE_INVALID', /two different images/);
});

test('F11: reloading an OCI archive decompresses nothing, returns the same handles and advances lastUsedAt', async (t) => {
  const A = await freshHome(t);
  const first = await load(A.backend, join(OUT, 'multilayer.oci.tar'), { tag: 'ml:re' });
  assert.ok(first.events.some((e) => e.type === 'layerMaterializeStarted'));
  await new Promise((r) => setTimeout(r, 20));
  const second = await load(A.backend, join(OUT, 'multilayer.oci.tar'), { tag: 'ml:re' });
  assert.equal(
    second.events.filter((e) => e.type === 'layerMaterializeStarted').length,
    0,
    'no layer was decompressed',
  );
  assert.ok(
    second.events.filter((e) => e.type === 'layerMaterializeComplete').every((e) => (e as { reused: boolean }).reused),
  );
  assert.deepEqual(
    second.handles.map((h) => [h.reference, h.manifestDigest]),
    first.handles.map((h) => [h.reference, h.manifestDigest]),
  );
  assert.equal(second.handles[0]!.createdAt.getTime(), first.handles[0]!.createdAt.getTime());
  assert.ok(second.handles[0]!.lastUsedAt.getTime() > first.handles[0]!.lastUsedAt.getTime());
});

test('F12: a docker archive gives the same synthetic manifest digest in two homes; re-pointing a tag leaves a pinned sandbox alone', async (t) => {
  const A = await freshHome(t);
  const B = await freshHome(t);
  const [a] = await Image.loadLocal(A.backend, join(OUT, 'multilayer.docker.tar'));
  const [b] = await Image.loadLocal(B.backend, createReadStream(join(OUT, 'multilayer.docker.tar')));
  assert.equal(a!.manifestDigest, b!.manifestDigest);
  // The synthetic manifest is the documented compact, key-sorted JSON.
  const raw = rows<{ raw: Buffer }>(A.home, 'SELECT raw FROM manifest')[0]!.raw.toString();
  assert.match(
    raw,
    /^\{"config":\{"digest":"sha256:[0-9a-f]{64}","mediaType":"application\/vnd\.oci\.image\.config\.v1\+json","size":\d+\},"layers":\[\{"digest":/,
  );
  assert.match(raw, /"mediaType":"application\/vnd\.oci\.image\.manifest\.v1\+json","schemaVersion":2\}$/);
  assert.equal(sha(raw), a!.manifestDigest);
  const v1 = put('app-v1.tar', dockerArchive([{ repoTags: ['app:1'], content: 'one' }]));
  const v2 = put('app-v2.tar', dockerArchive([{ repoTags: ['app:1'], content: 'two' }]));
  const [h1] = await Image.loadLocal(A.backend, v1);
  const sb = await Sandbox.createLocal(A.backend, 'sb-f12', { image: 'app:1' });
  assert.equal(sb.manifestDigest, h1!.manifestDigest);
  const [h2] = await Image.loadLocal(A.backend, v2);
  assert.notEqual(h2!.manifestDigest, h1!.manifestDigest);
  assert.equal(h2!.createdAt.getTime(), h1!.createdAt.getTime(), 're-pointing keeps createdAt');
  assert.equal((await Sandbox.getLocal(A.backend, 'sb-f12')).manifestDigest, h1!.manifestDigest);
  assert.deepEqual(await indexProblems(A.home), []);
  assert.ok(existsSync(sb.rootfs.vmdkPath));
});

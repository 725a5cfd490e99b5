/**
 * export and mount (docs/storage.md §12–§13): the tar `Image.export` writes from our own artifacts,
 * extracted by GNU tar, lists like `umoci unpack` of the same image for every fixture image (the
 * one listing program of the guest tests, msb-tree, on both sides); it is byte-stable; a damaged
 * artifact is refused before a byte is written. The kernel mount of the fsmeta with the layer
 * files as its devices shows that same tree; umount releases every loop device; a non-root caller
 * and a directory msb did not mount are refused.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, truncateSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Image, LocalBackend } from '../../src/index.js';
import { ensureImages, ensureRegistry, runStatus, tempDir } from '../helpers/env.js';
import { gnuTarExtract } from '../helpers/compare.js';
import {
  assertSameListing,
  conttypeReference,
  guestHarness,
  sh,
  umociReference,
  type Reference,
} from '../helpers/guest.js';
import { msbArgv } from '../helpers/pull-env.js';

const fx = ensureImages();
const reg = ensureRegistry('noauth');
const h = guestHarness();
const work = tempDir('msb-export-');
let backend: LocalBackend | null = null;
after(async () => {
  await backend?.close();
  work.cleanup();
});
async function b(): Promise<LocalBackend> {
  backend ??= await LocalBackend.builder().home(join(work.dir, 'home')).build();
  return backend;
}

const refs = new Map<string, Promise<Reference>>();
function umoci(tag: string): Promise<Reference> {
  if (!refs.has(tag)) refs.set(tag, umociReference(h, fx.oci, tag, join(work.dir, 'umoci')));
  return refs.get(tag)!;
}

interface Case {
  name: string;
  /** the reference to export, after `get` put it in the cache */
  get: () => Promise<string>;
  reference: () => Promise<Reference>;
}
const pulled = (repo: string, platform?: string) => async () => {
  const r = await Image.pullLocal(await b(), `${reg.host}/${repo}`, platform ? { platform } : {});
  return r.canonicalReference;
};
const CASES: Case[] = [
  { name: 'busybox', get: pulled('peers/busybox'), reference: () => umoci('busybox') },
  { name: 'busybox-arm64', get: pulled('peers/busybox-arm64', 'linux/arm64'), reference: () => umoci('busybox-arm64') },
  { name: 'multiarch (amd64)', get: pulled('peers/multiarch', 'linux/amd64'), reference: () => umoci('busybox') },
  { name: 'multilayer (OCI, gzip)', get: pulled('peers/multilayer'), reference: () => umoci('multilayer') },
  { name: 'multilayer (zstd)', get: pulled('peers/multilayer:zstd'), reference: () => umoci('multilayer') },
  { name: 'multilayer (docker v2s2)', get: pulled('peers/multilayer:v2s2'), reference: () => umoci('multilayer') },
  { name: 'edge-dup', get: pulled('peers/edge-dup'), reference: () => umoci('edge-dup') },
  { name: 'edge-uncompressed', get: pulled('peers/edge-uncompressed'), reference: () => umoci('edge-uncompressed') },
  { name: 'edge-sparse', get: pulled('peers/edge-sparse'), reference: () => umoci('edge-sparse') },
  { name: 'edge-conttype', get: pulled('peers/edge-conttype'), reference: () => conttypeReference(h, fx, work.dir) },
  {
    name: 'multilayer (docker-archive, loaded)',
    get: async () => {
      const [handle] = await Image.loadLocal(await b(), join(fx.dir, 'out', 'multilayer.docker.tar'), {
        tag: 'loaded/multilayer:1',
      });
      return handle!.canonicalReference;
    },
    reference: () => umoci('multilayer'),
  },
];

let n = 0;
/** Exports `ref`, extracts it with GNU tar as root, returns msb-tree's listing of the result. */
async function exportedListing(ref: string): Promise<{ listing: string; tar: string }> {
  const tar = join(work.dir, `export-${++n}.tar`);
  await Image.exportLocal(await b(), ref, tar);
  const dir = join(work.dir, `extract-${n}`);
  gnuTarExtract(tar, dir);
  return { listing: await sh(h.msbTree, [dir]), tar };
}

test("export of every fixture image equals umoci unpack's rootfs, and is byte-stable", async (t) => {
  for (const c of CASES) {
    await t.test(c.name, async () => {
      const ref = await c.get();
      const [{ listing, tar }, umociRef] = await Promise.all([exportedListing(ref), c.reference()]);
      assertSameListing(listing, umociRef, `${c.name}: export`);
      // Byte-stable: a second export, and one to a stream, are the same bytes.
      const again = join(work.dir, `again-${n}.tar`);
      await Image.exportLocal(await b(), ref, again);
      assert.ok(readFileSync(again).equals(readFileSync(tar)), `${c.name}: two exports differ`);
    });
  }
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  const r = await Image.exportLocal(await b(), `${reg.host}/peers/edge-dup`, stream);
  const file = join(work.dir, 'dup-file.tar');
  await Image.exportLocal(await b(), `${reg.host}/peers/edge-dup`, file);
  assert.ok(Buffer.concat(parts).equals(readFileSync(file)));
  assert.equal(r.bytesWritten, readFileSync(file).length);
});

test('export reads our artifacts: a damaged fsmeta is CACHE_CORRUPT and nothing is written', async () => {
  const bb = await b();
  const img = await Image.pullLocal(bb, `${reg.host}/peers/busybox`);
  const out = join(work.dir, 'never.tar');
  truncateSync(img.artifacts.fsmetaPath, lstatSync(img.artifacts.fsmetaPath).size - 4096);
  await assert.rejects(Image.exportLocal(bb, img.canonicalReference, out), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'CACHE_CORRUPT');
    assert.match(e.message!, /verify\(\{ repair: true \}\)/);
    return true;
  });
  assert.equal(existsSync(out), false);
  assert.deepEqual(
    readdirSync(work.dir).filter((x) => x.startsWith('never.tar')),
    [],
    'no partial output left',
  );
  const fixed = await Image.verifyLocal(bb, img.canonicalReference, { repair: true });
  assert.equal(fixed.ok, true);
  await assert.rejects(Image.exportLocal(bb, 'nosuch/image:1', out), { code: 'IMAGE_NOT_FOUND' });
});

/** Loop devices whose backing file is in `dir`. */
function loopsBacking(dir: string): string[] {
  const out: string[] = [];
  for (const l of readdirSync('/sys/block').filter((x) => x.startsWith('loop'))) {
    try {
      if (readFileSync(`/sys/block/${l}/loop/backing_file`, 'utf8').startsWith(dir)) out.push(l);
    } catch {
      /* an unused loop device */
    }
  }
  return out;
}

test("mount shows the export's tree; umount releases every loop device; refusals", async () => {
  const bb = await b();
  const ref = `${reg.host}/peers/multilayer`;
  await Image.pullLocal(bb, ref);
  const { listing: exported } = await exportedListing(ref);
  const mnt = join(work.dir, 'mnt');
  mkdirSync(mnt);
  const cache = (await bb._open('write')).cacheDir;
  const m = await Image.mountLocal(bb, ref, mnt);
  try {
    assert.equal(m.devices.length, 5);
    const mounted = await sh(h.msbTree, [mnt]);
    assert.deepEqual(mounted.split('\n'), exported.split('\n'), 'the mounted tree equals the exported one');
    assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${mnt} ro,.* - erofs `));
    // A directory msb did not mount is refused; so is an ordinary directory.
    await assert.rejects(Image.unmount(work.dir), { code: 'INVALID_ARGUMENT' });
    // Not root: refused before anything is touched (exit 6, UNSUPPORTED).
    const r = runStatus('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      ...msbArgv(),
      'image',
      'mount',
      ref,
      mnt,
    ]);
    assert.equal(r.status, 6, r.stderr);
    assert.match(r.stderr, /needs root/);
  } finally {
    await Image.unmount(mnt);
  }
  assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${mnt} `));
  assert.deepEqual(loopsBacking(cache), [], 'no loop device is left on a cache file');
  await assert.rejects(Image.unmount(mnt), { code: 'INVALID_ARGUMENT' });
});

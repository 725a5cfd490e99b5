/**
 * Guest truth: every image the pull tests use, and one loaded from an archive, boots as the ONLY
 * disk of a real Linux 6.12 guest (qemu TCG microvm, scripts/guest/), which must see exactly the OCI
 * merge and run the image's binaries:
 *  - /dev/vda mounts read-only as EROFS;
 *  - the guest's listing of it (msb-tree: path, type, mode incl. suid/sgid/sticky, uid, gid, nlink,
 *    size + sha256 of every regular file, hardlink group, symlink target, rdev, mtime, every xattr),
 *    checked against the checksum the guest printed, equals the listing of `umoci unpack`'s rootfs
 *    of the same image (the one exception is documented at assertSameListing);
 *  - `chroot /mnt/root /bin/sh -c 'echo hi'` prints hi (the image's amd64 shell runs from EROFS);
 *  - an overlayfs with a tmpfs upper over the EROFS root takes a write and a delete (a whiteout in
 *    the upper, the lower file unchanged), as a sandbox uses it.
 * Negative control: the same boot of a disk whose fsmeta copy maps a layer one block off fails.
 * scripts/boot-check.sh (the user's "does my image boot?") runs once too.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, LocalBackend } from '../../src/index.js';
import { debianLayer } from '../../bench/convert.js';
import {
  ensureImages,
  ensureRegistry,
  FIXTURE_ROOT,
  PROJECT_ROOT,
  run,
  tempDir,
  treeManifest,
} from '../helpers/env.js';
import {
  asTreeManifest,
  assertSameListing,
  bootGuest,
  conttypeReference,
  describeRun,
  guestHarness,
  misplacedDeviceVmdk,
  parseListing,
  sh,
  umociReference,
  type GuestReport,
  type Reference,
} from '../helpers/guest.js';

const reg = ensureRegistry('noauth');
const fx = ensureImages();
const h = guestHarness();
const work = tempDir('msb-guest-');
const JOBS = Number(process.env.MSB_GUEST_JOBS ?? Math.min(2, availableParallelism()));
const backends: LocalBackend[] = [];
after(async () => {
  for (const b of backends) await b.close();
  work.cleanup();
});

async function backend(name: string): Promise<LocalBackend> {
  const b = await LocalBackend.builder().home(join(work.dir, name)).build();
  backends.push(b);
  return b;
}
const pulls = backend('pulls');

/** Pulls `repo` from the shared registry through the public API; the VMDK the guest boots. */
async function pulled(repo: string): Promise<string> {
  const r = await Image.pullLocal(await pulls, `${reg.host}/${repo}`);
  return r.artifacts.vmdkPath;
}

/** One umoci reference per layout:tag, shared by the cases that need it. */
const refs = new Map<string, Promise<Reference>>();
function umoci(layout: string, tag: string): Promise<Reference> {
  const key = `${layout}:${tag}`;
  if (!refs.has(key)) refs.set(key, umociReference(h, layout, tag, join(work.dir, 'umoci')));
  return refs.get(key)!;
}

/**
 * The Debian minbase image (built once per machine by the benchmark's fixture, as erofs-debian
 * does) pushed once to the shared registry under a repository of this test's own.
 */
function debianRepo(): { layout: string; repo: string } {
  debianLayer();
  const layout = join(FIXTURE_ROOT, 'bench-images', 'oci');
  const repo = 'guest/debian-minbase';
  const marker = join(reg.base, 'guest-debian-minbase.pushed');
  if (!existsSync(marker)) {
    run('flock', [
      join(FIXTURE_ROOT, 'guest-debian-push.lock'),
      'bash',
      '-c',
      `[ -f '${marker}' ] || { skopeo copy -q --dest-tls-verify=false --preserve-digests 'oci:${layout}:debian-minbase' 'docker://${reg.host}/${repo}:latest' && touch '${marker}'; }`,
    ]);
  }
  return { layout, repo };
}

/** edge-conttype's reference (test/helpers/guest.ts `conttypeReference`). */
const conttypeRef = () => conttypeReference(h, fx, work.dir);

/** An image loaded from a docker-save archive, in a home of its own. */
async function loadedFromArchive(): Promise<string> {
  const b = await backend('archive');
  const [handle] = await Image.loadLocal(b, join(fx.dir, 'out', 'multilayer.docker.tar'));
  return (await Image.inspectLocal(b, handle!.reference)).artifacts.vmdkPath;
}

interface Case {
  name: string;
  disk: () => Promise<string>;
  reference: () => Promise<Reference>;
}

const CASES: Case[] = [
  // The largest first: it overlaps the most with the others when two guests run at once.
  {
    name: 'debian-minbase',
    disk: () => pulled(debianRepo().repo),
    reference: () => umoci(debianRepo().layout, 'debian-minbase'),
  },
  { name: 'busybox', disk: () => pulled('peers/busybox'), reference: () => umoci(fx.oci, 'busybox') },
  // multiarch's amd64 child is the busybox image.
  { name: 'multiarch (amd64)', disk: () => pulled('peers/multiarch'), reference: () => umoci(fx.oci, 'busybox') },
  {
    name: 'multilayer (OCI, gzip)',
    disk: () => pulled('peers/multilayer'),
    reference: () => umoci(fx.oci, 'multilayer'),
  },
  {
    name: 'multilayer (docker v2s2)',
    disk: () => pulled('peers/multilayer:v2s2'),
    reference: () => umoci(fx.oci, 'multilayer'),
  },
  {
    name: 'multilayer (zstd)',
    disk: () => pulled('peers/multilayer:zstd'),
    reference: () => umoci(fx.oci, 'multilayer'),
  },
  { name: 'edge-dup', disk: () => pulled('peers/edge-dup'), reference: () => umoci(fx.oci, 'edge-dup') },
  {
    name: 'edge-uncompressed',
    disk: () => pulled('peers/edge-uncompressed'),
    reference: () => umoci(fx.oci, 'edge-uncompressed'),
  },
  { name: 'edge-sparse', disk: () => pulled('peers/edge-sparse'), reference: () => umoci(fx.oci, 'edge-sparse') },
  { name: 'edge-conttype', disk: () => pulled('peers/edge-conttype'), reference: conttypeRef },
  {
    name: 'multilayer (docker-archive, loaded)',
    disk: loadedFromArchive,
    reference: () => umoci(fx.oci, 'multilayer'),
  },
];

/** Every claim of the file header for one booted image. */
function checkGuest(name: string, r: GuestReport, ref: Reference): void {
  const ctx = `${name}\n${describeRun(r)}`;
  assert.equal(r.exitCode, 0, ctx);
  assert.ok(r.done, ctx);
  assert.equal(r.kernel, h.kernel, ctx);
  assert.match(r.kernel!, /^6\.12\./);
  assert.ok(r.mounted, ctx);
  assert.match(r.mountDetail, /^\/dev\/vda \/mnt\/root erofs ro,/, ctx);
  assert.equal(r.listingProblem, null, ctx);
  assertSameListing(r.listing!, ref, name);
  assert.deepEqual(r.chroot, { rc: 0, out: 'hi' }, ctx);
  const o = r.overlay;
  assert.ok(o, ctx);
  const deleted = parseListing(ref.listing).get(o.del!);
  assert.ok(deleted?.type === 'file', `${name}: the overlay deleted ${o.del}, a regular file of the image\n${ctx}`);
  assert.deepEqual(
    o,
    {
      write: 'ok',
      del: o.del,
      gone: 'yes',
      whiteout: 'character_special_file:0:0',
      lower_sha256: deleted.fields.get('sha256'),
    },
    ctx,
  );
}

const disks = new Map<string, Promise<string>>();
const diskOf = (c: Case) => {
  if (!disks.has(c.name)) disks.set(c.name, c.disk());
  return disks.get(c.name)!;
};

test("msb-tree (the listing the guest prints) agrees with tree-manifest.py on umoci's multilayer rootfs", async () => {
  const ref = await umoci(fx.oci, 'multilayer');
  const py = treeManifest(ref.rootfs);
  assert.deepEqual(asTreeManifest(ref.listing, true), asTreeManifest(py, false));
  // The fixture's hard cases are in the listing at all (an empty-handed helper would agree too).
  for (const want of [
    / xattr\.security\.capability=01000002/,
    / mode=4755 /,
    / mode=1777 /,
    / rdev=\d+,\d{3,} /,
    / link=\//,
    / xattr\.user\.binary=00ff10/,
  ]) {
    assert.match(ref.listing, want);
  }
});

/** The user's script: pulls with the CLI into its own home, boots, and passes; its saved listing is umoci's. */
async function bootCheckScript(st: { diagnostic(s: string): void }): Promise<void> {
  const listing = join(work.dir, 'boot-check.listing');
  const r = await sh('bash', [
    join(PROJECT_ROOT, 'scripts', 'boot-check.sh'),
    '--home',
    join(work.dir, 'cli'),
    '--listing',
    listing,
    `${reg.host}/peers/busybox`,
  ]).catch((e: { stdout?: string; stderr?: string }) => assert.fail(`boot-check.sh failed:\n${e.stdout}\n${e.stderr}`));
  assert.match(r, /^boots: yes$/m, r);
  for (const check of ['mount', 'listing', 'chroot', 'overlay'])
    assert.match(r, new RegExp(`^  ok    ${check}`, 'm'), r);
  assertSameListing(readFileSync(listing, 'latin1'), await umoci(fx.oci, 'busybox'), 'boot-check.sh busybox');
  st.diagnostic(r.split('\n').find((l) => l.startsWith('guest:'))!);
}

test(`every image boots as the only disk of a 6.12 guest that sees umoci's merge (${JOBS} guests at a time)`, {
  concurrency: JOBS,
}, async (t) => {
  const t0 = performance.now();
  await Promise.all([
    ...CASES.map((c) =>
      t.test(c.name, async (st) => {
        const [disk, ref] = await Promise.all([diskOf(c), c.reference()]);
        const r = await bootGuest(h, disk, join(work.dir, 'reports'));
        checkGuest(c.name, r, ref);
        st.diagnostic(
          `${c.name}: ${parseListing(r.listing!).size} entries, guest boot ${(r.wallMs / 1000).toFixed(1)} s wall`,
        );
      }),
    ),
    t.test('scripts/boot-check.sh REF (the user\'s "does my image boot?")', bootCheckScript),
  ]);
  t.diagnostic(`${CASES.length} images in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

test('negative control: a device table that maps a layer one block off fails the guest check', async (t) => {
  const c = CASES.find((x) => x.name === 'multilayer (OCI, gzip)')!;
  const [disk, ref] = await Promise.all([diskOf(c), c.reference()]);
  const bad = misplacedDeviceVmdk(disk, join(work.dir, 'negative'));
  // The copy differs from the original only in slot 0's mapped_blkaddr and the superblock checksum.
  const orig = readFileSync(/^RW \d+ FLAT "([^"]+)" 0$/m.exec(readFileSync(disk, 'utf8'))![1]!);
  const copy = readFileSync(bad.fsmeta);
  const diff = [...copy.keys()].filter((i) => copy[i] !== orig[i]);
  assert.ok(
    diff.length > 0 && diff.every((i) => bad.changed.some(([a, b]) => i >= a && i < b)),
    `changed bytes: ${diff}`,
  );
  const r = await bootGuest(h, bad.vmdk, join(work.dir, 'reports'));
  let why: string | null = null;
  if (!r.mounted) why = `mount failed: ${r.mountDetail}`;
  else if (r.listing === null) why = `no listing: ${r.listingProblem}`;
  else {
    try {
      checkGuest('negative control', r, ref);
    } catch (e) {
      why = (e as Error).message.split('\n')[0]!;
    }
  }
  assert.ok(why, `the guest check passed on a disk whose device table is wrong: it cannot fail\n${describeRun(r)}`);
  t.diagnostic(`the guest check failed as it should: ${why} (the image's shell: ${JSON.stringify(r.chroot)})`);
});

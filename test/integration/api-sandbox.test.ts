/**
 * Sandbox.create end to end against the real registry R0 (docs/api.md §4; acceptance A11, A13, A14,
 * A23, B1, B2 and G4's pin flow): a real pull, a validated rootfs, pin replacement, and the
 * remove/prune life cycle of pinned images with real EROFS/VMDK artifacts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  Image,
  ImageInUseError,
  InvalidArgumentError,
  LocalBackend,
  PinNotFoundError,
  Sandbox,
  Snapshot,
  type SandboxHandle,
} from '../../src/index.js';
import { cidOf, diffIdTag, validateFsmetaFile, validateLayerFile, validateVmdkFile } from '../../src/stitch/index.js';
import { digestUuid } from '../../src/util/digest.js';
import { cli } from '../helpers/msb-cli.js';
import { ensureRegistry, tempDir } from '../helpers/env.js';

const reg = ensureRegistry('noauth');
const BUSYBOX = `${reg.host}/peers/busybox`;
const MULTI = `${reg.host}/peers/multilayer`;

async function rootfsProblems(s: SandboxHandle): Promise<string[]> {
  const problems: string[] = [];
  const sizes = s.rootfs.layers.map((l) => lstatSync(l.path).size);
  for (const l of s.rootfs.layers) {
    const why = await validateLayerFile(l.path, { uuid: digestUuid(l.diffId) });
    if (why) problems.push(`${l.path}: ${why}`);
  }
  const fw = await validateFsmetaFile(s.rootfs.fsmetaPath, {
    uuid: digestUuid(s.manifestDigest),
    layers: s.rootfs.layers.map((l, i) => ({ sizeBytes: sizes[i]!, tag: diffIdTag(l.diffId) })),
  });
  if (fw) problems.push(`fsmeta: ${fw}`);
  const vw = await validateVmdkFile(s.rootfs.vmdkPath, {
    paths: [s.rootfs.fsmetaPath, ...s.rootfs.layers.map((l) => l.path)],
    sizes: [lstatSync(s.rootfs.fsmetaPath).size, ...sizes],
    cid: cidOf(s.manifestDigest),
  });
  if (vw) problems.push(`vmdk: ${vw}`);
  return problems;
}

test('A23: Sandbox.create pulls, validates and pins; re-creating a name re-pins atomically; bad names and unknown pins', async (t) => {
  const { dir, cleanup } = tempDir();
  const b = LocalBackend.lazy({ home: dir });
  t.after(async () => {
    await b.close();
    cleanup();
  });
  const web = await Sandbox.createLocal(b, 'web', { image: BUSYBOX });
  assert.equal(web.name, 'web');
  assert.equal(web.reference, `${BUSYBOX}:latest`);
  assert.deepEqual(await rootfsProblems(web), []);
  const detail = await Image.inspectLocal(b, BUSYBOX);
  assert.equal(web.manifestDigest, detail.handle.manifestDigest);
  assert.deepEqual(web.rootfs, detail.artifacts);
  assert.deepEqual(web.config, detail.config);
  assert.ok(web.config.env.length > 0 || web.config.cmd !== null);
  assert.equal(web.platform.os, 'linux');
  assert.deepEqual(detail.pins, [{ kind: 'sandbox', name: 'web' }]);
  assert.deepEqual(JSON.parse(JSON.stringify(await Sandbox.getLocal(b, 'web'))), JSON.parse(JSON.stringify(web)));

  const again = await Sandbox.createLocal(b, 'web', { image: MULTI });
  assert.notEqual(again.manifestDigest, web.manifestDigest);
  assert.equal(again.rootfs.layers.length, 5);
  assert.deepEqual(
    again.rootfs.layers.map((l) => l.position),
    [0, 1, 2, 3, 4],
  );
  assert.deepEqual(await rootfsProblems(again), []);
  const store = await b._open('read');
  const pins = store!.index.db.prepare("SELECT manifest_digest FROM pin WHERE kind = 'sandbox'").all() as {
    manifest_digest: string;
  }[];
  assert.deepEqual(pins, [{ manifest_digest: again.manifestDigest }]);
  assert.equal(
    (store!.index.db.prepare('SELECT COUNT(*) AS n FROM lease').get() as { n: number }).n,
    0,
    'the create lease is released',
  );
  assert.deepEqual(
    (await Sandbox.listLocal(b)).map((s) => s.name),
    ['web'],
  );

  await assert.rejects(Sandbox.createLocal(b, 'a/b', { image: BUSYBOX }), InvalidArgumentError);
  await assert.rejects(Sandbox.getLocal(b, 'zzz'), PinNotFoundError);
});

test('B1/B2: a pulled 5-layer image leaves exactly its artifacts, the marker and lock files; raw manifest and config hash to their digests', async (t) => {
  const { dir, cleanup } = tempDir();
  const b = LocalBackend.lazy({ home: dir });
  t.after(async () => {
    await b.close();
    cleanup();
  });
  const r = await Image.pullLocal(b, MULTI);
  const cache = join(dir, 'cache');
  assert.deepEqual(readdirSync(cache).sort(), ['fsmeta', 'layers', 'locks', 'msb-cache.json', 'tmp', 'vmdk']);
  assert.deepEqual(
    readdirSync(join(cache, 'layers')).sort(),
    r.layers.map((l) => l.diffId.replace(':', '_') + '.erofs').sort(),
  );
  assert.deepEqual(readdirSync(join(cache, 'fsmeta')), [r.manifestDigest.replace(':', '_') + '.erofs']);
  assert.deepEqual(readdirSync(join(cache, 'vmdk')), [r.manifestDigest.replace(':', '_') + '.vmdk']);
  assert.deepEqual(readdirSync(join(cache, 'tmp')), []);
  assert.ok(readdirSync(join(cache, 'locks')).every((n) => /^(ref|layer|image)-[0-9a-f]{3}\.lock$|^gc\.lock$/.test(n)));
  const store = await b._open('read');
  const m = store!.index.db
    .prepare('SELECT raw, config_digest FROM manifest WHERE digest = ?')
    .get(r.manifestDigest) as { raw: Buffer; config_digest: string };
  assert.equal('sha256:' + createHash('sha256').update(m.raw).digest('hex'), r.manifestDigest);
  const c = store!.index.db.prepare('SELECT raw FROM config WHERE digest = ?').get(m.config_digest) as { raw: Buffer };
  assert.equal('sha256:' + createHash('sha256').update(c.raw).digest('hex'), m.config_digest);
  // A6 with real artifacts
  let alloc = lstatSync(r.artifacts.fsmetaPath).blocks * 512 + lstatSync(r.artifacts.vmdkPath).blocks * 512;
  for (const p of new Set(r.artifacts.layers.map((l) => l.path))) alloc += lstatSync(p).blocks * 512;
  assert.equal(r.handle.sizeBytes, alloc);
});

test('A13/A14/G4: pinned by sandbox and snapshot: rmi exits 4; -f untags and keeps a valid rootfs; after the pins go, rmi and prune reclaim everything', async (t) => {
  const { dir, cleanup } = tempDir();
  const b = LocalBackend.lazy({ home: dir });
  t.after(async () => {
    await b.close();
    cleanup();
  });
  const web = await Sandbox.createLocal(b, 'web', { image: BUSYBOX });
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + 'a'.repeat(64),
    imageManifestDigest: web.manifestDigest,
    name: 'nightly',
  });
  await assert.rejects(
    Image.removeLocal(b, BUSYBOX),
    (e: unknown) =>
      e instanceof ImageInUseError &&
      JSON.stringify(e.pins) ===
        JSON.stringify([
          { kind: 'sandbox', name: 'web' },
          { kind: 'snapshot', name: 'nightly' },
        ]),
  );
  await b.close();
  const rmi = await cli(['--home', dir, 'rmi', BUSYBOX]);
  assert.equal(rmi.status, 4);
  assert.match(rmi.stderr, /sandbox 'web', snapshot 'nightly'/);
  // Untag with force: the pinned rootfs stays valid.
  await Image.tagLocal(b, BUSYBOX, 'keep:me');
  const forced = await Image.removeLocal(b, BUSYBOX, { force: true });
  assert.deepEqual(forced.deletedManifests, []);
  assert.deepEqual(await rootfsProblems(await Sandbox.getLocal(b, 'web')), []);
  await b.close();
  assert.equal((await cli(['--home', dir, 'sandbox', 'rm', 'web'])).status, 0);
  assert.equal((await cli(['--home', dir, 'snapshot', 'rm', 'nightly'])).status, 0);
  const ok = await cli(['--home', dir, 'rmi', 'keep:me']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^Untagged: keep:me\nDeleted: sha256:/);
  for (const p of [web.rootfs.vmdkPath, web.rootfs.fsmetaPath, ...web.rootfs.layers.map((l) => l.path)])
    assert.equal(existsSync(p), false, p);
  const p = await Image.pruneLocal(b);
  assert.deepEqual(p.errors, []);
});

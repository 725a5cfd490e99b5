/**
 * Image arguments as docker users write them (issue 10 items 4, 5, 9; docs/api.md §2.0, §2.4, §3):
 * full digests with or without `sha256:`, unique hex prefixes, ambiguity listing the candidates,
 * `REPO@digest` of a manifest cached by tag, untagged manifests by ID and in `list({all})`, the
 * several-references rule of remove, `pinnedBy`, and frozen results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Image,
  ImageNotFoundError,
  ImageReferencedError,
  InvalidArgumentError,
  LocalBackend,
  Snapshot,
} from '../../src/index.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { tempDir } from '../helpers/env.js';

async function home(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  t.after(() => b.close());
  return { dir, b };
}

/** A copy of manifest `digest` under another digest (same config and sizes): a second image ID. */
async function cloneManifest(b: LocalBackend, digest: string, newDigest: string): Promise<void> {
  const store = await b._open('write');
  store.index.db
    .prepare(
      `INSERT INTO manifest (digest, media_type, raw, config_digest, os, architecture, variant, layer_count, source,
        fsmeta_bytes, vmdk_bytes, size_bytes, created_at, materialized_at)
       SELECT ?, media_type, raw, config_digest, os, architecture, variant, layer_count, source, fsmeta_bytes,
        vmdk_bytes, size_bytes, created_at, materialized_at FROM manifest WHERE digest = ?`,
    )
    .run(newDigest, digest);
}

test('a full digest with or without sha256:, and a unique hex prefix of 4+ digits, name the image; 3 digits do not', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['python:3.12'], layers: ['p'] });
  const hex = img.manifestDigest.slice(7);
  for (const arg of [img.manifestDigest, hex, hex.slice(0, 12), hex.slice(0, 4), `sha256:${hex.slice(0, 12)}`]) {
    assert.equal((await Image.getLocal(b, arg)).reference, 'python:3.12', arg);
    assert.equal((await Image.inspectLocal(b, arg)).handle.manifestDigest, img.manifestDigest, arg);
  }
  await assert.rejects(Image.getLocal(b, hex.slice(0, 3)), ImageNotFoundError);
  await assert.rejects(Image.getLocal(b, 'ffff'.replace(/./g, hex[0] === 'f' ? 'e' : 'f')), (e: unknown) => {
    assert.ok(e instanceof ImageNotFoundError);
    assert.match(e.message, /^image (ffff|eeee) not found$/);
    return true;
  });
  // A cached name that is also hex wins over the ID (docker looks names up first).
  const named = await publishFakeImage(b, { refs: [hex.slice(0, 6)], layers: ['n'] });
  assert.equal((await Image.getLocal(b, hex.slice(0, 6))).manifestDigest, named.manifestDigest);
  assert.equal((await Image.getLocal(b, `sha256:${hex.slice(0, 6)}`)).manifestDigest, img.manifestDigest);
});

test('an ambiguous prefix is INVALID_ARGUMENT listing the candidates; a longer one resolves', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['one'], layers: ['o'] });
  const hex = img.manifestDigest.slice(7);
  const twin = `sha256:${hex.slice(0, 6)}${[...hex.slice(6)].reverse().join('')}`;
  await cloneManifest(b, img.manifestDigest, twin);
  for (const call of [Image.getLocal, Image.inspectLocal, Image.removeLocal]) {
    await assert.rejects(call(b, hex.slice(0, 5)), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.deepEqual(e.details.candidates, [img.manifestDigest, twin].sort());
      assert.match(
        e.message,
        /^image ID [0-9a-f]{5} is ambiguous: it is the start of sha256:.*, sha256:.*; give more digits$/,
      );
      return true;
    });
  }
  assert.equal((await Image.getLocal(b, hex.slice(0, 12))).reference, 'one:latest');
  // The twin has no ref: shown as an untagged handle whose reference is its digest.
  const h = await Image.getLocal(b, twin.slice(7, 19));
  assert.equal(h.reference, twin);
  assert.equal(h.canonicalReference, twin);
});

test('REPO@sha256:… finds a manifest cached by tag; another repository does not', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['127.0.0.1:5000/peers/busybox:1.36'], layers: ['b'] });
  await publishFakeImage(b, { refs: ['other:1'], layers: ['x'] });
  const h = await Image.getLocal(b, `127.0.0.1:5000/peers/busybox@${img.manifestDigest}`);
  assert.equal(h.reference, '127.0.0.1:5000/peers/busybox:1.36');
  const d = await Image.inspectLocal(b, `127.0.0.1:5000/peers/busybox:whatever@${img.manifestDigest}`);
  assert.equal(d.handle.manifestDigest, img.manifestDigest);
  await assert.rejects(Image.getLocal(b, `other@${img.manifestDigest}`), ImageNotFoundError);
  // tag and save accept it as a source too.
  const tagged = await Image.tagLocal(b, `127.0.0.1:5000/peers/busybox@${img.manifestDigest}`, 'copy:1');
  assert.equal(tagged.manifestDigest, img.manifestDigest);
});

test('list({all}) adds untagged manifests kept by a pin; inspect works on them by ID', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['keep:1'], layers: ['k'] });
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '7'.repeat(64),
    imageManifestDigest: img.manifestDigest,
    name: 'n',
  });
  await Image.removeLocal(b, 'keep:1', { force: true });
  assert.deepEqual(await Image.listLocal(b), []);
  const all = await Image.listLocal(b, { all: true });
  assert.equal(all.length, 1);
  assert.equal(all[0]!.reference, img.manifestDigest);
  const d = await Image.inspectLocal(b, img.manifestDigest.slice(7, 15));
  assert.equal(d.handle.reference, img.manifestDigest);
  assert.deepEqual(d.pins, [{ kind: 'snapshot', name: 'n' }]);
});

test('remove: an ID naming several refs needs force (nothing untagged before); a name untags one; pinnedBy says what keeps it', async (t) => {
  const { b } = await home(t);
  const img = await publishFakeImage(b, { refs: ['a:1', 'b:1', 'a:2'], layers: ['m'] });
  for (const arg of [img.manifestDigest, img.manifestDigest.slice(7, 19), `a@${img.manifestDigest}`]) {
    await assert.rejects(Image.removeLocal(b, arg), (e: unknown) => {
      assert.ok(e instanceof ImageReferencedError, arg);
      assert.equal(e.code, 'IMAGE_REFERENCED');
      assert.equal(e.details.option, 'force');
      return true;
    });
  }
  assert.equal((await Image.listLocal(b)).length, 3);
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '8'.repeat(64),
    imageManifestDigest: img.manifestDigest,
    name: 'snap',
  });
  const one = await Image.removeLocal(b, 'b:1');
  assert.deepEqual(one.untagged, ['b:1']);
  assert.deepEqual(one.pinnedBy, [{ kind: 'snapshot', name: 'snap' }]);
  // REPO@digest names the refs of that repository only.
  const repo = await Image.removeLocal(b, `a@${img.manifestDigest}`, { force: true });
  assert.deepEqual([...repo.untagged].sort(), ['a:1', 'a:2']);
  assert.deepEqual(repo.deletedManifests, []);
});

test('results are frozen: handles, details (deeply), remove and prune reports, disk usage', async (t) => {
  const { b } = await home(t);
  await publishFakeImage(b, { refs: ['f:1', 'f:2'], layers: ['f'] });
  const [h] = await Image.listLocal(b);
  assert.ok(Object.isFrozen(h));
  assert.throws(() => {
    (h as unknown as { reference: string }).reference = 'x';
  }, TypeError);
  const d = await Image.inspectLocal(b, 'f:1');
  for (const o of [d, d.handle, d.config, d.layers, d.layers[0], d.artifacts, d.artifacts.layers, d.pins])
    assert.ok(Object.isFrozen(o));
  const r = await Image.removeLocal(b, 'f:1');
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.untagged));
  const p = await Image.pruneLocal(b, { dryRun: true });
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.removed.references) && Object.isFrozen(p.keptPinned));
  const du = await Image.diskUsageLocal(b);
  assert.ok(Object.isFrozen(du) && Object.isFrozen(du.images));
});

/**
 * Differential against erofs-utils 1.9.4 (acceptance D26, docs/erofs.md §10): busybox, L2 and L3 via
 * `mkfs.erofs --tar=f --aufs` and via our converter, both mounted by the kernel, give the same
 * canonical tree listing, except the root directory's mode/owner/mtime (1.9.4 makes it 0777) and
 * two whiteout details of 1.9.4's --aufs that overlayfs ignores: it adds an empty
 * `trusted.overlay.origin` to directories holding whiteouts and gives whiteouts mode 0000 (we keep
 * the header's permission bits, docs/erofs.md §6.8).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertLayer } from '../../src/erofs/convert.js';
import { ensureImages, erofsUtils, run, tempDir, treeManifest } from '../helpers/env.js';
import { fsckOk, withMount } from '../helpers/layer.js';

function busyboxBlob(oci: string): string {
  const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === 'busybox')!;
  const blob = (d: string) => join(oci, 'blobs', 'sha256', d.slice(7));
  return blob(
    (JSON.parse(readFileSync(blob(m.digest), 'utf8')) as { layers: Array<{ digest: string }> }).layers[0]!.digest,
  );
}

function normalize(listing: string): string[] {
  return listing
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      let s = l.replace(/ xattr\.trusted\.overlay\.origin=(?= |$)/, '');
      if (s.startsWith('/ dir ')) s = s.replace(/ mode=\d+ uid=\d+ gid=\d+/, '').replace(/ mtime=\S+/, '');
      if (/ chr mode=\d+ .*rdev=0,0/.test(s)) s = s.replace(/ mode=\d+/, ' mode=(whiteout)');
      return s;
    });
}

test('D26: busybox, L2, L3 — mounted trees equal mkfs.erofs --tar=f --aufs 1.9.4 (documented exceptions only)', async (t) => {
  const img = ensureImages();
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const inputs: Array<[string, string, string[]]> = [
    ['busybox', busyboxBlob(img.oci), ['--ungzip']],
    ['l2', join(img.layers, 'l2-base-pax.tar'), []],
    ['l3', join(img.layers, 'l3-nasty-pax.tar'), []],
  ];
  for (const [name, input, extra] of inputs) {
    const ours = join(dir, `${name}.ours.erofs`);
    const peer = join(dir, `${name}.mkfs.erofs`);
    await convertLayer(input, ours);
    run(erofsUtils('mkfs.erofs'), ['--quiet', `--tar=f`, '--aufs', ...extra, peer, input]);
    fsckOk(ours);
    const a = await withMount(ours, (m) => treeManifest(m));
    const b = await withMount(peer, (m) => treeManifest(m));
    assert.ok(a.split('\n').length > 10, name);
    assert.deepEqual(normalize(a), normalize(b), name);
    if (name === 'l3') assert.match(a, /xattr\.security\.capability=/);
  }
});

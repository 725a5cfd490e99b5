/**
 * Image.save (acceptance F13–F16) with real peers: skopeo reads our docker and OCI outputs,
 * umoci unpacks the OCI output to the same tree as the original image, the kernel mounts the
 * layer EROFS converted back from each saved layer tar to the same tree as the cached layer, and
 * Python's tarfile inspects the saved tars (PAX xattrs, whiteouts, opaque marker order).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Image } from '../../src/api/image.js';
import { convertLayer } from '../../src/erofs/convert.js';
import { MsbError } from '../../src/errors.js';
import { main } from '../../src/cli/main.js';
import { ensureImages, mountErofs, run, tempDir, treeManifest, umociUnpack } from '../helpers/env.js';
import { freshHome, rows, tmpEntries } from '../helpers/pull-env.js';
import { flipByte } from '../helpers/bytes.js';

const fx = ensureImages();
const OUT = join(fx.dir, 'out');
const work = tempDir('msb-archive-save-');
after(() => work.cleanup());

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const fileSha = (p: string) => sha(readFileSync(p));
let n = 0;
const out = (ext = 'tar') => join(work.dir, `out-${++n}.${ext}`);

async function rejectsCode(p: Promise<unknown>, code: string): Promise<MsbError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MsbError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** A home with multilayer (L1–L5) and busybox (L1) loaded from the skopeo oci archives. */
async function homeWithImages(t: { after(fn: () => unknown): void }) {
  const h = await freshHome(t);
  await Image.loadLocal(h.backend, join(OUT, 'multilayer.oci.tar'), { tag: 'peers/multilayer:latest' });
  await Image.loadLocal(h.backend, join(OUT, 'busybox.oci.tar'), { tag: 'peers/busybox:latest' });
  return h;
}

function extract(archive: string): string {
  const d = join(work.dir, `x-${++n}`);
  run('mkdir', ['-p', d]);
  run('tar', ['xf', archive, '-C', d]);
  return d;
}

test('F13: docker output works with skopeo inspect/copy; oci output with skopeo inspect and umoci unpack equals the original tree', async (t) => {
  const H = await homeWithImages(t);
  const d = out();
  const r = await Image.saveLocal(H.backend, ['peers/multilayer:latest'], d);
  assert.equal(r.format, 'docker');
  assert.equal(r.bytesWritten, readFileSync(d).length);
  const insp = JSON.parse(run('skopeo', ['inspect', `docker-archive:${d}`])) as {
    Layers: string[];
    Architecture: string;
  };
  assert.equal(insp.Layers.length, 5);
  assert.deepEqual(insp.Layers, r.images[0]!.diffIds);
  const layout = join(work.dir, 'copied-oci');
  run('skopeo', ['copy', '-q', `docker-archive:${d}`, `oci:${layout}:copied`]);
  assert.ok(existsSync(join(layout, 'index.json')));
  const o = out();
  await Image.saveLocal(H.backend, 'peers/multilayer:latest', o, { format: 'oci' });
  const insp2 = JSON.parse(run('skopeo', ['inspect', `oci-archive:${o}:latest`])) as { Layers: string[] };
  assert.deepEqual(insp2.Layers, r.images[0]!.diffIds);
  assert.doesNotMatch(run('tar', ['tf', o]), /manifest\.json/, 'the oci format has no manifest.json');
  const mine = umociUnpack(extract(o), 'latest', work.dir);
  const ref = umociUnpack(fx.oci, 'multilayer', join(work.dir, 'ref'));
  const strip = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('/ '))
      .join('\n');
  assert.equal(strip(treeManifest(mine, ['--no-dir-mtime'])), strip(treeManifest(ref, ['--no-dir-mtime'])));
});

test('F14: saved layer tars keep metadata, links, devices, xattrs, whiteouts and the opaque marker order; configs keep author and history', async (t) => {
  const H = await homeWithImages(t);
  const o = out();
  await Image.saveLocal(H.backend, 'peers/multilayer:latest', o, { format: 'oci' });
  const x = extract(o);
  const idx = JSON.parse(readFileSync(join(x, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const man = JSON.parse(readFileSync(join(x, 'blobs/sha256', idx.manifests[0]!.digest.slice(7)), 'utf8')) as {
    config: { digest: string };
    layers: { digest: string; mediaType: string }[];
  };
  assert.ok(man.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar'));
  const detail = await Image.inspectLocal(H.backend, 'peers/multilayer:latest');
  // Each saved layer tar, converted again, mounts to the same tree as the cached layer file.
  for (const [i, l] of man.layers.entries()) {
    const tarPath = join(x, 'blobs/sha256', l.digest.slice(7));
    assert.equal(fileSha(tarPath), l.digest);
    const img = join(work.dir, `reconv-${n}-${i}.erofs`);
    await convertLayer(tarPath, img);
    const a = mountErofs(detail.artifacts.layers[i]!.path);
    const b = mountErofs(img);
    try {
      assert.equal(treeManifest(b.dir), treeManifest(a.dir), `layer ${i}: tree differs after save → convert`);
    } finally {
      a.umount();
      b.umount();
    }
  }
  // L3 in tar terms (python tarfile): PAX xattrs incl. binary security.capability, hardlinks,
  // long link targets, devices, whiteouts; opaque marker right after its directory; no './' prefix.
  const py = `
import tarfile, sys, json
out = {}
for i, p in enumerate(sys.argv[1:]):
    t = tarfile.open(p)
    ms = t.getmembers()
    names = [m.name for m in ms]
    info = {"names": names, "caps": [], "hard": [], "longlink": [], "dev": [], "wh": [], "opq": [], "nsmtime": 0, "bigid": []}
    for j, m in enumerate(ms):
        if any(k.startswith("SCHILY.xattr.security.capability") for k in m.pax_headers): info["caps"].append(m.name)
        if m.islnk(): info["hard"].append(m.name)
        if (m.issym() or m.islnk()) and len(m.linkname) > 100: info["longlink"].append(m.name)
        if m.ischr() or m.isblk(): info["dev"].append([m.name, m.devmajor, m.devminor])
        if m.name.split("/")[-1].startswith(".wh.") and not m.name.endswith(".wh..wh..opq"): info["wh"].append(m.name)
        if m.name.endswith(".wh..wh..opq"):
            parent = m.name[:-len(".wh..wh..opq")]
            prev = ms[j-1].name if j else ""
            info["opq"].append([m.name, prev, parent, m.mode, m.mtime])
        if "mtime" in m.pax_headers and "." in m.pax_headers["mtime"]: info["nsmtime"] += 1
        if m.uid > 2097151 or m.gid > 2097151: info["bigid"].append(m.name)
    out[i] = info
print(json.dumps(out))
`;
  const files = man.layers.map((l) => join(x, 'blobs/sha256', l.digest.slice(7)));
  const info = JSON.parse(run('python3', ['-c', py, ...files])) as Record<
    string,
    {
      names: string[];
      caps: string[];
      hard: string[];
      longlink: string[];
      dev: [string, number, number][];
      wh: string[];
      opq: [string, string, string, number, number][];
      nsmtime: number;
      bigid: string[];
    }
  >;
  const all = Object.values(info);
  assert.ok(
    all.every((i) => i.names.every((nm) => !nm.startsWith('./') || nm === '.')),
    'no ./ prefixes',
  );
  assert.ok(
    all.some((i) => i.caps.length > 0),
    'security.capability survives as SCHILY.xattr',
  );
  assert.ok(
    all.some((i) => i.hard.length >= 2),
    'the 3-way hardlink has two link entries',
  );
  assert.ok(
    all.some((i) => i.longlink.length > 0),
    'link targets over 100 bytes',
  );
  assert.ok(
    all.some((i) => i.dev.some(([, ma, mi]) => ma === 250 && mi === 70000)),
    'chr 250:70000',
  );
  assert.ok(
    all.some((i) => i.wh.length > 0),
    '.wh. whiteout files',
  );
  assert.ok(
    all.some((i) => i.nsmtime > 0),
    'ns mtimes in PAX',
  );
  assert.ok(
    all.some((i) => i.bigid.length > 0),
    'uids above the octal range via PAX',
  );
  const opq = all.flatMap((i) => i.opq);
  assert.ok(opq.length > 0, 'an opaque marker');
  for (const [name, prev, parent, mode, mtime] of opq) {
    assert.equal(mode, 0, name);
    assert.equal(mtime, 0, name);
    // Right after its directory's entry (or first for an implicit directory: then prev is outside it).
    assert.ok(prev === parent || !prev.startsWith(parent) || parent === '', `${name} follows ${prev}`);
  }
  // Config: author and history survive; unchanged diff_ids → identical config bytes (second round).
  const cfg = JSON.parse(readFileSync(join(x, 'blobs/sha256', man.config.digest.slice(7)), 'utf8')) as {
    author?: string;
    history?: { comment?: string }[];
  };
  const orig = JSON.parse(
    rows<{ raw: Buffer }>(
      H.home,
      'SELECT c.raw AS raw FROM config c JOIN manifest m ON m.config_digest = c.digest WHERE m.layer_count = 5',
    )[0]!.raw.toString(),
  ) as typeof cfg;
  assert.equal(cfg.author, orig.author);
  assert.deepEqual(cfg.history, orig.history);
  const H2 = await freshHome(t);
  await Image.loadLocal(H2.backend, o);
  const o2 = out();
  await Image.saveLocal(H2.backend, 'peers/multilayer:latest', o2, { format: 'oci' });
  const x2 = extract(o2);
  assert.ok(
    readFileSync(join(x2, 'blobs/sha256', man.config.digest.slice(7))).equals(
      readFileSync(join(x, 'blobs/sha256', man.config.digest.slice(7))),
    ),
    'config bytes identical when the diff_ids are unchanged',
  );
});

test('F15: save twice and save → load → save are byte-identical (both formats); a shared layer is stored once', async (t) => {
  const H = await homeWithImages(t);
  for (const format of ['docker', 'oci'] as const) {
    const refs = ['peers/multilayer:latest', 'peers/busybox:latest'];
    const a = out();
    const b = out();
    await Image.saveLocal(H.backend, refs, a, { format });
    await Image.saveLocal(H.backend, refs, b, { format });
    assert.equal(fileSha(a), fileSha(b), `${format}: save twice`);
    const F = await freshHome(t);
    const loaded = await Image.loadLocal(F.backend, a);
    assert.deepEqual(
      loaded.map((h) => h.reference),
      refs,
    );
    const c = out();
    await Image.saveLocal(F.backend, refs, c, { format });
    assert.equal(fileSha(c), fileSha(a), `${format}: save → load → save`);
    const busy = JSON.parse(readFileSync(join(extract(a), 'index.json'), 'utf8')) as { manifests: unknown[] };
    assert.equal(busy.manifests.length, 2);
    const members = run('tar', ['tf', a]).split('\n').filter(Boolean);
    assert.equal(new Set(members).size, members.length, 'each blob written once');
  }
  // L1 is shared: busybox's only layer is multilayer's first.
  const a = out();
  const r = await Image.saveLocal(H.backend, ['peers/multilayer:latest', 'peers/busybox:latest'], a);
  assert.equal(r.images[1]!.diffIds[0], r.images[0]!.diffIds[0]);
  const blobs = run('tar', ['tf', a])
    .split('\n')
    .filter((l) => l === `blobs/sha256/${r.images[0]!.diffIds[0]!.slice(7)}`);
  assert.equal(blobs.length, 1);
  const mj = JSON.parse(run('tar', ['xOf', a, 'manifest.json'])) as { RepoTags: string[] }[];
  assert.deepEqual(
    mj.map((e) => e.RepoTags),
    [['peers/multilayer:latest'], ['peers/busybox:latest']],
  );
  // A digest selector: no annotations, RepoTags [], reference = the selector.
  const dsel = r.images[1] && (await Image.getLocal(H.backend, 'peers/busybox:latest')).manifestDigest;
  const s = out();
  const rd = await Image.saveLocal(H.backend, [dsel!], s);
  assert.equal(rd.images[0]!.reference, dsel);
  const idx = JSON.parse(run('tar', ['xOf', s, 'index.json'])) as { manifests: Record<string, unknown>[] };
  assert.equal(idx.manifests[0]!.annotations, undefined);
  assert.deepEqual((JSON.parse(run('tar', ['xOf', s, 'manifest.json'])) as { RepoTags: string[] }[])[0]!.RepoTags, []);
});

test('F16: an uncached ref → IMAGE_NOT_FOUND, a corrupt layer file → CACHE_CORRUPT; no output and no .partial either way', async (t) => {
  const H = await homeWithImages(t);
  const dst = join(work.dir, 'f16', 'x.tar');
  run('mkdir', ['-p', join(work.dir, 'f16')]);
  await rejectsCode(Image.saveLocal(H.backend, ['peers/busybox:latest', 'nope:1'], dst), 'IMAGE_NOT_FOUND');
  assert.deepEqual(readdirSync(join(work.dir, 'f16')), []);
  await rejectsCode(Image.saveLocal(H.backend, [], dst), 'INVALID_ARGUMENT');
  const detail = await Image.inspectLocal(H.backend, 'peers/multilayer:latest');
  const victim = detail.artifacts.layers[2]!.path;
  const buf = readFileSync(victim);
  flipByte(buf, 1024 + 8, 0xff); // superblock field → checksum mismatch
  writeFileSync(victim, buf);
  const e = await rejectsCode(Image.saveLocal(H.backend, ['peers/multilayer:latest'], dst), 'CACHE_CORRUPT');
  assert.equal((e.details as { path: string }).path, victim);
  assert.deepEqual(readdirSync(join(work.dir, 'f16')), []);
  assert.deepEqual(tmpEntries(H.home), []);
  // Control: once the layer file is repaired, the same save succeeds.
  const good = Buffer.from(buf);
  flipByte(good, 1024 + 8, 0xff);
  writeFileSync(victim, good);
  await Image.saveLocal(H.backend, ['peers/multilayer:latest'], dst);
  assert.ok(existsSync(dst));
});

test('G: msb save refuses a TTY stdout (exit 2), writes -o FILE, and pipes to stdout', async (t) => {
  const H = await homeWithImages(t);
  const so = new PassThrough() as PassThrough & { isTTY?: boolean };
  so.isTTY = true;
  let err = '';
  const se = new PassThrough();
  se.on('data', (d) => {
    err += d;
  });
  const status = await main(['--home', H.home, 'save', 'peers/busybox:latest'], { stdout: so, stderr: se, env: {} });
  assert.equal(status, 2);
  assert.match(err, /refusing to write an archive to a terminal/);
  const f = out();
  assert.equal(
    await main(['--home', H.home, 'save', '-o', f, '--format', 'oci', 'peers/busybox:latest'], {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      env: {},
    }),
    0,
  );
  const g = out();
  await Image.saveLocal(H.backend, 'peers/busybox:latest', g, { format: 'oci' });
  assert.equal(fileSha(f), fileSha(g));
  const piped = new PassThrough();
  const chunks: Buffer[] = [];
  piped.on('data', (c: Buffer) => chunks.push(c));
  assert.equal(
    await main(['--home', H.home, 'save', '--format', 'oci', 'peers/busybox:latest'], {
      stdout: piped,
      stderr: new PassThrough(),
      env: {},
    }),
    0,
  );
  assert.equal(sha(Buffer.concat(chunks)), fileSha(g));
  assert.equal(
    await main(['--home', H.home, 'save', '-o', out(), 'missing:1'], {
      stdout: new PassThrough(),
      stderr: new PassThrough(),
      env: {},
    }),
    3,
  );
});

/**
 * Remote inspection without pulling (issue 14 item 3): `msb image digest`, `msb manifest inspect`,
 * `msb ls-tags` and their API twins, against the real registry R0 and skopeo as the peer:
 * - for EVERY fixture tag of R0 (its catalog's `peers/` and `public/` repositories):
 *   `msb image digest` equals `skopeo inspect --format '{{.Digest}}'`, and
 *   `msb manifest inspect --raw` is byte-identical to `skopeo inspect --raw`;
 * - the digest of a multi-arch tag is the index digest, which a pull records as indexDigest;
 *   `--platform` gives the platform manifest a pull would use;
 * - ls-tags follows `Link` pages (a small fault server paginates: distribution 2.8 does not);
 * - requests go through the configured mirrors; nothing is written to the home.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, LocalBackend, MsbError } from '../../src/index.js';
import { ensureRegistry, run, tempDir } from '../helpers/env.js';
import { FaultServer, sendJson } from '../helpers/fault-server.js';
import { msb, msbArgv, privateRegistry } from '../helpers/pull-env.js';

const R0 = ensureRegistry('noauth');
const work = tempDir('msb-remote-');
const servers: FaultServer[] = [];
const backends: LocalBackend[] = [];
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const b of backends) await b.close();
  for (const s of servers) await s.close();
  for (const c of cleanups) await c();
  work.cleanup();
});

const HOME = join(work.dir, 'home');
mkdirSync(HOME);

/** `msb --home HOME …` with stdout as bytes. */
function msbRaw(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [...msbArgv(), '--home', HOME, ...args], {
    env: { ...process.env, ...env },
    maxBuffer: 64 << 20,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}
function skopeo(args: string[]): Buffer {
  return spawnSync('skopeo', ['inspect', '--tls-verify=false', ...args], { maxBuffer: 64 << 20 }).stdout;
}
const getJson = (path: string) =>
  JSON.parse(run('curl', ['-sf', `http://${R0.host}${path}`])) as Record<string, unknown>;

/** Every fixture tag of R0 (the repositories push-test-images.sh writes). */
function fixtureTags(): string[] {
  const repos = (getJson('/v2/_catalog?n=1000').repositories as string[]).filter((r) => /^(peers|public)\//.test(r));
  const out: string[] = [];
  for (const r of repos)
    for (const t of (getJson(`/v2/${r}/tags/list`).tags as string[] | null) ?? []) out.push(`${R0.host}/${r}:${t}`);
  return out.sort();
}

test('every fixture tag: msb image digest = skopeo Digest, manifest inspect --raw = skopeo --raw (bytes), ls-tags = tags/list', () => {
  const refs = fixtureTags();
  assert.ok(refs.length >= 14, `fixture tags: ${refs.join(' ')}`);
  assert.ok(refs.includes(`${R0.host}/peers/multiarch:latest`) && refs.includes(`${R0.host}/peers/busybox:v2s2`));
  for (const ref of refs) {
    const d = msbRaw(['image', 'digest', ref]);
    assert.equal(d.status, 0, `${ref}: ${d.stderr}`);
    const theirs = skopeo(['--format', '{{.Digest}}', `docker://${ref}`])
      .toString('utf8')
      .trim();
    assert.match(theirs, /^sha256:[0-9a-f]{64}$/, `${ref}: skopeo answered`);
    assert.equal(d.stdout.toString('utf8'), `${theirs}\n`, `${ref}: digest`);

    const raw = msbRaw(['manifest', 'inspect', '--raw', ref]);
    assert.equal(raw.status, 0, `${ref}: ${raw.stderr}`);
    const skopeoRaw = skopeo(['--raw', `docker://${ref}`]);
    assert.ok(skopeoRaw.length > 0, `${ref}: skopeo --raw answered`);
    assert.ok(raw.stdout.equals(skopeoRaw), `${ref}: --raw differs from skopeo's bytes`);
    const pretty = msbRaw(['manifest', 'inspect', ref]);
    assert.deepEqual(
      JSON.parse(pretty.stdout.toString('utf8')),
      JSON.parse(skopeoRaw.toString('utf8')),
      `${ref}: pretty JSON`,
    );
  }
  for (const repo of new Set(refs.map((r) => r.replace(/:[^:/]+$/, '')))) {
    const t = msbRaw(['ls-tags', repo]);
    assert.equal(t.status, 0, t.stderr);
    const path = repo.slice(R0.host.length);
    assert.deepEqual(t.stdout.toString('utf8').split('\n').filter(Boolean), getJson(`/v2${path}/tags/list`).tags, repo);
  }
  assert.deepEqual(readdirSync(HOME), [], 'nothing was written to the home');
});

test('a multi-arch tag: the digest is the index (what a pull records); --platform gives the manifest a pull would use', async () => {
  const ref = `${R0.host}/peers/multiarch:latest`;
  const b = await LocalBackend.builder().home(join(work.dir, 'pull-home')).build();
  backends.push(b);
  const pulled = await Image.pullLocal(b, ref);
  const resolved = await Image.resolveLocal(b, ref);
  assert.equal(resolved.digest, pulled.indexDigest, 'the digest is the index digest the pull recorded');
  assert.equal(resolved.indexDigest, pulled.indexDigest);
  assert.equal(resolved.manifestDigest, pulled.manifestDigest, 'the platform manifest the pull used');
  assert.deepEqual(resolved.platform, pulled.platform);
  assert.equal(resolved.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(resolved.source, R0.host);
  assert.equal(msbRaw(['image', 'digest', ref]).stdout.toString('utf8'), `${pulled.indexDigest}\n`);

  const arm = await Image.resolveLocal(b, ref, { platform: 'linux/arm64' });
  assert.notEqual(arm.manifestDigest, pulled.manifestDigest);
  assert.equal(arm.platform.architecture, 'arm64');
  assert.equal(
    msbRaw(['image', 'digest', '--platform', 'linux/arm64', ref]).stdout.toString('utf8'),
    `${arm.manifestDigest}\n`,
  );
  const armRaw = msbRaw(['manifest', 'inspect', '--raw', '--platform', 'linux/arm64', ref]);
  assert.ok(armRaw.stdout.equals(skopeo(['--raw', `docker://${R0.host}/peers/multiarch@${arm.manifestDigest}`])));
  const m = await Image.remoteManifestLocal(b, ref);
  assert.equal(m.digest, pulled.indexDigest);

  // A single-manifest tag: digest = manifest digest, no index.
  const single = await Image.resolveLocal(b, `${R0.host}/peers/busybox:latest`);
  assert.equal(single.indexDigest, null);
  assert.equal(single.digest, single.manifestDigest);
  await assert.rejects(
    Image.resolveLocal(b, `${R0.host}/peers/busybox:no-such-tag`),
    (e: unknown) => e instanceof MsbError && e.code === 'REGISTRY',
  );
});

test('ls-tags follows Link pages from the endpoint that served the first page; a link elsewhere or a loop is refused', async () => {
  const all = getJson('/v2/peers/multilayer/tags/list').tags as string[];
  const f = await FaultServer.start({ upstream: `http://${R0.host}` });
  servers.push(f);
  let mode: 'ok' | 'elsewhere' | 'loop' = 'ok';
  f.handlers.push((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (!u.pathname.endsWith('/tags/list')) return false;
    const size = Number(u.searchParams.get('n') ?? all.length);
    const from = u.searchParams.has('last') ? all.indexOf(u.searchParams.get('last')!) + 1 : 0;
    const page = all.slice(from, from + size);
    const next =
      from + size < all.length
        ? mode === 'elsewhere'
          ? '/v2/peers/busybox/tags/list?n=2'
          : `${u.pathname}?n=${size}&last=${mode === 'loop' ? all[0] : page[page.length - 1]}`
        : null;
    sendJson(res, 200, { name: 'peers/multilayer', tags: page }, next ? { link: `<${next}>; rel="next"` } : {});
    return true;
  });
  // The fault server runs in this process: the CLI is spawned asynchronously so that it can answer.
  const tags = (args: string[]) => msb(['--home', HOME, 'ls-tags', ...args]);
  const t = await tags(['--page-size', '2', `${f.host}/peers/multilayer`]);
  assert.equal(t.status, 0, t.stderr);
  assert.deepEqual(t.stdout.split('\n').filter(Boolean), all);
  assert.equal(f.requests(/\/tags\/list$/).length, Math.ceil(all.length / 2), 'one request per page');
  mode = 'elsewhere';
  const e1 = await tags(['--page-size', '2', `${f.host}/peers/multilayer`]);
  assert.equal(e1.status, 1);
  assert.match(e1.stderr, /next page link points elsewhere/);
  mode = 'loop';
  const e2 = await tags(['--page-size', '1', `${f.host}/peers/multilayer`]);
  assert.equal(e2.status, 1);
  assert.match(e2.stderr, /repeats an earlier page/);
  assert.equal(msbRaw(['ls-tags', `${R0.host}/peers/multilayer:latest`]).status, 2, 'a tag is a usage error');
});

test('remote inspection goes through the configured mirrors and writes nothing', async () => {
  const M = await privateRegistry({
    after: (fn) => {
      cleanups.push(fn);
    },
  });
  const home = join(work.dir, 'mirror-home');
  mkdirSync(home);
  writeFileSync(
    join(home, 'config.json'),
    JSON.stringify({ registries: { hosts: { [R0.host]: { mirrors: [`http://${M.host}`] } } } }),
  );
  const before = M.manifestRequests().length;
  const ref = `${R0.host}/peers/busybox:latest`;
  const r = spawnSync(process.execPath, [...msbArgv(), '--home', home, 'image', 'digest', ref], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, skopeo(['--format', '{{.Digest}}', `docker://${ref}`]).toString('utf8'));
  assert.ok(M.manifestRequests().length > before, 'the mirror answered');
  const t = spawnSync(
    process.execPath,
    [...msbArgv(), '--home', home, 'ls-tags', '--format', 'json', `${R0.host}/peers/busybox`],
    { encoding: 'utf8' },
  );
  assert.equal(t.status, 0, t.stderr);
  assert.equal((JSON.parse(t.stdout) as { source: string }).source, `http://${M.host}`);
  assert.deepEqual(readdirSync(home), ['config.json']);
});

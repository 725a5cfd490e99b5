/**
 * The published package (issue 10 item 1; README "Install as a dependency"): `npm pack` of this
 * checkout holds dist/src (JavaScript and declarations), bin, README, LICENSE and nothing else; the
 * tarball installs into an empty project whose package.json approves the native builds
 * (`allowScripts`, npm ≥ 11), offline from npm's cache; both faces then work from the consumer:
 * `npx msb --version`, `msb layer convert` of a real layer (the EROFS is mounted by the kernel),
 * and `import { Image, LocalBackend } from 'msb-image'` listing an empty home.
 *
 * Packs with --ignore-scripts: `npm test` has just built dist/ (prepack would rebuild it, removing
 * the files this very run executes from). Installing compiles three native modules: minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, tempDir } from '../helpers/env.js';
import { fsckOk, withMount } from '../helpers/layer.js';
import * as T from '../helpers/tar-writer.js';

const PKG = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  allowScripts: Record<string, boolean>;
};

const sh = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });

/** The file list of `npm pack --dry-run` for the checkout (what the tarball would hold). */
function packList(root: string): string[] {
  const out = sh('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], root);
  const [info] = JSON.parse(out) as { files: { path: string }[] }[];
  return (info?.files ?? []).map((f) => f.path).sort();
}

test('npm pack holds dist/src (.js + .d.ts), bin/msb.js, README, LICENSE, package.json and nothing else', () => {
  const files = packList(PROJECT_ROOT);
  const stray = files.filter(
    (f) =>
      !['package.json', 'README.md', 'LICENSE', 'bin/msb.js'].includes(f) &&
      !(f.startsWith('dist/src/') && (f.endsWith('.js') || f.endsWith('.d.ts'))),
  );
  assert.deepEqual(stray, []);
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'bin/msb.js', 'LICENSE']) {
    assert.ok(files.includes(f), `${f} missing from the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('src/')));
});

test('the tarball installs into an empty project; npx msb, msb layer convert and import work from it', async (t) => {
  const d = tempDir('msb-pack-');
  t.after(d.cleanup);
  const tgz = sh('npm', ['pack', '--ignore-scripts', '--pack-destination', d.dir], PROJECT_ROOT)
    .trim()
    .split('\n')
    .pop();
  assert.equal(tgz, `${PKG.name}-${PKG.version}.tgz`);
  const proj = join(d.dir, 'consumer');
  mkdirSync(proj);
  const approve = { 'better-sqlite3': true, 'zstd-napi': true, 'fs-ext': true };
  for (const k of Object.keys(approve)) assert.equal(PKG.allowScripts[k], true, `${k} is approved here too`);
  writeFileSync(
    join(proj, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', allowScripts: approve }),
  );
  sh('npm', ['install', '--offline', join(d.dir, tgz)], proj);

  const version = sh('npx', ['--offline', '--no-install', 'msb', '--version'], proj).trim();
  assert.equal(version, `msb ${PKG.version}`);

  const tarFile = join(d.dir, 'layer.tar');
  const layer = T.tar(T.dir('etc'), T.file('etc/motd', 'installed from a tarball\n'));
  writeFileSync(tarFile, layer);
  const img = join(d.dir, 'layer.erofs');
  const line = sh('npx', ['--offline', '--no-install', 'msb', 'layer', 'convert', tarFile, '-o', img], proj);
  const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  assert.equal((JSON.parse(line) as { diffId: string }).diffId, diffId);
  fsckOk(img);
  await withMount(img, (dir) =>
    assert.equal(readFileSync(join(dir, 'etc/motd'), 'utf8'), 'installed from a tarball\n'),
  );

  const home = join(d.dir, 'home');
  const script = [
    "import { Image, LocalBackend } from 'msb-image';",
    `const b = LocalBackend.lazy({ home: ${JSON.stringify(home)} });`,
    'const list = await Image.listLocal(b);',
    "console.log(JSON.stringify({ list, get: typeof Image.get, pkg: import.meta.resolve('msb-image') }));",
    'await b.close();',
  ].join('\n');
  const out = JSON.parse(sh(process.execPath, ['--input-type=module', '-e', script], proj)) as {
    list: unknown[];
    get: string;
    pkg: string;
  };
  assert.deepEqual(out.list, []);
  assert.equal(out.get, 'function');
  assert.ok(out.pkg.includes(`${proj}/node_modules/msb-image/dist/src/index.js`), out.pkg);
});

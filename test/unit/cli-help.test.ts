/**
 * The shell around the commands (issue 10 items 2, 3, 8; docs/cli.md §1–§3), through the real
 * process where it matters: group help, `msb help`, `msb version`, exit codes in help, parser
 * behaviour (parseArgs), closed pipes (EPIPE) end quietly, `load` refuses a terminal, and
 * docs/cli-reference.md equals what the CLI prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalBackend } from '../../src/index.js';
import { GROUPS, COMMAND_MODULES, allSpecs } from '../../src/cli/command-table.js';
import { cliReferenceMarkdown } from '../../src/cli/reference-doc.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { cli, spawnMsb } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

test('every group lists its commands on `msb GROUP`, `msb GROUP --help` and `msb help GROUP` (exit 0)', async () => {
  for (const g of Object.keys(GROUPS)) {
    const a = await cli([g]);
    const b = await cli([g, '--help']);
    const c = await cli(['help', g]);
    for (const r of [a, b, c]) {
      assert.equal(r.status, 0, g);
      assert.equal(r.stdout, a.stdout, g);
    }
    const subs = Object.keys(COMMAND_MODULES).filter((w) => w.startsWith(`${g} `));
    assert.ok(subs.length > 0);
    for (const s of subs) assert.match(a.stdout, new RegExp(`^ {2}${s} `, 'm'), s);
  }
  const bogus = await cli(['image', 'bogus']);
  assert.equal(bogus.status, 2);
  assert.match(bogus.stderr, /^msb: unknown command "image bogus"\nUsage: msb image COMMAND/);
  const unknown = await cli(['frobnicate']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^msb: unknown command "frobnicate"\nUsage: msb /);
});

test('`msb help CMD` = `msb CMD --help` for every command; every help lists the exit codes; unknown help topic exits 2', async () => {
  for (const words of Object.keys(COMMAND_MODULES)) {
    const w = words.split(' ');
    const a = await cli(['help', ...w]);
    const b = await cli([...w, '--help']);
    const c = await cli([...w, '-h']);
    assert.equal(a.status, 0, words);
    assert.equal(a.stdout, b.stdout, words);
    assert.equal(a.stdout, c.stdout, words);
    assert.match(a.stdout, /^Usage: msb /, words);
    assert.match(a.stdout, /Exit codes:\n {2}0 +success[\s\S]*130\/143 +interrupted/, words);
  }
  const g = await cli(['--help']);
  assert.equal(g.status, 0);
  assert.equal((await cli(['help'])).stdout, g.stdout);
  assert.match(g.stdout, /Exit codes:[\s\S]*4 +image in use/);
  assert.equal((await cli(['help', 'nope'])).status, 2);
  const none = await cli([]);
  assert.equal(none.status, 2);
  assert.equal(none.stderr, g.stdout, 'msb alone prints the usage on stderr');
});

test('msb version / --version print the package version; --format json adds node and the native modules', () => {
  for (const args of [['version'], ['--version'], ['-v']]) {
    const r = spawnMsb(args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `msb ${PKG.version}\n`);
  }
  const j = spawnMsb(['version', '--format', 'json']);
  assert.equal(j.status, 0, j.stderr);
  const v = JSON.parse(j.stdout);
  assert.equal(v.version, PKG.version);
  assert.equal(v.node, process.versions.node);
  assert.equal(v.modules, process.versions.modules);
  for (const m of ['better-sqlite3', 'zstd-napi', 'fs-ext']) assert.match(v.native[m], /^\d+\.\d+\.\d+/, m);
  assert.match(v.sqlite, /^3\.\d+/);
  assert.equal(spawnMsb(['version', '--format', 'yaml']).status, 2);
});

test('flag parsing (node:util parseArgs): =value, -xVALUE, clusters, --, unknown flags and missing values exit 2', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  await publishFakeImage(b, { refs: ['p:1'], layers: ['p'] });
  await b.close();
  assert.equal((await cli(['--home', dir, 'images', '--format=json'])).status, 0);
  assert.equal((await cli(['--home', dir, 'images', '-aq'])).stdout, 'p:1\n');
  for (const [args, re] of [
    [['images', '--bogus'], /^msb: unknown flag --bogus\n/],
    [['images', '--format'], /^msb: flag --format <value> argument missing\n/],
    [['images', '--quiet=yes'], /^msb: flag -q, --quiet does not take an argument\n/],
    [['rmi'], /^msb: msb rmi needs at least one IMAGE\n/],
  ] as [string[], RegExp][]) {
    const r = await cli(['--home', dir, ...args]);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
    assert.match(r.stderr, /\nUsage: msb /, 'the usage follows');
  }
  // `--` ends the flags: "--help" after it is an operand, not a help request.
  const dd = await cli(['--home', dir, 'image', 'inspect', '--', '--help']);
  assert.equal(dd.status, 2);
  assert.match(dd.stderr, /INVALID_REFERENCE/);
});

/** The msb process with stdout closed before it writes (like `msb … | true`). */
function runWithClosedStdout(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stderr: string }> {
  const self = fileURLToPath(new URL('../helpers/msb-cli.js', import.meta.url));
  const c = spawn(process.execPath, [self, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  c.stdout.destroy();
  let stderr = '';
  c.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => c.on('close', (status) => resolve({ status, stderr })));
}

// (`msb save` to a closed pipe, which needs real layer files, is in test/integration/cli-signals.test.ts.)
test('a closed stdout (EPIPE) ends the command quietly with exit 0: images, inspect, prune --dry-run, json, help', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  for (let i = 0; i < 40; i++) await publishFakeImage(b, { refs: [`img${i}:1`, `img${i}:2`], layers: [`l${i}`] });
  await b.close();
  for (const args of [
    ['images'],
    ['images', '--format', 'json'],
    ['image', 'inspect', 'img1:1', 'img2:1'],
    ['image', 'prune', '--dry-run'],
    ['--help'],
  ]) {
    const r = await runWithClosedStdout(['--home', dir, ...args], {});
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, '', args.join(' '));
  }
});

test('msb load refuses a terminal stdin at once (exit 2), like save refuses a terminal stdout', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const r = await cli(['--home', dir, 'load'], { tty: true });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^msb: refusing to read an archive from a terminal; use -i FILE or a pipe\n/);
  const dash = await cli(['--home', dir, 'load', '-i', '-'], { tty: true });
  assert.equal(dash.status, 2);
  assert.equal(existsSync(join(dir, 'db')), false, 'nothing opened');
});

test('msb load in a real pty (util-linux script) exits 2 at once instead of waiting', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const bin = join(ROOT, 'bin', 'msb.js');
  const r = spawnSync(
    'script',
    ['-qec', `${process.execPath} ${bin} --home ${dir} load; echo "EXIT=$?"`, '/dev/null'],
    {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  assert.equal(r.error, undefined, 'script(1) from util-linux is needed');
  assert.match(r.stdout, /msb: refusing to read an archive from a terminal/);
  assert.match(r.stdout, /EXIT=2\r?\n/);
});

test('docs/cli-reference.md is what the CLI prints (regenerate with npm run docs:cli)', async () => {
  const want = await cliReferenceMarkdown();
  const have = readFileSync(join(ROOT, 'docs/cli-reference.md'), 'utf8');
  assert.equal(have, want, 'docs/cli-reference.md is stale: run npm run docs:cli');
  for (const s of await allSpecs()) assert.ok(have.includes(`## \`msb ${s.name}\``), s.name);
});

/**
 * `msb` image, sandbox and snapshot commands (docs/cli.md §1–§5; acceptance G2, G4, G5, G9): output
 * formats, exit statuses, confirmation, `--home`, MSB_BACKEND, per-argument error handling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Image, LocalBackend, Sandbox, Snapshot } from '../../src/index.js';
import { formatSize, relativeTime, table } from '../../src/cli/format.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { cli, spawnMsb } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';

async function seeded(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  const web = await publishFakeImage(b, {
    refs: ['python:3.12'],
    layers: ['base', 'py'],
    now: Date.now() - 3 * 3600_000,
  });
  const other = await publishFakeImage(b, { refs: ['127.0.0.1:5000/peers/busybox'], layers: ['base'] });
  const store = await b._open('write');
  store.index.db
    .prepare("INSERT INTO pin VALUES ('sandbox', 'web', 'web', ?, 'docker.io/library/python:3.12', 1)")
    .run(web.manifestDigest);
  await Snapshot.indexLocal(b, {
    digest: 'sha256:' + '3'.repeat(64),
    imageManifestDigest: web.manifestDigest,
    name: 'nightly',
  });
  await b.close();
  return { dir, b, web, other };
}

test('format helpers: decimal sizes with 3 significant digits, aligned tables, relative times', () => {
  assert.equal(formatSize(1088494), '1.09MB');
  assert.equal(formatSize(203_000_000), '203MB');
  assert.equal(formatSize(4100), '4.1kB');
  assert.equal(formatSize(999), '999B');
  assert.equal(formatSize(999_999), '1MB');
  assert.equal(formatSize(0), '0B');
  assert.equal(formatSize(null), '-');
  assert.equal(
    table(
      ['A', 'BB'],
      [
        ['xxx', 'y'],
        ['z', 'w'],
      ],
    ),
    'A     BB\nxxx   y\nz     w\n',
  );
  const now = Date.now();
  assert.equal(relativeTime(new Date(now - 3 * 3600_000), now), '3 hours ago');
  assert.equal(relativeTime(new Date(now - 90_000), now), 'About a minute ago');
  assert.equal(relativeTime(new Date(now - 5 * 86400_000), now), '5 days ago');
});

test('G2: msb images header, -q, --format json = JSON of Image.list(); an empty cache prints only the header', async (t) => {
  const { dir } = await seeded(t);
  const r = await cli(['--home', dir, 'images']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^REFERENCE\s+DIGEST\s+PLATFORM\s+LAYERS\s+SIZE\s+CREATED\s+LAST USED$/);
  assert.match(lines[1]!, /^127\.0\.0\.1:5000\/peers\/busybox:latest\s+[0-9a-f]{12}\s+linux\/amd64\s+1\s+/);
  assert.match(lines[2]!, /^python:3\.12\s+.*3 hours ago\s+3 hours ago$/);
  const cols = lines.map((l) => (l.indexOf('DIGEST') >= 0 ? l.indexOf('DIGEST') : l.search(/[0-9a-f]{12}/)));
  assert.equal(new Set(cols).size, 1, 'DIGEST column aligned');
  const q = await cli(['--home', dir, 'images', '-q']);
  assert.equal(q.stdout, '127.0.0.1:5000/peers/busybox:latest\npython:3.12\n');
  const j = await cli(['--home', dir, 'image', 'ls', '--format', 'json']);
  const b = LocalBackend.lazy({ home: dir });
  assert.equal(j.stdout, JSON.stringify(await Image.listLocal(b)) + '\n');
  await b.close();
  const nt = await cli(['--home', dir, 'images', '--no-trunc']);
  assert.match(nt.stdout, /sha256:[0-9a-f]{64}/);
  const empty = tempDir();
  t.after(empty.cleanup);
  assert.deepEqual(await cli(['--home', empty.dir, 'images']), {
    status: 0,
    stdout: 'REFERENCE   DIGEST   PLATFORM   LAYERS   SIZE   CREATED   LAST USED\n',
    stderr: '',
  });
  assert.equal((await cli(['--home', empty.dir, 'images', '-q'])).stdout, '');
  assert.equal((await cli(['--home', empty.dir, 'images', '--format', 'json'])).stdout, '[]\n');
  assert.equal(existsSync(empty.dir + '/db'), false);
});

test('G3-style: msb image inspect --format json prints ImageDetail objects whose artifact paths exist', async (t) => {
  const { dir } = await seeded(t);
  const r = await cli(['--home', dir, 'image', 'inspect', '--format', 'json', 'python:3.12']);
  assert.equal(r.status, 0, r.stderr);
  const arr = JSON.parse(r.stdout);
  assert.equal(arr.length, 1);
  for (const p of [
    arr[0].artifacts.vmdkPath,
    arr[0].artifacts.fsmetaPath,
    ...arr[0].artifacts.layers.map((l: { path: string }) => l.path),
  ])
    assert.ok(existsSync(p), p);
  assert.deepEqual(arr[0].pins, [
    { kind: 'sandbox', name: 'web' },
    { kind: 'snapshot', name: 'nightly' },
  ]);
  const b = LocalBackend.lazy({ home: dir });
  assert.equal(r.stdout, JSON.stringify([await Image.inspectLocal(b, 'python:3.12')]) + '\n');
  await b.close();
  const text = await cli(['--home', dir, 'image', 'inspect', 'python:3.12', 'missing', '127.0.0.1:5000/peers/busybox']);
  assert.equal(text.status, 3);
  assert.match(text.stdout, /Reference:\s+python:3\.12/);
  assert.match(text.stdout, /POS\s+DIFF_ID\s+BLOB\s+MEDIA TYPE\s+COMPRESSED\s+EROFS/);
  assert.match(text.stdout, /Reference:\s+127\.0\.0\.1:5000\/peers\/busybox:latest/);
  assert.match(text.stderr, /^msb: IMAGE_NOT_FOUND: .*missing:latest/m);
});

test('G4: rmi of a pinned image exits 4 naming the pins; -f untags; rmi a missing b processes a and b then exits 3; sandbox/snapshot ls/rm', async (t) => {
  const { dir, web } = await seeded(t);
  const r = await cli(['--home', dir, 'rmi', 'python:3.12']);
  assert.equal(r.status, 4);
  // The API's advice ({ force: true }) is replaced by the CLI's flag.
  assert.equal(
    r.stderr,
    "msb: IMAGE_IN_USE: python:3.12 is used by sandbox 'web', snapshot 'nightly'\n" +
      'hint: use -f to untag anyway (the image stays cached until its pins are removed with msb sandbox rm / msb snapshot rm)\n',
  );
  const sl = await cli(['--home', dir, 'sandbox', 'ls', '--format', 'json']);
  const b = LocalBackend.lazy({ home: dir });
  assert.equal(sl.stdout, JSON.stringify(await Sandbox.listLocal(b)) + '\n');
  const st = await cli(['--home', dir, 'sandbox', 'ls']);
  assert.match(
    st.stdout,
    /^NAME\s+REFERENCE\s+DIGEST\s+PLATFORM\s+CREATED\nweb\s+python:3\.12\s+[0-9a-f]{12}\s+linux\/amd64\s+/,
  );
  const snl = await cli(['--home', dir, 'snapshot', 'ls']);
  assert.match(snl.stdout, /^DIGEST\s+NAME\s+IMAGE\s+REFERENCE\s+CREATED\n3{12}\s+nightly\s+/);
  assert.equal((await cli(['--home', dir, 'sandbox', 'rm', 'zzz'])).status, 3);
  const rm = await cli(['--home', dir, 'sandbox', 'rm', 'zzz', 'web']);
  assert.equal(rm.status, 3);
  assert.equal(rm.stdout, 'web\n');
  assert.match(rm.stderr, /PIN_NOT_FOUND: sandbox 'zzz' not found/);
  assert.equal(
    (await cli(['--home', dir, 'snapshot', 'rm', 'sha256:' + '3'.repeat(64)])).stdout,
    'sha256:' + '3'.repeat(64) + '\n',
  );
  const ok = await cli(['--home', dir, 'rmi', 'python:3.12']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^Untagged: python:3\\.12\\nDeleted: ${web.manifestDigest}\\nDeleted: sha256:`));
  await publishFakeImage(b, { refs: ['a'], layers: ['la'] });
  await publishFakeImage(b, { refs: ['b'], layers: ['lb'] });
  await b.close();
  const multi = await cli(['--home', dir, 'rmi', 'a', 'missing', 'b']);
  assert.equal(multi.status, 3);
  assert.match(multi.stdout, /Untagged: a:latest[\s\S]*Untagged: b:latest/);
  assert.match(multi.stderr, /IMAGE_NOT_FOUND/);
});

test('G4: rmi -f of a pinned image untags and notes that the manifest is kept', async (t) => {
  const { dir } = await seeded(t);
  const r = await cli(['--home', dir, 'rmi', '-f', 'python:3.12']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'Untagged: python:3.12\n');
  assert.match(r.stderr, /image itself stays cached: pinned by sandbox 'web', snapshot 'nightly'.*msb sandbox rm/);
});

test('G5: image prune refuses without -y off a TTY (exit 2, nothing deleted); --dry-run never asks; -y deletes; JSON; df RECLAIMABLE = dry-run bytes', async (t) => {
  const { dir } = await seeded(t);
  const b = LocalBackend.lazy({ home: dir });
  const before = (await Image.listLocal(b)).length;
  const refuse = await cli(['--home', dir, 'image', 'prune']);
  assert.equal(refuse.status, 2);
  assert.equal(refuse.stderr, 'msb: refusing to prune without confirmation; pass -y\n');
  assert.equal((await Image.listLocal(b)).length, before);
  const dryJson = await cli(['--home', dir, 'image', 'prune', '--dry-run', '--format', 'json']);
  assert.equal(dryJson.status, 0);
  const dry = JSON.parse(dryJson.stdout);
  const df = await cli(['--home', dir, 'image', 'df', '--format', 'json']);
  assert.equal(JSON.parse(df.stdout).reclaimableBytes, dry.bytesReclaimed);
  const dfTable = await cli(['--home', dir, 'image', 'df', '-v']);
  assert.match(dfTable.stdout, /^TYPE\s+COUNT\s+SIZE\nimages\s+2\s+/);
  assert.match(dfTable.stdout, new RegExp(`RECLAIMABLE\\s+${formatSize(dry.bytesReclaimed).replace('.', '\\.')}\\n`));
  assert.match(dfTable.stdout, /REFERENCES\s+DIGEST\s+SIZE\s+SHARED\s+UNIQUE\s+PINNED/);
  const dryText = await cli(['--home', dir, 'image', 'prune', '--dry-run']);
  assert.match(
    dryText.stdout,
    /^Would remove:\n {2}reference 127\.0\.0\.1:5000\/peers\/busybox:latest\n[\s\S]*Would reclaim /,
  );
  // On a TTY: asks; "n" keeps everything, "yes" prunes.
  const no = await cli(['--home', dir, 'image', 'prune'], { tty: true, stdin: 'n\n' });
  assert.match(
    no.stderr,
    /This removes every image not used by a sandbox or snapshot \(1 references\)\. Continue\? \[y\/N\]/,
  );
  assert.equal((await Image.listLocal(b)).length, before);
  const filt = await cli(['--home', dir, 'image', 'prune', '--filter', 'reference=127.0.0.1:5000/peers/*'], {
    tty: true,
    stdin: 'nope\n',
  });
  assert.match(
    filt.stderr,
    /This removes 1 references matching the filters, and the images and layers only they use\. Continue\? \[y\/N\]/,
  );
  const yes = await cli(['--home', dir, 'image', 'prune', '--format', 'json'], { tty: true, stdin: 'yes\n' });
  assert.equal(yes.status, 0, yes.stderr);
  const rep = JSON.parse(yes.stdout);
  assert.deepEqual({ ...rep, dryRun: true }, dry);
  const again = await cli(['--home', dir, 'image', 'prune', '-y']);
  assert.match(
    again.stdout,
    /^Nothing to prune\.\nKept 1 pinned image\(s\):\n {2}python:3\.12 \([0-9a-f]{12}\): pinned by sandbox 'web', snapshot 'nightly'\n$/,
  );
  await b.close();
});

test('G9: exit codes (bad reference 2, unknown flag 2, cloud 6), --home overrides MSB_HOME, --help of every command exits 0 listing its flags', async (t) => {
  const { dir } = await seeded(t);
  const other = tempDir();
  t.after(other.cleanup);
  const viaEnv = spawnMsb(['images', '-q'], { env: { MSB_HOME: dir } });
  assert.equal(viaEnv.status, 0, viaEnv.stderr);
  assert.match(viaEnv.stdout, /python:3\.12/);
  const override = spawnMsb(['--home', other.dir, 'images', '-q'], { env: { MSB_HOME: dir } });
  assert.equal(override.stdout, '');
  const bad = spawnMsb(['image', 'inspect', 'Bad:Ref'], { env: { MSB_HOME: dir } });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^msb: INVALID_REFERENCE: /);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(spawnMsb(['images', '--bogus'], { env: { MSB_HOME: dir } }).status, 2);
  assert.equal(spawnMsb(['rmi'], { env: { MSB_HOME: dir } }).status, 2);
  const cloud = spawnMsb(['images'], { env: { MSB_BACKEND: 'cloud', MSB_API_KEY: 'x' } });
  assert.equal(cloud.status, 6);
  assert.equal(
    cloud.stderr,
    'msb: UNSUPPORTED: this command needs a local backend; the active backend is cloud (MSB_BACKEND=cloud)\n',
  );
  const bogus = spawnMsb(['images'], { env: { MSB_BACKEND: 'bogus' } });
  assert.equal(bogus.status, 1);
  assert.match(bogus.stderr, /SETTINGS_INVALID: .*MSB_BACKEND/);
  const help: [string[], RegExp][] = [
    [['images'], /^(?=[\s\S]*--format)(?=[\s\S]*--no-trunc)(?=[\s\S]*-q, --quiet)/],
    [['image', 'ls'], /--no-trunc/],
    [['image', 'inspect'], /--format/],
    [['rmi'], /--force/],
    [['image', 'rm'], /--force/],
    [['image', 'prune'], /--yes[\s\S]*--dry-run[\s\S]*--filter[\s\S]*--unused-for[\s\S]*--grace/],
    [['image', 'df'], /-v[\s\S]*--format/],
    [['tag'], /SOURCE TARGET/],
    [['sandbox', 'ls'], /--format/],
    [['sandbox', 'rm'], /NAME/],
    [['snapshot', 'ls'], /--format/],
    [['snapshot', 'rm'], /DIGEST/],
  ];
  for (const [cmd, re] of help) {
    const h = await cli([...cmd, '--help']);
    assert.equal(h.status, 0, cmd.join(' '));
    assert.match(h.stdout, re, cmd.join(' '));
  }
  const tagged = await cli(['--home', dir, 'tag', 'python:3.12', 'myorg/py:stable']);
  assert.equal(tagged.status, 0);
  assert.match((await cli(['--home', dir, 'images', '-q'])).stdout, /myorg\/py:stable/);
  assert.equal((await cli(['--home', dir, 'tag', 'nope', 'x'])).status, 3);
  assert.equal((await cli(['--home', dir, 'tag', 'python:3.12'])).status, 2);
});

/**
 * The one wrapping point per boundary (issue 9 item 6, docs/api.md §9): every kind of foreign error
 * becomes an MsbError with the right code where it leaves (`LocalBackend._run`, the exported
 * utilities, the CLI's printer); the caller's own `onProgress` error comes back unchanged; the `msb`
 * process prints `msb: CODE: message` and never a stack trace, even for an exception nothing caught.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { reportError } from '../../src/cli/main.js';
import { guarded, markCallerError, MsbError, toMsbError, wrapError } from '../../src/errors.js';
import { convertLayer, stitchLayers } from '../../src/index.js';
import { PROJECT_ROOT, tempDir } from '../helpers/env.js';
import { smallArchive } from '../helpers/archives.js';

const work = tempDir('msb-typed-errors-');
after(() => work.cleanup());

const sys = (code: string, syscall = 'write', path = '/x/y') =>
  Object.assign(new Error(`${code}: ${syscall} ${path}`), { code, syscall, path, errno: -1 });
const sqlite = (code: string, message: string) => Object.assign(new Error(message), { code });

const KINDS: [string, unknown, string, string | null][] = [
  ['ENOSPC from write', sys('ENOSPC'), 'IO', 'ENOSPC'],
  ['EACCES from open', sys('EACCES', 'open'), 'IO', 'EACCES'],
  ['EROFS from mkdir', sys('EROFS', 'mkdir'), 'IO', 'EROFS'],
  ['EIO from read', sys('EIO', 'read'), 'IO', 'EIO'],
  ['SQLITE_FULL', sqlite('SQLITE_FULL', 'database or disk is full'), 'IO', 'ENOSPC'],
  ['SQLITE_IOERR_WRITE', sqlite('SQLITE_IOERR_WRITE', 'disk I/O error'), 'IO', 'EIO'],
  ['SQLITE_READONLY', sqlite('SQLITE_READONLY', 'attempt to write a readonly database'), 'IO', 'EROFS'],
  ['SQLITE_CANTOPEN', sqlite('SQLITE_CANTOPEN', 'unable to open database file'), 'IO', 'EACCES'],
  ['SQLITE_CORRUPT', sqlite('SQLITE_CORRUPT', 'database disk image is malformed'), 'DATABASE', null],
  ['SQLITE_CONSTRAINT', sqlite('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed'), 'DATABASE', null],
  ['an AbortError', Object.assign(new Error('aborted'), { name: 'AbortError' }), 'ABORTED', null],
  ['a TypeError (a bug)', new TypeError("Cannot read properties of undefined (reading 'x')"), 'INTERNAL', null],
  [
    'a zlib error that escaped',
    Object.assign(new Error('incorrect data check'), { code: 'Z_DATA_ERROR', errno: -3 }),
    'INTERNAL',
    null,
  ],
];

test(`wrapError: ${KINDS.length} kinds of foreign error → the right code, the original as cause`, () => {
  for (const [what, err, code, errno] of KINDS) {
    const e = wrapError(err);
    assert.ok(e instanceof MsbError, what);
    assert.equal(e.code, code, `${what}: ${e.code}: ${e.message}`);
    if (errno) assert.equal((e.details as { errno: string }).errno, errno, what);
    if (code !== 'ABORTED') assert.equal(e.cause, err, what);
  }
  const mine = new Error('the caller’s own');
  markCallerError(mine);
  assert.equal(wrapError(mine), mine);
  assert.equal(wrapError('a string a callback threw'), 'a string a callback threw');
  const typed = new MsbError('IO', 'typed');
  assert.equal(wrapError(typed), typed);
});

test('every boundary wraps: LocalBackend._run, builder().build(), convertLayer/stitchLayers, the CLI printer', async () => {
  const b = LocalBackend.lazy({ home: join(work.dir, 'h') });
  for (const [what, err, code] of KINDS) {
    await assert.rejects(
      b._run(async () => {
        throw err;
      }),
      (e: unknown) => e instanceof MsbError && e.code === code,
      `_run: ${what}`,
    );
  }
  // A home that is a file: build() fails typed (IO), not with Node's raw error.
  const file = join(work.dir, 'a-file');
  (await import('node:fs')).writeFileSync(file, 'x');
  await assert.rejects(LocalBackend.builder().home(join(file, 'home')).build(), (e: unknown) => {
    return e instanceof MsbError && e.code === 'IO';
  });
  const boom = guarded(async () => {
    throw new RangeError('an invariant broke');
  });
  await assert.rejects(boom(), (e: unknown) => e instanceof MsbError && e.code === 'INTERNAL');
  await assert.rejects(convertLayer(join(work.dir, 'missing.tar'), join(work.dir, 'o.erofs')), (e: unknown) => {
    return e instanceof MsbError && e.code === 'IO';
  });
  await assert.rejects(stitchLayers([join(work.dir, 'missing.erofs')], join(work.dir, 'out')), (e: unknown) => {
    return e instanceof MsbError;
  });
  for (const [what, err, code] of KINDS) {
    const stderr = new PassThrough();
    let text = '';
    stderr.on('data', (d) => {
      text += d;
    });
    reportError(err, {
      debug: false,
      color: false,
      stdout: new PassThrough(),
      stderr,
      stdin: new PassThrough(),
      signal: new AbortController().signal,
      env: {},
    });
    assert.match(text, new RegExp(`^msb: ${code}: `), `printer: ${what}: ${text}`);
    assert.doesNotMatch(text, /\n\s+at /, `printer: ${what}`);
  }
});

test("a throwing onProgress: the load rejects with exactly the caller's error (never wrapped)", async () => {
  const b = await LocalBackend.builder().home(join(work.dir, 'progress')).build();
  const mine = new Error('stop here');
  await assert.rejects(
    Image.loadLocal(b, Readable.from([smallArchive()]), {
      onProgress: () => {
        throw mine;
      },
    }),
    (e: unknown) => e === mine,
  );
  await b.close();
});

test('the msb process: an uncaught exception or an unhandled rejection prints one msb: INTERNAL line, no stack, status 1', () => {
  const main = pathToFileURL(join(PROJECT_ROOT, 'dist', 'src', 'cli', 'main.js')).href;
  for (const [what, code] of [
    ['exception', "setTimeout(() => { throw new TypeError('boom from a callback'); }, 1);"],
    ['rejection', "Promise.reject(new Error('nobody handled this'));"],
    ['stream error', "new (await import('node:stream')).PassThrough().destroy(new Error('an unheard error event'));"],
  ] as const) {
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(main)}); m.installCrashGuard(); ${code}`],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /^msb: INTERNAL: internal error \(a bug in msb-image, please report it\): /, what);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${what}: ${r.stderr}`);
  }
});

test('toMsbError keeps an fs error’s path and errno', () => {
  const e = toMsbError(sys('ENOSPC', 'write', '/cache/tmp/load-1/members'));
  assert.equal(e.code, 'IO');
  assert.deepEqual(
    { path: (e.details as { path: string }).path, errno: (e.details as { errno: string }).errno },
    { path: '/cache/tmp/load-1/members', errno: 'ENOSPC' },
  );
});

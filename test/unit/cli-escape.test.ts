/**
 * Terminal escapes from image content (issue 9 item 7, docs/cli.md §2): values from an image, an
 * archive or a registry reach the terminal escaped, through the real `msb` process; JSON output
 * stays exact. Control-character kinds: OSC (retitle), CSI (clear screen), CR, LF, tab, NUL, DEL,
 * the one-byte C1 CSI U+009B, and the bidi override U+202E.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Image, LocalBackend } from '../../src/index.js';
import { termSafe } from '../../src/cli/escape.js';
import { ProgressRenderer } from '../../src/cli/progress.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { spawnMsb } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';
import { file, tar } from '../helpers/tar-writer.js';

/** One value per kind, and how it must read once escaped. */
const KINDS: [name: string, raw: string, shown: string][] = [
  ['OSC title', '\x1b]0;pwned\x07', '\\x1b]0;pwned\\x07'],
  ['CSI clear', '\x1b[2J', '\\x1b[2J'],
  ['CR', 'a\rb', 'a\\rb'],
  ['LF', 'a\nFAKE: line', 'a\\nFAKE: line'],
  ['tab', 'a\tb', 'a\\tb'],
  ['NUL', 'a\x00b', 'a\\x00b'],
  ['DEL', 'a\x7fb', 'a\\x7fb'],
  ['C1 CSI', '\u009b2J', '\\u009b2J'],
  ['bidi override', 'txt.\u202eexe', 'txt.\\u202eexe'],
];

/** Any character a terminal would act on, except the newlines that end our own lines. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('termSafe escapes every kind and leaves clean text (and backslashes) alone', () => {
  for (const [name, raw, shown] of KINDS) assert.equal(termSafe(raw), shown, name);
  const clean = 'python:3.12 C:\\dir ünïcødé ☺';
  assert.equal(termSafe(clean), clean);
  assert.doesNotMatch(termSafe(KINDS.map((k) => k[1]).join('')), RAW_CONTROL);
});

async function hostileHome(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const b = LocalBackend.lazy({ home: dir });
  const labels: Record<string, string> = {};
  KINDS.forEach(([, raw], i) => {
    labels[`l${i}`] = raw;
  });
  labels['key\x1b[31m'] = 'v';
  await publishFakeImage(b, {
    refs: ['evil:1'],
    layers: ['e'],
    config: {
      Env: KINDS.map(([, raw], i) => `E${i}=${raw}`),
      Cmd: ['sh', '\x1b[2J'],
      WorkingDir: '/w\x1b]0;title\x07',
      User: 'u\r\nroot',
      StopSignal: 'SIG\u009bTERM',
      Labels: labels,
    },
  });
  const detail = await Image.inspectLocal(b, 'evil:1');
  await b.close();
  return { dir, detail };
}

test('msb image inspect (real process): Env, WorkingDir, User, StopSignal, Labels and Cmd are escaped; every kind is shown as its escape', async (t) => {
  const { dir } = await hostileHome(t);
  const r = spawnMsb(['--home', dir, 'image', 'inspect', 'evil:1']);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, RAW_CONTROL, 'no raw control character reaches the terminal');
  for (const [name, , shown] of KINDS) {
    assert.ok(r.stdout.includes(shown), `${name}: ${JSON.stringify(shown)} in Env`);
  }
  assert.match(r.stdout, /^ {2}WorkingDir: {2}\/w\\x1b\]0;title\\x07$/m);
  assert.match(r.stdout, /^ {2}User: {8}u\\r\\nroot$/m);
  assert.match(r.stdout, /^ {2}StopSignal: {2}SIG\\u009bTERM$/m);
  assert.match(r.stdout, /^ {15}key\\x1b\[31m=v$/m);
  // An LF in a value never starts a line of its own.
  assert.doesNotMatch(r.stdout, /^FAKE: line/m);
});

test('msb image inspect --format json stays exact: JSON.parse gives the raw values back', async (t) => {
  const { dir, detail } = await hostileHome(t);
  const r = spawnMsb(['--home', dir, 'image', 'inspect', '--format', 'json', 'evil:1']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, JSON.stringify([detail]) + '\n');
  const back = JSON.parse(r.stdout)[0];
  assert.deepEqual(
    back.config.env,
    KINDS.map(([, raw], i) => `E${i}=${raw}`),
  );
  assert.equal(back.config.user, 'u\r\nroot');
});

test('errors printed by the CLI are escaped: LAYER_INVALID with a hostile tar entry name, and a hostile argument', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const evil = join(dir, 'evil.tar');
  writeFileSync(evil, tar(file('ok\x1b]0;pwned\x07\u009b2J\u202e\r/../../x', 'hi')));
  const r = spawnMsb(['layer', 'convert', evil, '-o', join(dir, 'out.erofs')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^msb: LAYER_INVALID: ok\\x1b\]0;pwned\\x07\\u009b2J\\u202e\\r\/\.\.\/\.\.\/x: /);
  assert.doesNotMatch(r.stderr, RAW_CONTROL);
  const arg = spawnMsb(['--home', dir, 'image', 'inspect', 'bad\u009b\u202e\x7f']);
  assert.equal(arg.status, 2);
  assert.match(arg.stderr, /^msb: INVALID_REFERENCE: /);
  assert.doesNotMatch(arg.stderr, RAW_CONTROL);
  const unknown = spawnMsb(['images', '--bad\x1b[2J']);
  assert.equal(unknown.status, 2);
  assert.doesNotMatch(unknown.stderr, RAW_CONTROL);
});

test('tables, templates and progress lines escape registry and image text', async (t) => {
  const { dir } = await hostileHome(t);
  const tpl = spawnMsb(['--home', dir, 'images', '--format', '{{.Reference}} {{json .Reference}}']);
  assert.equal(tpl.status, 0, tpl.stderr);
  assert.equal(tpl.stdout, 'evil:1 "evil:1"\n');
  const lines: string[] = [];
  const sink = {
    write(s: string) {
      lines.push(s);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  for (const tty of [false, true]) {
    const r = new ProgressRenderer(sink, { tty, now: () => 0 });
    r.handle({ type: 'warning', code: 'MIRROR_FALLBACK', message: 'mirror said \x1b]0;x\x07\u009b', elapsedMs: 0 });
    r.handle({ type: 'retry', layerIndex: null, attempt: 1, delayMs: 10, reason: 'HTTP 500 \x1b[2J\r', elapsedMs: 0 });
    r.close();
  }
  const text = lines.join('');
  assert.match(text, /msb: warning: mirror said \\x1b\]0;x\\x07\\u009b/);
  assert.match(text, /retrying \(1\/5 in 10ms\): HTTP 500 \\x1b\[2J\\r/);
  // Our own redraw sequences are the only escapes in TTY mode; none carries the hostile text.
  assert.doesNotMatch(text.replace(/\x1b\[(\d+A|2K|J)/g, '').replace(/\r/g, ''), RAW_CONTROL);
});

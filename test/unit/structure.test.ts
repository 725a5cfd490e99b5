/**
 * The structure guards of `npm run lint` can fail: each is run on a copy of the tree with one
 * deliberate violation (an upward import, an import cycle, a long function, a citation of a
 * missing section) and must reject it, while the real tree passes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, runStatus, tempDir } from '../helpers/env.js';

const script = (name: string) => join(PROJECT_ROOT, 'scripts', name);
const node = (args: string[]) => runStatus(process.execPath, args);

function copyOf(t: { after(fn: () => void): void }, what: string[]): string {
  const { dir, cleanup } = tempDir('msb-structure-');
  t.after(cleanup);
  for (const w of what) cpSync(join(PROJECT_ROOT, w), join(dir, w), { recursive: true });
  return dir;
}

function append(path: string, text: string): void {
  writeFileSync(path, readFileSync(path, 'utf8') + text);
}

test('check-layers: the real tree passes; an upward import and a cycle are reported', (t) => {
  const ok = node([script('check-layers.mjs'), join(PROJECT_ROOT, 'src')]);
  assert.equal(ok.status, 0, ok.stderr);
  const dir = copyOf(t, ['src']);
  append(
    join(dir, 'src/store/gc.ts'),
    "\nimport type { ImageDetail } from '../api/types.js';\nexport type X = ImageDetail;\n",
  );
  const up = node([script('check-layers.mjs'), join(dir, 'src')]);
  assert.equal(up.status, 1);
  assert.match(up.stderr, /store\/gc\.ts imports \.\.\/api\/types\.js: 'api' is not below 'store'/);

  const dir2 = copyOf(t, ['src']);
  append(join(dir2, 'src/store/paths.ts'), "\nimport './gc.js';\n");
  append(join(dir2, 'src/store/gc.ts'), "\nimport './paths.js';\n");
  const cyc = node([script('check-layers.mjs'), join(dir2, 'src')]);
  assert.equal(cyc.status, 1);
  assert.match(cyc.stderr, /import cycle: store\/(gc|paths)\.ts → store\/(gc|paths)\.ts/);
});

test('check-size: a long function fails unless a `long:` comment says why', (t) => {
  const ok = node([script('check-size.mjs'), join(PROJECT_ROOT, 'src')]);
  assert.equal(ok.status, 0, ok.stderr);
  const dir = copyOf(t, ['src']);
  const body = Array.from({ length: 85 }, (_, i) => `  x += ${i};`).join('\n');
  writeFileSync(
    join(dir, 'src/util/long.ts'),
    `export function tooLong(): number {\n  let x = 0;\n${body}\n  return x;\n}\n`,
  );
  const bad = node([script('check-size.mjs'), join(dir, 'src')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /util\/long\.ts:1: function tooLong is \d+ lines/);
  writeFileSync(
    join(dir, 'src/util/long.ts'),
    `// long: a test of the escape hatch\nexport function tooLong(): number {\n  let x = 0;\n${body}\n  return x;\n}\n`,
  );
  assert.equal(node([script('check-size.mjs'), join(dir, 'src')]).status, 0);
});

test('check-doc-refs: every docs/ citation resolves; a missing section and an outside file are reported', (t) => {
  const ok = node([script('check-doc-refs.mjs'), PROJECT_ROOT]);
  assert.equal(ok.status, 0, ok.stderr);
  const dir = copyOf(t, ['src', 'test', 'docs']);
  // Built from parts so that this file itself cites nothing the checker would read.
  const sec = '\u00a7';
  const outside = ['pull', 'md'].join('.');
  append(join(dir, 'src/store/gc.ts'), `\n// See docs/storage.md ${sec}99 and ${outside} ${sec}1.\n`);
  const bad = node([script('check-doc-refs.mjs'), dir]);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout + bad.stderr, /docs\/storage\.md has no heading \u00a799/);
  assert.match(bad.stdout + bad.stderr, /pull\.md \u00a71 cites a file outside the repository/);
});

/**
 * Shell completion (issue 10 item 3; docs/cli.md §1): the bash script from `msb completion bash`
 * is sourced in a real bash, which must report `complete -F _msb msb` and complete commands,
 * subcommands, flags, flag values and cached references (with `:` in them) by running the real
 * `msb` from PATH. The zsh and fish scripts run the same engine (`msb __complete`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalBackend } from '../../src/index.js';
import { complete } from '../../src/cli/completion.js';
import { publishFakeImage } from '../helpers/index-fixtures.js';
import { spawnMsb } from '../helpers/msb-cli.js';
import { tempDir } from '../helpers/env.js';

const MSB_BIN = fileURLToPath(new URL('../../../bin/msb.js', import.meta.url));

async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const home = join(dir, 'home');
  const b = LocalBackend.lazy({ home });
  await publishFakeImage(b, { refs: ['busybox:1.36', 'busybox:latest', 'ghcr.io/org/app:v1'], layers: ['x'] });
  await b.close();
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'msb'), `#!/bin/sh\nexec '${process.execPath}' '${MSB_BIN}' "$@"\n`);
  chmodSync(join(bin, 'msb'), 0o755);
  const script = spawnMsb(['completion', 'bash']);
  assert.equal(script.status, 0, script.stderr);
  writeFileSync(join(dir, 'msb.bash'), script.stdout);
  return { dir, home, bin, script: join(dir, 'msb.bash') };
}

/** Sources the script in a real bash and completes each line; returns COMPREPLY per line. */
function bashComplete(
  s: { bin: string; home: string; script: string },
  lines: string[],
): { spec: string; replies: string[][] } {
  const body = [
    'set -u',
    `source '${s.script}'`,
    'complete -p msb',
    ...lines.flatMap((l) => [
      `COMP_LINE=${JSON.stringify(l)}; COMP_POINT=\${#COMP_LINE}`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash text, meant literally
      'read -ra COMP_WORDS <<<"$COMP_LINE"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))',
      '_msb',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash text, meant literally
      'echo "<<${COMPREPLY[*]-}>>"',
    ]),
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', body], {
    encoding: 'utf8',
    env: { PATH: `${s.bin}:${process.env.PATH}`, MSB_HOME: s.home, HOME: s.home },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout.split('\n');
  return {
    spec: out[0]!,
    replies: [...r.stdout.matchAll(/<<(.*)>>/g)].map((m) => (m[1] ? m[1].split(' ').sort() : [])),
  };
}

test('bash: complete -p msb, commands, subcommands, flags, flag values and cached references', async (t) => {
  const s = await setup(t);
  const { spec, replies } = bashComplete(s, [
    'msb ima',
    'msb image ins',
    'msb images --f',
    'msb images --format ',
    'msb rmi ',
    'msb rmi busybox:1',
    'msb --home /nonexistent rmi ',
    'msb ',
    'msb help reg',
    'msb pull --policy al',
  ]);
  assert.equal(spec, 'complete -F _msb msb');
  assert.deepEqual(replies, [
    ['image', 'images'],
    ['inspect'],
    ['--filter', '--format'],
    ['json', 'table'],
    ['busybox:1.36', 'busybox:latest', 'ghcr.io/org/app:v1'],
    ['1.36'], // bash replaces only what follows the last ':' of "busybox:1"
    [],
    [
      'completion',
      'help',
      'image',
      'images',
      'layer',
      'load',
      'ls-tags',
      'manifest',
      'pull',
      'registry',
      'rmi',
      'sandbox',
      'save',
      'snapshot',
      'tag',
      'version',
    ],
    ['registry'],
    ['always'],
  ]);
});

test('the engine: file operands and file-valued flags defer to the shell; --flag=value; global flags', async () => {
  const env = { MSB_HOME: '/nonexistent-msb-home' };
  assert.deepEqual(await complete(['layer', 'convert'], '', env), { items: [], files: true });
  assert.deepEqual(await complete(['load', '-i'], '', env), { items: [], files: true });
  assert.deepEqual(await complete(['save'], '--format=', env), {
    items: ['--format=docker', '--format=oci'],
    files: false,
  });
  assert.deepEqual((await complete([], '--h', env)).items, ['--home', '--help']);
  assert.deepEqual((await complete(['completion'], '', env)).items, []);
});

test('zsh and fish scripts run the same engine', () => {
  const z = spawnMsb(['completion', 'zsh']);
  assert.equal(z.status, 0);
  assert.match(z.stdout, /^#compdef msb\n/);
  assert.match(z.stdout, /command msb __complete /);
  assert.match(z.stdout, /compdef _msb msb\n$/);
  const f = spawnMsb(['completion', 'fish']);
  assert.equal(f.status, 0);
  assert.match(f.stdout, /command msb __complete \$tokens\[2\.\.-1\] "\$cur"/);
  assert.match(f.stdout, /complete -c msb -f -a '\(__msb_complete\)'\n$/);
  assert.equal(spawnMsb(['completion', 'tcsh']).status, 2);
  // What those scripts print for `msb ima`:
  const r = spawnMsb(['__complete', 'ima']);
  assert.equal(r.stdout, 'image\nimages\n');
});

/**
 * `msb pull` as a real process (acceptance G1, G9): plain progress lines when stderr is not a
 * TTY, live bars under a pty (`script`), `-q`, the result lines, usage errors, and SIGINT → 130
 * with a working next pull.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ensureRegistry, tempDir } from '../helpers/env.js';
import { FaultServer } from '../helpers/fault-server.js';
import { indexProblems, msb, msbArgv, rows } from '../helpers/pull-env.js';

const R0 = ensureRegistry('noauth');
const faults: FaultServer[] = [];
after(async () => {
  for (const f of faults) await f.close();
});

function home(t: { after(fn: () => unknown): void }): string {
  const td = tempDir('msb-pull-cli-');
  t.after(td.cleanup);
  return td.dir;
}

test('G1: not a TTY: plain progress lines without control characters, `Pulled …` on stdout; then what a cache hit checked', async (t) => {
  const h = home(t);
  const ref = `${R0.host}/peers/busybox`;
  const r = await msb(['--home', h, 'pull', ref]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(
      `^Pulled ${ref.replace(/\./g, '\\.')}:latest \\(sha256:[0-9a-f]{64}\\) from ${R0.host.replace(/\./g, '\\.')}\\n$`,
    ),
  );
  assert.doesNotMatch(r.stderr, /[\x1b\r]/);
  assert.match(r.stderr, /resolved sha256:[0-9a-f]{12} \(linux\/amd64, 1 layer, /);
  assert.match(r.stderr, /^layer 1\/1 sha256:[0-9a-f]{12} downloading/m);
  assert.match(r.stderr, /^layer 1\/1 sha256:[0-9a-f]{12} converted /m);
  assert.match(r.stderr, /^stitching fsmeta \+ vmdk/m);
  // The default policy uses the cached tag without asking the registry, and says so.
  const again = await msb(['--home', h, 'pull', ref]);
  assert.equal(again.status, 0);
  assert.equal(again.stdout, `${ref}:latest is cached; not checked against the registry (use --policy always)\n`);
  assert.doesNotMatch(again.stderr, /[\x1b\r]/);
  const checked = await msb(['--home', h, 'pull', '--policy', 'always', ref]);
  assert.equal(checked.status, 0, checked.stderr);
  assert.equal(checked.stdout, `${ref}:latest is up to date (checked against ${R0.host})\n`);
});

test('G1: -q prints only the familiar reference and nothing on stderr', async (t) => {
  const h = home(t);
  const r = await msb(['--home', h, 'pull', '-q', `${R0.host}/peers/multilayer`]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${R0.host}/peers/multilayer:latest\n`);
  assert.equal(r.stderr, '');
});

test('G1: under a pty, per-layer bars are drawn', async (t) => {
  const h = home(t);
  const cmd = [process.execPath, ...msbArgv(), '--home', h, 'pull', `${R0.host}/peers/multilayer`]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  const r = spawnSync('script', ['-qefc', cmd, '/dev/null'], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '120' },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const out = r.stdout;
  assert.match(out, /\x1b\[/, 'ANSI redraws');
  assert.match(out, /[0-9a-f]{12} {2}(Downloading|Converting|Done)/);
  assert.match(out, /\[[= >]{20}\]/, 'a progress bar');
  assert.match(out, /Stitching fsmeta \+ vmdk … done/);
  assert.match(out, /Pulled /);
});

test('usage errors exit 2: a bad reference, an unknown flag, --force with --policy never, no REF', async (t) => {
  const h = home(t);
  for (const args of [
    ['pull', 'Bad/Ref'],
    ['pull', '--bogus', 'x'],
    ['pull', '--force', '--policy', 'never', 'x'],
    ['pull'],
  ]) {
    const r = await msb(['--home', h, ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  const help = await msb(['pull', '--help']);
  assert.equal(help.status, 0);
  for (const flag of ['-q', '--platform', '--policy', '--force', '--insecure', '--ca-certs'])
    assert.ok(help.stdout.includes(flag), flag);
  const nc = await msb(['--home', h, 'pull', '--policy', 'never', `${R0.host}/peers/busybox`]);
  assert.equal(nc.status, 3, nc.stderr);
  assert.match(nc.stderr, /^msb: NOT_CACHED: /m);
});

test('G9: SIGINT during a pull exits 130, leaves no lease, and the next pull succeeds', async (t) => {
  const f = await FaultServer.start({ upstream: `http://${R0.host}` });
  faults.push(f);
  let slow = true;
  f.handlers.push(async (req: IncomingMessage, res: ServerResponse) => {
    if (!slow || req.method !== 'GET' || !/\/blobs\//.test(req.url!)) return false;
    const up = await f.fetchUpstream('GET', req.url!, req.headers);
    const hd: Record<string, string> = {};
    for (const k of ['content-type', 'content-range'])
      if (typeof up.headers[k] === 'string') hd[k] = up.headers[k] as string;
    res.writeHead(up.status, { ...hd, 'content-length': String(up.body.length) });
    for (let i = 0; i < up.body.length && !res.destroyed; i += 32768) {
      res.write(up.body.subarray(i, i + 32768));
      await new Promise((r) => setTimeout(r, 30));
    }
    res.end();
    return true;
  });
  const h = home(t);
  const ref = `${f.host}/peers/multilayer`;
  const tmp = join(h, 'cache', 'tmp');
  const r = await msb(['--home', h, 'pull', ref], {
    onSpawn: (c) => {
      const timer = setInterval(() => {
        const parts = existsSync(tmp) ? readdirSync(tmp).filter((n) => n.endsWith('.part')) : [];
        if (parts.some((p) => statSync(join(tmp, p)).size > 64 * 1024)) {
          clearInterval(timer);
          c.kill('SIGINT');
        }
      }, 10);
      c.on('exit', () => clearInterval(timer));
    },
  });
  assert.equal(r.status, 130, r.stderr);
  assert.match(r.stderr, /ABORTED/);
  assert.deepEqual(rows(h, 'SELECT * FROM lease'), []);
  assert.ok(
    readdirSync(tmp).some((n) => n.endsWith('.part')),
    'the .part is kept',
  );
  slow = false;
  const again = await msb(['--home', h, 'pull', ref]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /^Pulled /);
  assert.match(again.stderr, /resuming at /);
  assert.deepEqual(await indexProblems(h), []);
});

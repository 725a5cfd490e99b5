/**
 * Settings, certificate, secret, docker-config and cache-marker files (issue 9 item 5): every reader
 * goes through the one small-file reader, so for each of them a FIFO opens without blocking and is
 * refused, a device (through a symlink) or a directory or a socket is refused, an oversized file is
 * LIMIT_EXCEEDED before it is read, and a regular file still works. The same kinds through the real
 * CLI process (one process for the family), as the defects were seen.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { MsbError } from '../../src/errors.js';
import { FIXED_LIMITS } from '../../src/limits.js';
import { loadCaFiles } from '../../src/registry/http.js';
import { readDockerConfig, readSecretFile } from '../../src/registry/credentials.js';
import { readSettings } from '../../src/settings/settings.js';
import { checkMarker } from '../../src/store/marker.js';
import { MARKER_NAME } from '../../src/store/paths.js';
import { tempDir } from '../helpers/env.js';
import { runCliBatch, type CliCase } from '../helpers/cli-batch.js';
import { assertCliFailure } from '../helpers/archives.js';

const work = tempDir('msb-small-files-');
const servers: { close(): void }[] = [];
const writers: ChildProcess[] = [];
after(() => {
  for (const w of writers) w.kill('SIGKILL');
  for (const s of servers) s.close();
  work.cleanup();
});

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

/** Makes `path` one kind of file; `content` is what a valid file of this reader holds. */
async function make(kind: string, path: string, content: string, limit: number): Promise<void> {
  switch (kind) {
    case 'fifo': {
      execFileSync('mkfifo', [path]);
      // A regression (a blocking open of the FIFO) must fail, not hang the suite: after 5 s a writer
      // appears and releases such an open, which then reads garbage and fails the assertions. The
      // fixed reader never waits for it; the writer is killed at the end.
      const w = spawn('sh', ['-c', `sleep 5; exec 3>'${path}'; echo x >&3`], { stdio: 'ignore' });
      w.on('error', () => {});
      writers.push(w);
      break;
    }
    case 'symlink to /dev/zero':
      symlinkSync('/dev/zero', path);
      break;
    case 'directory':
      mkdirSync(path);
      break;
    case 'unix socket': {
      const s = createServer();
      await new Promise<void>((ok) => s.listen(path, ok));
      servers.push(s);
      break;
    }
    case 'over the limit (sparse)':
      writeFileSync(path, content, { mode: 0o600 });
      truncateSync(path, limit + 1);
      break;
    case 'regular':
      writeFileSync(path, content, { mode: 0o600 });
      break;
    default:
      throw new Error(kind);
  }
}

const KINDS = ['fifo', 'symlink to /dev/zero', 'directory', 'unix socket', 'over the limit (sparse)', 'regular'];

interface Reader {
  name: string;
  limit: string;
  content: string;
  /** Where the file goes, in a fresh directory. */
  place(dir: string): string;
  read(dir: string): unknown;
}

const READERS: Reader[] = [
  {
    name: 'config.json',
    limit: 'configFileBytes',
    content: '{}',
    place: (d) => join(d, 'config.json'),
    read: (d) => readSettings(d),
  },
  {
    name: 'a CA file',
    limit: 'caCertFileBytes',
    content: PEM,
    place: (d) => join(d, 'ca.pem'),
    read: (d) => loadCaFiles([join(d, 'ca.pem')]),
  },
  {
    name: 'a secret',
    limit: 'secretFileBytes',
    content: 'pw',
    place: (d) => {
      mkdirSync(join(d, 'secrets'), { mode: 0o700 });
      return join(d, 'secrets', 'reg');
    },
    read: (d) => readSecretFile(d, 'reg', 'registries.hosts.x.auth'),
  },
  {
    name: 'the docker config',
    limit: 'configFileBytes',
    content: '{"auths":{}}',
    place: (d) => join(d, 'config.json'),
    read: (d) => readDockerConfig({ DOCKER_CONFIG: d }),
  },
  {
    name: 'the cache marker',
    limit: 'markerFileBytes',
    content: '{"format":"msb-image/1","indexId":"abc"}',
    place: (d) => join(d, MARKER_NAME),
    read: (d) => checkMarker(d, 'abc'),
  },
];

// A blocking open would never return: the timeout turns that hang into a failure.
test(`small files: ${READERS.length} readers × ${KINDS.length} kinds → never blocks, typed refusal, a regular file works`, {
  timeout: 60_000,
}, async () => {
  let n = 0;
  for (const r of READERS) {
    for (const kind of KINDS) {
      const dir = join(work.dir, `r${n++}`);
      mkdirSync(dir);
      const limit = (FIXED_LIMITS as Record<string, number>)[r.limit]!;
      await make(kind, r.place(dir), r.content, limit);
      const what = `${r.name} as ${kind}`;
      let err: unknown = null;
      try {
        r.read(dir);
      } catch (e) {
        err = e;
      }
      if (kind === 'regular') {
        assert.equal(err, null, `${what}: ${String(err)}`);
        continue;
      }
      assert.ok(err instanceof MsbError, `${what}: ${String(err)}`);
      if (r.name === 'the cache marker') {
        // Unreadable marker = not ours: "belongs to another msb home", never a hang or a read.
        assert.equal(err.code, 'SETTINGS_INVALID', `${what}: ${err.message}`);
        continue;
      }
      if (kind.startsWith('over the limit')) {
        assert.equal(err.code, 'LIMIT_EXCEEDED', `${what}: ${err.message}`);
        assert.equal((err.details as { limit: string }).limit, r.limit, what);
      } else {
        assert.equal(err.code, 'SETTINGS_INVALID', `${what}: ${err.message}`);
        if (kind !== 'unix socket' && !(r.name === 'a secret' && kind.startsWith('symlink')))
          assert.match(err.message, /not a regular file/, what);
      }
    }
  }
});

test('small files through the real CLI (one msb process): config.json and --ca-certs as FIFO, /dev/zero, oversized', async () => {
  const cases: CliCase[] = [];
  const labels: [string, string][] = [];
  for (const kind of ['fifo', 'symlink to /dev/zero', 'over the limit (sparse)']) {
    const home = join(work.dir, `cli-${cases.length}`);
    mkdirSync(home);
    await make(kind, join(home, 'config.json'), '{}', FIXED_LIMITS.configFileBytes);
    cases.push({ args: ['images'], env: { MSB_HOME: home } });
    labels.push([`config.json as ${kind}`, kind.startsWith('over') ? 'LIMIT_EXCEEDED' : 'SETTINGS_INVALID']);
  }
  for (const kind of ['fifo', 'symlink to /dev/zero', 'over the limit (sparse)']) {
    const home = join(work.dir, `cli-${cases.length}`);
    mkdirSync(home);
    const ca = join(home, 'ca.pem');
    await make(kind, ca, PEM, FIXED_LIMITS.caCertFileBytes);
    // The CA file is read before any connection: no registry is needed (port 9 is closed).
    cases.push({ args: ['image', 'digest', '--ca-certs', ca, '127.0.0.1:9/x/y:1'], env: { MSB_HOME: home } });
    labels.push([`--ca-certs as ${kind}`, kind.startsWith('over') ? 'LIMIT_EXCEEDED' : 'SETTINGS_INVALID']);
  }
  const batch = await runCliBatch(cases, { timeoutMs: 60_000 });
  assert.equal(batch.exit, 0, `the CLI process died or hung: ${batch.stderr}`);
  for (const [i, r] of batch.results.entries()) assertCliFailure(r, labels[i]![1], labels[i]![0]);
});

/**
 * Small synthetic load archives for the reliability tests: docker-save archives whose images may
 * share layer members, OCI layouts with any index.json, gzip / zstd variants, and the home checks
 * every hostile-input test ends with (no temp entry, no lease, no ref).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MsbError } from '../../src/errors.js';
import { rows, tmpEntries } from './pull-env.js';
import { dir, file, tar } from './tar-writer.js';

export const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export interface DockerImageSpec {
  repoTags: string[] | null;
  /** Layer member names (bottom first) → their content (uncompressed tars). */
  layers: { name: string; tar: Buffer }[];
  /** Extra config fields (to make configs differ). */
  extra?: Record<string, unknown>;
}

/** A one-file layer tar. */
export function layerTar(name: string, content: string): Buffer {
  return tar(file(name, content));
}

/**
 * A docker-save archive (legacy names): `<hex>.json` configs, the given layer members (each written
 * once even when several images name it), `manifest.json` last, as docker writes it; `extra` members
 * go first.
 */
export function dockerArchive(images: DockerImageSpec[], extra: Buffer[] = []): Buffer {
  const parts: Buffer[] = [...extra];
  const written = new Set<string>();
  const manifest: unknown[] = [];
  for (const im of images) {
    for (const l of im.layers) {
      if (written.has(l.name)) continue;
      written.add(l.name);
      parts.push(file(l.name, l.tar));
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        ...im.extra,
        rootfs: { type: 'layers', diff_ids: im.layers.map((l) => sha(l.tar)) },
      }),
    );
    const configName = `${sha(config).slice(7)}.json`;
    if (!written.has(configName)) parts.push(file(configName, config));
    written.add(configName);
    manifest.push({ Config: configName, RepoTags: im.repoTags, Layers: im.layers.map((l) => l.name) });
  }
  parts.push(file('manifest.json', JSON.stringify(manifest)));
  return tar(...parts);
}

/** A small, valid, two-layer docker archive named `name`. */
export function smallArchive(name = 'rel/small:1', extra: Buffer[] = []): Buffer {
  return dockerArchive(
    [
      {
        repoTags: [name],
        layers: [
          { name: 'a/layer.tar', tar: layerTar('a.txt', 'alpha\n') },
          { name: 'b/layer.tar', tar: layerTar('b.txt', 'beta\n'.repeat(100)) },
        ],
      },
    ],
    extra,
  );
}

/** An OCI layout archive: `blobs` (digest → bytes), `oci-layout`, and `index` as index.json. */
export function ociArchive(blobs: Buffer[], index: unknown): Buffer {
  const parts = [dir('blobs/'), dir('blobs/sha256/')];
  for (const b of blobs) parts.push(file(`blobs/sha256/${sha(b).slice(7)}`, b));
  parts.push(file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'), file('index.json', JSON.stringify(index)));
  return tar(...parts);
}

export function gzip(b: Buffer): Buffer {
  return gzipSync(b, { level: 1 });
}

/** zstd with a content checksum (the `zstd` program, as the fixtures use). */
export function zstd(b: Buffer): Buffer {
  const r = spawnSync('zstd', ['-q', '-c', '--check'], { input: b, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

/** Awaits `p`, which must reject with an MsbError; returns it. */
export async function msbRejection(p: Promise<unknown>, what = ''): Promise<MsbError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MsbError, `${what}: expected an MsbError, got ${e instanceof Error ? e.stack : String(e)}`);
    return e;
  }
  assert.fail(`${what}: expected a rejection, but it resolved`);
}

/** Nothing outlives a failed load: no temp entry, no lease, no ref (docs/archives.md §7). */
export function assertClean(home: string, what: string): void {
  assert.deepEqual(tmpEntries(home), [], `${what}: temp entries left`);
  assert.equal(rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM lease')[0]!.n, 0, `${what}: a lease is left`);
  assert.equal(rows<{ n: number }>(home, 'SELECT COUNT(*) AS n FROM image_ref')[0]!.n, 0, `${what}: a ref was added`);
}

/** A CLI failure: the given exit status, one `msb: CODE: …` line (plus hint lines), never a stack trace. */
export function assertCliFailure(r: { status: number; stderr: string }, code: string, what: string): void {
  assert.notEqual(r.status, 0, `${what}: exit status 0`);
  const lines = r.stderr.trimEnd().split('\n');
  const errors = lines.filter((l) => !/^(hint: |msb: warning: )/.test(l));
  assert.equal(errors.length, 1, `${what}: expected one error line: ${r.stderr}`);
  assert.match(errors[0]!, new RegExp(`^msb: ${code}: `), `${what}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |Unhandled|node:internal/, `${what}: a stack trace`);
}

/**
 * Cache governance benchmark: `msb image verify` of a cache of 1,000 images vs `sha256sum` of the
 * same artifact files (the floor: reading and hashing every byte once, nothing else), as whole
 * processes, with the time per GiB of artifacts.
 *
 * The cache: the Debian minbase image pulled from the bench registry, then 999 more images that
 * use its layer, each a real manifest of its own (the same config and layer, an annotation
 * `bench.clone`) with its own fsmeta and VMDK, built by `msb image verify --repair` (the stitch
 * step, offline). Setup is untimed.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { msb, requireBuilt } from './commands.js';
import { BENCH_REGISTRY, benchRegistry } from './fixtures.js';
import { compare, runOnce, type BenchOptions } from './harness.js';

interface ManifestRow {
  id: number;
  digest: string;
  raw: Buffer;
  [k: string]: unknown;
}

/** Adds `n − 1` images sharing the pulled image's layer, without their fsmeta/VMDK files. */
function cloneImages(home: string, n: number): void {
  const db = new Database(join(home, 'db', 'msb.db'));
  try {
    const m = db.prepare('SELECT * FROM manifest').get() as ManifestRow;
    const layers = db.prepare('SELECT * FROM manifest_layer WHERE manifest_id = ?').all(m.id) as Record<
      string,
      unknown
    >[];
    const cols = Object.keys(m).filter((c) => c !== 'id');
    const insM = db.prepare(
      `INSERT INTO manifest (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`,
    );
    const lcols = Object.keys(layers[0]!);
    const insL = db.prepare(
      `INSERT INTO manifest_layer (${lcols.join(', ')}) VALUES (${lcols.map((c) => `@${c}`).join(', ')})`,
    );
    const insR = db.prepare(
      'INSERT INTO image_ref (reference, manifest_id, index_digest, created_at, last_used_at) VALUES (?, ?, NULL, ?, ?)',
    );
    const doc = JSON.parse(m.raw.toString('utf8')) as { annotations?: Record<string, string> };
    db.transaction(() => {
      for (let i = 1; i < n; i++) {
        const raw = Buffer.from(
          JSON.stringify({ ...doc, annotations: { ...doc.annotations, 'bench.clone': String(i) } }),
        );
        const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
        const row = { ...m, digest, raw, fsmeta_bytes: null, vmdk_bytes: null, fsmeta_digest: null, vmdk_digest: null };
        delete (row as Partial<ManifestRow>).id;
        const id = Number(insM.run(row).lastInsertRowid);
        for (const l of layers) insL.run({ ...l, manifest_id: id });
        insR.run(`${BENCH_REGISTRY}/bench/clone${i}:latest`, id, Date.now(), Date.now());
      }
    })();
  } finally {
    db.close();
  }
}

function artifactFiles(cache: string): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  for (const d of ['layers', 'fsmeta', 'vmdk'])
    for (const f of readdirSync(join(cache, d))) {
      files.push(join(d, f));
      bytes += statSync(join(cache, d, f)).size;
    }
  return { files, bytes };
}

export async function benchVerify(o: BenchOptions & { images?: number }): Promise<void> {
  requireBuilt();
  const images = o.images ?? 1_000;
  benchRegistry(o.log);
  const home = mkdtempSync(join(tmpdir(), 'msb-bench-verify-'));
  try {
    runOnce({ argv: msb('--home', home, 'pull', '-q', `${BENCH_REGISTRY}/peers/debian-minbase:latest`) });
    cloneImages(home, images);
    const repair = runOnce({ argv: msb('--home', home, 'image', 'verify', '--repair', '--format', 'json') });
    const fixed = JSON.parse(repair.stdout) as { ok: boolean; counts: { fixed: number } };
    if (!fixed.ok) throw new Error('setup: verify --repair left findings');
    o.log(
      `setup: ${images} images; verify --repair built ${fixed.counts.fixed} fsmeta/VMDK files in ${repair.ms.toFixed(0)} ms`,
    );
    const cache = join(home, 'cache');
    const { files, bytes } = artifactFiles(cache);
    const gib = bytes / 2 ** 30;
    o.log(`artifacts: ${files.length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
    const c = compare(
      `msb image verify, ${images} images (${files.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB)`,
      [
        {
          label: 'msb image verify',
          cmd: {
            argv: msb('--home', home, 'image', 'verify', '--format', 'json'),
            check: (out) => {
              const r = JSON.parse(out) as { ok: boolean; counts: { layers: number; fsmeta: number } };
              if (!r.ok || r.counts.fsmeta !== images) throw new Error('verify did not check every image cleanly');
            },
          },
        },
        {
          label: 'sha256sum (floor)',
          cmd: {
            argv: ['bash', '-c', `cd '${cache}' && printf '%s\\0' "$@" | xargs -0 sha256sum >/dev/null`, 'x', ...files],
          },
        },
      ],
      o,
    );
    for (const s of c.sides)
      o.log(`  ${s.label}: ${(s.median / gib / 1000).toFixed(2)} s per GiB of artifacts (median)`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

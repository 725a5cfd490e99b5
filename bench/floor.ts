/**
 * The floor of a cold pull, run as its own process: read layer blobs (GET over loopback, or from a
 * file), decompress them and sha256 both streams, verifying both digests, and nothing else (no tar
 * parsing, no EROFS, no index). Node built-ins only (zlib with 1 MiB output chunks, like ours);
 * zstd-napi for zstd blobs. Prints {"ms", "bytesIn", "bytesOut"}: ms from the first byte
 * requested to the last hashed, so the bench has both the whole-process and the in-process figure.
 *
 * Usage: node dist/bench/floor.js '<json FloorJob>'
 *   mode net  = GET + sha256 of the compressed bytes (the network floor)
 *   mode file = read the blob file + decompress + both hashes (the decompress+hash floor)
 *   mode full = GET + decompress + both hashes (the cold-pull floor)
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Agent, get } from 'node:http';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip, type ZlibOptions } from 'node:zlib';

export interface FloorBlob {
  url?: string;
  path?: string;
  digest: string;
  diffId: string;
  kind: 'gzip' | 'zstd';
}
export interface FloorJob {
  mode: 'net' | 'file' | 'full';
  blobs: FloorBlob[];
  concurrency?: number;
}

const agent = new Agent({ keepAlive: true });

function open(b: FloorBlob, mode: FloorJob['mode']): Promise<Readable> {
  if (mode === 'file') return Promise.resolve(createReadStream(b.path!, { highWaterMark: 1 << 20 }));
  return new Promise((resolve, reject) => {
    const req = get(b.url!, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${b.url}: HTTP ${res.statusCode}`));
        return;
      }
      resolve(res);
    });
    req.on('error', reject);
  });
}

function decompressor(kind: FloorBlob['kind']): Transform {
  if (kind === 'gzip') return createGunzip({ chunkSize: 1 << 20 } as ZlibOptions);
  const zstd = createRequire(import.meta.url)('zstd-napi') as { DecompressStream: new () => Transform };
  return new zstd.DecompressStream();
}

/** A pass-through that hashes and counts what flows through it. */
function tap(): Transform & { hash: ReturnType<typeof createHash>; bytes: number } {
  const hash = createHash('sha256');
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      (t as unknown as { bytes: number }).bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { hash: typeof hash; bytes: number };
  t.hash = hash;
  t.bytes = 0;
  return t;
}

function sink(): Writable & { hash: ReturnType<typeof createHash>; bytes: number } {
  const hash = createHash('sha256');
  const w = new Writable({
    highWaterMark: 4 << 20,
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      (w as unknown as { bytes: number }).bytes += chunk.length;
      cb();
    },
  }) as Writable & { hash: typeof hash; bytes: number };
  w.hash = hash;
  w.bytes = 0;
  return w;
}

async function one(b: FloorBlob, mode: FloorJob['mode']): Promise<{ bytesIn: number; bytesOut: number }> {
  const src = await open(b, mode);
  const check = (what: string, got: string, want: string) => {
    if (got !== want) throw new Error(`${what} mismatch for ${b.digest}: got ${got}`);
  };
  if (mode === 'net') {
    const s = sink();
    await pipeline(src, s);
    check('digest', `sha256:${s.hash.digest('hex')}`, b.digest);
    return { bytesIn: s.bytes, bytesOut: 0 };
  }
  const inTap = tap();
  const out = sink();
  await pipeline(src, inTap, decompressor(b.kind), out);
  check('digest', `sha256:${inTap.hash.digest('hex')}`, b.digest);
  check('diff_id', `sha256:${out.hash.digest('hex')}`, b.diffId);
  return { bytesIn: inTap.bytes, bytesOut: out.bytes };
}

export async function runFloor(job: FloorJob): Promise<{ ms: number; bytesIn: number; bytesOut: number }> {
  const t0 = performance.now();
  const queue = [...job.blobs];
  let bytesIn = 0;
  let bytesOut = 0;
  const worker = async () => {
    for (let b = queue.shift(); b; b = queue.shift()) {
      const r = await one(b, job.mode);
      bytesIn += r.bytesIn;
      bytesOut += r.bytesOut;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, job.concurrency ?? 1) }, worker));
  return { ms: performance.now() - t0, bytesIn, bytesOut };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runFloor(JSON.parse(process.argv[2] ?? '{}') as FloorJob).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      agent.destroy();
    },
    (err: unknown) => {
      process.stderr.write(`floor: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
      agent.destroy();
    },
  );
}

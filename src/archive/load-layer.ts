/**
 * One layer member of a load (docs/archives.md §5, §7): hashing it (the Docker path needs every
 * blob digest before `resolved`) and converting it with the pull's converter (detectCompression,
 * decompressors, writeLayer), so a loaded layer file is byte-identical to a pulled one.
 *
 * A member is hashed at most once per load, whatever number of images name it (`Member.sha256`,
 * kept with its first bytes); the conversion reads it once more and verifies that digest again.
 * Precedence (docs/pull.md §7): the blob digest first, then a decode or tar error, then the diff_id.
 */
import { type Readable, Readable as ReadableClass, pipeline } from 'node:stream';
import { AbortedError, DigestMismatchError, LayerInvalidError, MsbError } from '../errors.js';
import type { DirNode } from '../erofs/tree.js';
import { DETECT_BYTES } from '../layer/compression.js';
import type { Limits } from '../limits.js';
import { compressionOfMediaType, ociLayerMediaType, type Compression } from '../oci/media-types.js';
import type { ConverterDeps } from '../pull/blob-pipeline.js';
import type { PullEmitter } from '../pull/events.js';
import { digestAlgorithm, newHash, type DigestAlgorithm } from '../util/digest.js';
import type { ArchiveMembers, Member } from './members.js';
import type { PlannedLayer } from './plan.js';

/** What converting a member needs from the load. */
export interface LayerCtx {
  members: ArchiveMembers;
  emitter: PullEmitter;
  signal: AbortSignal;
  limits: Limits;
  deps: ConverterDeps;
  warn(code: string, message: string): void;
}

/** `alg` digest of the whole member, with its first DETECT_BYTES bytes; sha256 is remembered on the member. */
async function hashMember(ctx: LayerCtx, m: Member, alg: DigestAlgorithm): Promise<{ digest: string; head: Buffer }> {
  if (alg === 'sha256' && m.sha256 !== null && m.head !== null) return { digest: `sha256:${m.sha256}`, head: m.head };
  const h = newHash(alg);
  const head: Buffer[] = [];
  let got = 0;
  const src = await ctx.members.stream(m);
  try {
    for await (const c of src as AsyncIterable<Buffer>) {
      if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
      if (got < DETECT_BYTES) head.push(c.subarray(0, DETECT_BYTES - got));
      got += c.length;
      h.update(c);
    }
  } finally {
    src.destroy();
  }
  const hex = h.digest('hex');
  if (alg === 'sha256') {
    m.sha256 = hex;
    m.head = Buffer.concat(head);
  }
  return { digest: `${alg}:${hex}`, head: Buffer.concat(head) };
}

function neither(l: PlannedLayer): LayerInvalidError {
  return new LayerInvalidError(`layer member ${l.memberName} is neither gzip, zstd nor tar`, { diffId: l.diffId });
}

function checkBlob(l: PlannedLayer, actual: string): void {
  const expected = l.blobDigest ?? l.pathDigest;
  if (expected === null || actual === expected) return;
  const why = l.blobDigest ? `does not match its digest (${actual})` : `does not match its name (${actual})`;
  throw new DigestMismatchError('blob', expected, actual, `archive member ${l.memberName} ${why}`);
}

/** Docker path: the blob digest (checked against a `blobs/sha256/<hex>` name) and media type, nothing decoded. */
export async function hashOnly(ctx: LayerCtx, l: PlannedLayer): Promise<void> {
  const { digest, head } = await hashMember(ctx, l.member, 'sha256');
  const kind = ctx.deps.detectCompression(head);
  if (kind === null) throw neither(l);
  checkBlob(l, digest);
  l.blobDigest = digest;
  l.mediaType = ociLayerMediaType(kind);
}

export interface Converted {
  sizeBytes: number;
  inodes: number;
  blocks: number;
  /** `msb-chunked-sha256` of the layer file, computed while writing (docs/storage.md §10.1). */
  contentDigest: string | null;
  root: DirNode;
}

/**
 * One pass over a layer member: hashed as it streams into the decoder and writeLayer (which checks
 * nothing of the diff_id itself; compared here). When the decoder or the writer fails, the member is
 * hashed whole first, so a digest mismatch is reported before the decode error.
 */
export async function convertMember(ctx: LayerCtx, l: PlannedLayer, candidate: string): Promise<Converted> {
  const alg = l.blobDigest ? digestAlgorithm(l.blobDigest) : 'sha256';
  const first = await hashHead(ctx, l.member);
  const kind = ctx.deps.detectCompression(first);
  if (kind === null) {
    checkBlob(l, (await hashMember(ctx, l.member, alg)).digest);
    throw neither(l);
  }
  warnMediaType(ctx, l, kind);
  const h = newHash(alg);
  const wac = new AbortController();
  const onAbort = () => wac.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const src = await ctx.members.stream(l.member);
  const hashed = ReadableClass.from(
    (async function* () {
      for await (const c of src as AsyncIterable<Buffer>) {
        h.update(c);
        yield c;
      }
    })(),
    { objectMode: false, highWaterMark: 1 << 20 },
  );
  let dec: Readable & NodeJS.WritableStream;
  try {
    dec = ctx.deps.createDecompressor(kind, { signal: wac.signal }) as unknown as Readable & NodeJS.WritableStream;
  } catch (err) {
    // `src` is open with nothing reading it yet: closed here, or its fd outlives the load.
    src.destroy();
    ctx.signal.removeEventListener('abort', onAbort);
    throw err;
  }
  pipeline(hashed, dec, () => {
    /* the error reaches the writer through `dec` */
  });
  try {
    const v = await ctx.deps.writeLayer(dec, candidate, {
      signal: wac.signal,
      diffIdAlgorithm: digestAlgorithm(l.diffId),
      limits: ctx.limits,
      onProgress: (p) =>
        ctx.emitter.progress({
          type: 'layerMaterializeProgress',
          layerIndex: l.position,
          diffId: l.diffId,
          tarBytes: p.tarBytes,
          entries: p.entries,
        }),
      onWarning: (w) => ctx.warn(w.code, w.message),
    });
    if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
    finishBlob(l, `${alg}:${h.digest('hex')}`, kind);
    if (v.diffId !== l.diffId)
      throw new DigestMismatchError(
        'diffId',
        l.diffId,
        v.diffId,
        `layer ${l.memberName}: diff_id ${v.diffId} does not match the config's ${l.diffId}`,
      );
    const { sizeBytes, inodes, blocks, contentDigest = null } = v;
    return { sizeBytes, inodes, blocks, root: v.root as DirNode, contentDigest };
  } catch (err) {
    wac.abort(err);
    dec.destroy();
    if (ctx.signal.aborted) throw new AbortedError(ctx.signal.reason);
    if (err instanceof MsbError && err.code === 'DIGEST_MISMATCH') throw err;
    // The digest comes first: hash the whole member, then report the decoder's or the writer's error.
    finishBlob(l, (await hashMember(ctx, l.member, alg)).digest, kind);
    if (err instanceof MsbError) throw err;
    throw ctx.deps.mapDecodeError?.(kind, err) ?? new LayerInvalidError(String(err), { diffId: l.diffId });
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    src.destroy();
  }
}

/** The blob digest checked; a Docker-path layer learns its digest and media type from it. */
function finishBlob(l: PlannedLayer, actual: string, kind: Compression): void {
  checkBlob(l, actual);
  if (!l.blobDigest) {
    l.blobDigest = actual;
    l.mediaType = ociLayerMediaType(kind);
  }
}

/** The first DETECT_BYTES bytes of a member (remembered ones when it was hashed already). */
async function hashHead(ctx: LayerCtx, m: Member): Promise<Buffer> {
  if (m.head !== null) return m.head;
  const parts: Buffer[] = [];
  let got = 0;
  const src = await ctx.members.stream(m);
  try {
    for await (const c of src as AsyncIterable<Buffer>) {
      parts.push(c.subarray(0, DETECT_BYTES - got));
      got += Math.min(c.length, DETECT_BYTES - got);
      if (got >= DETECT_BYTES) break;
    }
  } finally {
    src.destroy();
  }
  return Buffer.concat(parts);
}

function warnMediaType(ctx: LayerCtx, l: PlannedLayer, kind: Compression): void {
  const announced = l.mediaType ? compressionOfMediaType(l.mediaType) : null;
  if (announced !== null && announced !== kind) {
    ctx.warn(
      'MEDIA_TYPE_MISMATCH',
      `layer ${l.position + 1} (${l.blobDigest}): media type ${l.mediaType} does not match its content (${kind}); decoding it as ${kind}`,
    );
  }
}

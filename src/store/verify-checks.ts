/**
 * The per-artifact checks of verify (docs/storage.md §10.2), each run under the artifact's lock by
 * store/verify.ts: presence and type by `lstat` (a symlink is reported, never followed), the
 * recorded length, the structure checks of §5 (store/artifacts.ts, the same ones a pull uses), and
 * the content digest recomputed from the file (recorded on first verify when the row has none).
 */
import type { Stats } from 'node:fs';
import { findLayer, findManifest, manifestLayers } from '../catalog/queries.js';
import { recordLayerDigest, recordManifestDigest } from '../catalog/verify.js';
import { contentDigestOfFile } from '../util/chunked-digest.js';
import { checkStitch, layerFileProblem } from './artifacts.js';
import { lstatOrNull } from './measure.js';
import type { Store } from './store.js';
import type { VerifyFinding } from './types.js';

export interface CheckTally {
  bytesHashed: number;
  digestsRecorded: number;
}

type Artifact = 'layer' | 'fsmeta' | 'vmdk';

/** How an entry that is not a regular file shows in a finding. */
export function typeName(st: Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  return 'device';
}

function finding(
  kind: VerifyFinding['kind'],
  artifact: Artifact,
  item: string,
  path: string,
  expected: VerifyFinding['expected'],
  actual: VerifyFinding['actual'],
  message: string,
): VerifyFinding {
  return { kind, artifact, item, path, expected, actual, message };
}

/** Presence, type and recorded length; null when the file is there with the right length. */
function presence(artifact: Artifact, item: string, path: string, st: Stats | null, recorded: number | null) {
  const what = artifact === 'layer' ? `layer ${item}` : `${artifact} of ${item}`;
  if (!st) return finding('missing', artifact, item, path, recorded ?? 'a file', 'absent', `${what} is missing`);
  if (!st.isFile())
    return finding(
      'not-regular',
      artifact,
      item,
      path,
      'regular file',
      typeName(st),
      `${what} is a ${typeName(st)}, not a regular file (not followed)`,
    );
  if (recorded === null)
    return finding(
      'stale',
      artifact,
      item,
      path,
      null,
      st.size,
      `the index records no length for the ${what} (it must be rebuilt)`,
    );
  if (st.size !== recorded)
    return finding(
      'size',
      artifact,
      item,
      path,
      recorded,
      st.size,
      `${what} is ${st.size} bytes, recorded ${recorded}`,
    );
  return null;
}

/** Recomputes the content digest; records it when the row has none, else compares. */
async function digestCheck(
  artifact: Artifact,
  item: string,
  path: string,
  recorded: string | null,
  record: (d: string) => Promise<boolean>,
  tally: CheckTally,
  signal: AbortSignal | undefined,
): Promise<VerifyFinding | null> {
  const { digest, length } = await contentDigestOfFile(path, { signal });
  tally.bytesHashed += length;
  if (recorded === null) {
    if (await record(digest)) tally.digestsRecorded++;
    return null;
  }
  if (digest === recorded) return null;
  const what = artifact === 'layer' ? `layer ${item}` : `${artifact} of ${item}`;
  return finding('digest', artifact, item, path, recorded, digest, `${what} does not match its recorded digest`);
}

/** One layer row and its file; call under the layer lock. Nothing when the row is gone meanwhile. */
export async function checkLayerArtifact(
  store: Store,
  diffId: string,
  tally: CheckTally,
  signal?: AbortSignal,
): Promise<VerifyFinding[]> {
  const { index } = store;
  const row = await index.read(() => findLayer(index, diffId));
  if (!row) return [];
  const path = store.paths.layer(diffId);
  const p = presence('layer', diffId, path, await lstatOrNull(path), row.erofs_size_bytes);
  if (p) return [p];
  const size = row.erofs_size_bytes!;
  const s = await layerFileProblem(path, diffId, size);
  if ('why' in s)
    return [finding('structure', 'layer', diffId, path, 'a valid layer EROFS', s.why, `layer ${diffId}: ${s.why}`)];
  const record = (d: string) => index.write(() => recordLayerDigest(index, diffId, size, d), { signal });
  const d = await digestCheck('layer', diffId, path, row.content_digest, record, tally, signal);
  return d ? [d] : [];
}

/**
 * fsmeta and the VMDK of one manifest; call under the image lock. Their structure is judged only
 * when every layer has a recorded length (a layer recorded missing is the layer step's finding).
 */
export async function checkImageArtifacts(
  store: Store,
  manifestDigest: string,
  tally: CheckTally,
  signal?: AbortSignal,
): Promise<VerifyFinding[]> {
  const { index, paths } = store;
  const m = manifestDigest;
  const got = await index.read(() => {
    const row = findManifest(index, m);
    return row ? { row, layers: manifestLayers(index, row.id) } : null;
  });
  if (!got) return [];
  const { row, layers } = got;
  const out: VerifyFinding[] = [];
  const fsPath = paths.fsmeta(m);
  const vmPath = paths.vmdk(m);
  const fsP = presence('fsmeta', m, fsPath, await lstatOrNull(fsPath), row.fsmeta_bytes);
  const vmP = presence('vmdk', m, vmPath, await lstatOrNull(vmPath), row.vmdk_bytes);
  for (const p of [fsP, vmP]) if (p) out.push(p);
  if (fsP || layers.some((l) => l.erofs_size_bytes === null)) return out;
  const sizes = new Map(layers.map((l) => [l.diff_id, l.erofs_size_bytes!]));
  const diffIds = layers.map((l) => l.diff_id);
  const st = await checkStitch(store, m, diffIds, sizes, row.fsmeta_bytes);
  if (!st.fsmetaValid) {
    out.push(finding('structure', 'fsmeta', m, fsPath, 'a valid fsmeta', st.fsWhy, `fsmeta of ${m}: ${st.fsWhy}`));
    return out;
  }
  const recFs = (d: string) =>
    index.write(() => recordManifestDigest(index, m, 'fsmeta', row.fsmeta_bytes!, d), { signal });
  const fsD = await digestCheck('fsmeta', m, fsPath, row.fsmeta_digest, recFs, tally, signal);
  if (fsD) out.push(fsD);
  if (vmP) return out;
  if (!st.vmdkValid) {
    out.push(finding('structure', 'vmdk', m, vmPath, 'a valid VMDK descriptor', st.vmWhy, `VMDK of ${m}: ${st.vmWhy}`));
    return out;
  }
  const recVm = (d: string) =>
    index.write(() => recordManifestDigest(index, m, 'vmdk', row.vmdk_bytes!, d), { signal });
  const vmD = await digestCheck('vmdk', m, vmPath, row.vmdk_digest, recVm, tally, signal);
  if (vmD) out.push(vmD);
  return out;
}

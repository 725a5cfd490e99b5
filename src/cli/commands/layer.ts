/**
 * `msb layer convert` (docs/cli.md §9) and `msb layer stitch` (docs/cli.md §10): public utilities that need
 * no home or backend. main passes the verb as the first argument.
 */
import { UsageError, type CliContext } from '../context.js';
import { InvalidArgumentError } from '../../errors.js';
import { isDigest } from '../../util/digest.js';

export const usage = `Usage:
  msb layer convert <FILE|-> -o OUT.erofs [--expect-diff-id DIGEST]
  msb layer stitch -o DIR LAYER.erofs...
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'convert':
      return convert(rest, ctx);
    case 'stitch':
      return stitch(rest, ctx);
    default:
      throw new UsageError(`unknown command "layer ${verb ?? ''}"`, usage);
  }
}

/**
 * `msb layer convert <FILE|-> -o OUT.erofs [--expect-diff-id DIGEST]` (docs/cli.md §9): runs
 * `convertLayer` (`-` = stdin) and prints `{"diffId","sizeBytes","inodes","blocks"}` as one JSON
 * line. `-o OUT`, `-oOUT`, `--output OUT`, `--output=OUT` and `--expect-diff-id[=]DIGEST` are
 * accepted; `--` ends the flags. Errors are MsbErrors that main prints (hostile tar → LAYER_INVALID,
 * mismatch → DIGEST_MISMATCH, exit 1).
 */
async function convert(args: string[], ctx: CliContext): Promise<number> {
  let out: string | undefined;
  let expect: string | undefined;
  const inputs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      inputs.push(...args.slice(i + 1));
      break;
    }
    if (a === '-o' || a === '--output' || a === '--expect-diff-id') {
      const v = args[++i];
      if (v === undefined || v === '') throw new UsageError(`${a} needs a value`, usage);
      if (a === '--expect-diff-id') expect = v;
      else out = v;
    } else if (a.startsWith('--output=')) out = a.slice('--output='.length);
    else if (a.startsWith('--expect-diff-id=')) expect = a.slice('--expect-diff-id='.length);
    else if (a.startsWith('-o') && a.length > 2) out = a.slice(2);
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown flag ${a}`, usage);
    else inputs.push(a);
  }
  if (out === undefined || out === '') throw new UsageError('msb layer convert needs -o OUT.erofs', usage);
  if (inputs.length !== 1) throw new UsageError('msb layer convert needs exactly one input (FILE or -)', usage);
  if (expect !== undefined && !isDigest(expect))
    throw new InvalidArgumentError('expect-diff-id', `--expect-diff-id ${JSON.stringify(expect)} is not a digest`);
  const { convertLayer } = await import('../../erofs/convert.js');
  const input = inputs[0] === '-' ? ctx.stdin : inputs[0]!;
  const res = await convertLayer(input, out, {
    signal: ctx.signal,
    ...(expect !== undefined ? { expectDiffId: expect } : {}),
  });
  ctx.stdout.write(
    JSON.stringify({ diffId: res.diffId, sizeBytes: res.sizeBytes, inodes: res.inodes, blocks: res.blocks }) + '\n',
  );
  return 0;
}

/**
 * `msb layer stitch -o DIR LAYER.erofs...` (docs/cli.md §10): runs `stitchLayers` and prints the
 * result object as one JSON line. `-o DIR`, `-oDIR`, `--output DIR` and `--output=DIR` are
 * accepted; `--` ends the flags. An invalid layer image exits 1 with `CACHE_CORRUPT` (main).
 */
async function stitch(args: string[], ctx: CliContext): Promise<number> {
  let out: string | undefined;
  const layers: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      layers.push(...args.slice(i + 1));
      break;
    }
    if (a === '-o' || a === '--output') {
      const v = args[++i];
      if (v === undefined || v === '') throw new UsageError(`${a} needs a directory`, usage);
      out = v;
    } else if (a.startsWith('--output=')) out = a.slice('--output='.length);
    else if (a.startsWith('-o') && a.length > 2) out = a.slice(2);
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown flag ${a}`, usage);
    else layers.push(a);
  }
  if (out === undefined || out === '') throw new UsageError('msb layer stitch needs -o DIR', usage);
  if (layers.length === 0) throw new UsageError('msb layer stitch needs at least one LAYER.erofs', usage);
  const { stitchLayers } = await import('../../stitch/index.js');
  const res = await stitchLayers(layers, out, { signal: ctx.signal });
  ctx.stdout.write(JSON.stringify(res) + '\n');
  return 0;
}

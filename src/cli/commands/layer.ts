/**
 * `msb layer convert` (docs/cli.md §9) and `msb layer stitch` (docs/cli.md §10): public utilities that
 * need no home or backend (nothing here loads SQLite).
 */
import { InvalidArgumentError } from '../../errors.js';
import { isDigest } from '../../util/digest.js';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../context.js';

/**
 * `msb layer convert <FILE|-> -o OUT.erofs [--expect-diff-id DIGEST]` (docs/cli.md §9): runs
 * `convertLayer` (`-` = stdin) and prints `{"diffId","sizeBytes","inodes","blocks"}` as one JSON
 * line. Errors are MsbErrors that main prints (hostile tar → LAYER_INVALID, mismatch →
 * DIGEST_MISMATCH, exit 1).
 */
const convert: CommandSpec = {
  name: 'layer convert',
  summary: 'Convert a layer tar into a layer EROFS image',
  synopsis: 'layer convert FILE|- -o OUT.erofs [--expect-diff-id DIGEST]',
  description:
    'Converts one layer tar (plain, gzip or zstd; - reads stdin) into OUT.erofs, written atomically,\nand prints {"diffId","sizeBytes","inodes","blocks"} as one JSON line. No home or backend.',
  flags: [
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'the EROFS file to write', complete: 'file' },
    {
      name: 'expect-diff-id',
      type: 'string',
      value: 'DIGEST',
      help: 'fail with DIGEST_MISMATCH unless the diff_id is DIGEST',
    },
  ],
  operands: 'file',
  async run({ values, positionals, usage }, ctx) {
    const out = values.output as string | undefined;
    const expect = values['expect-diff-id'] as string | undefined;
    if (out === undefined || out === '') throw new UsageError('msb layer convert needs -o OUT.erofs', usage);
    if (positionals.length !== 1) throw new UsageError('msb layer convert needs exactly one input (FILE or -)', usage);
    if (expect !== undefined && !isDigest(expect))
      throw new InvalidArgumentError('expect-diff-id', `--expect-diff-id ${JSON.stringify(expect)} is not a digest`);
    const { convertLayer } = await import('../../erofs/convert.js');
    const input = positionals[0] === '-' ? ctx.stdin : positionals[0]!;
    const res = await convertLayer(input, out, {
      signal: ctx.signal,
      ...(expect !== undefined ? { expectDiffId: expect } : {}),
    });
    ctx.stdout.write(
      JSON.stringify({ diffId: res.diffId, sizeBytes: res.sizeBytes, inodes: res.inodes, blocks: res.blocks }) + '\n',
    );
    return 0;
  },
};

/**
 * `msb layer stitch -o DIR LAYER.erofs...` (docs/cli.md §10): runs `stitchLayers` and prints the
 * result object as one JSON line. An invalid layer image exits 1 with `CACHE_CORRUPT` (main).
 */
const stitch: CommandSpec = {
  name: 'layer stitch',
  summary: 'Stitch layer EROFS images into fsmeta + VMDK',
  synopsis: 'layer stitch -o DIR LAYER.erofs...',
  description:
    'Stitches layer images, bottom to top, into DIR/fsmeta.erofs and DIR/rootfs.vmdk (written\natomically) and prints the result as one JSON line. No home or backend.',
  flags: [
    { name: 'output', short: 'o', type: 'string', value: 'DIR', help: 'the directory to write into', complete: 'file' },
  ],
  operands: 'file',
  async run({ values, positionals, usage }, ctx) {
    const out = values.output as string | undefined;
    if (out === undefined || out === '') throw new UsageError('msb layer stitch needs -o DIR', usage);
    if (positionals.length === 0) throw new UsageError('msb layer stitch needs at least one LAYER.erofs', usage);
    const { stitchLayers } = await import('../../stitch/index.js');
    const res = await stitchLayers(positionals, out, { signal: ctx.signal });
    ctx.stdout.write(JSON.stringify(res) + '\n');
    return 0;
  },
};

export const commands: CommandSpec[] = [convert, stitch];

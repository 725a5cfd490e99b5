/** `msb tag SOURCE TARGET` (docker tag): Image.tag. Prints nothing on success, like docker. */
import { Image } from '../../api/image.js';
import { UsageError, type CliContext } from '../context.js';
import { withLocalBackend } from '../backend.js';
import { parseFlags } from '../format.js';

export const usage = `Usage: msb tag SOURCE TARGET

Create a tag TARGET that refers to the image SOURCE (alias: msb image tag). SOURCE may be a
reference or a manifest digest.
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parseFlags(args, {}, usage);
  if (positionals.length !== 2) throw new UsageError('msb tag needs SOURCE and TARGET', usage);
  await withLocalBackend(ctx, 'msb tag', (b) => Image.tagLocal(b, positionals[0]!, positionals[1]!));
  return 0;
}

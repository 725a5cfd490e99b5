/**
 * `msb save [-o FILE] [--format docker|oci] REF…` (docs/cli.md §6): Image.saveLocal to FILE, or to
 * stdout when `-o` is absent — never to a terminal (exit 2). `--format` defaults to docker (the
 * dual docker + OCI layout). Every reference is checked before anything is written.
 */
import { Image } from '../../api/image.js';
import { withLocalBackend } from '../backend.js';
import { UsageError, type CliContext } from '../context.js';
import { parseFlags } from '../format.js';

export const usage = `Usage: msb save [-o FILE] [--format docker|oci] REF...

Save images to an archive (alias: msb image save). Writes stdout when -o is absent.

Flags:
  -o, --output FILE   write the archive to FILE (atomically)
      --format F      docker (default: docker-save + OCI layout in one archive) or oci
`;

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    {
      output: { kind: 'value', names: ['-o', '--output'] },
      format: { kind: 'value', names: ['--format'] },
    },
    usage,
  );
  if (positionals.length === 0) throw new UsageError('missing REF', usage);
  const format = (values.format as string | undefined) ?? 'docker';
  if (format !== 'docker' && format !== 'oci')
    throw new UsageError(`--format must be docker or oci, not ${JSON.stringify(format)}`, usage);
  const file = values.output as string | undefined;
  const toStdout = file === undefined || file === '-';
  if (toStdout && ctx.stdout.isTTY)
    throw new UsageError('refusing to write an archive to a terminal; use -o or a pipe');
  await withLocalBackend(ctx, 'msb save', (b) =>
    Image.saveLocal(b, positionals, toStdout ? ctx.stdout : file!, {
      format,
      signal: ctx.signal,
    }),
  );
  return 0;
}

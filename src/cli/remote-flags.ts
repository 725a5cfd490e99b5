/**
 * Flags shared by the commands that talk to a registry (`pull`, `manifest inspect`, `image digest`,
 * `ls-tags`): the connection flags, and warnings printed on stderr (escaped: registry text).
 */
import type { RemoteOptions } from '../api/remote.js';
import type { FlagSpec, ParsedArgs } from './command.js';
import type { CliContext } from './context.js';
import { termSafe } from './escape.js';

export const REMOTE_FLAGS: readonly FlagSpec[] = [
  { name: 'insecure', type: 'boolean', help: 'allow plain HTTP / unverified TLS for this registry' },
  {
    name: 'ca-certs',
    type: 'string',
    multiple: true,
    value: 'FILE',
    help: 'extra PEM CA file to trust (repeatable)',
    complete: 'file',
  },
];

/** The `--platform P` flag. */
export const PLATFORM_FLAG: FlagSpec = {
  name: 'platform',
  type: 'string',
  value: 'P',
  help: "os/arch[/variant], e.g. linux/arm64/v8 (default: the host's)",
  complete: [
    'linux/amd64',
    'linux/arm64',
    'linux/arm64/v8',
    'linux/arm/v7',
    'linux/386',
    'linux/ppc64le',
    'linux/s390x',
  ],
};

/** `msb: warning: <message>` on stderr. */
export function warn(ctx: CliContext, message: string): void {
  ctx.stderr.write(`msb: warning: ${termSafe(message)}\n`);
}

/** RemoteOptions from parsed flags: signal, connection flags, warnings on stderr. */
export function remoteOptions(values: ParsedArgs['values'], ctx: CliContext): RemoteOptions {
  return {
    signal: ctx.signal,
    ...(values.insecure === true ? { insecure: true } : {}),
    ...(values['ca-certs'] !== undefined ? { caCerts: values['ca-certs'] as string[] } : {}),
    onWarning: (w) => warn(ctx, w.message),
  };
}

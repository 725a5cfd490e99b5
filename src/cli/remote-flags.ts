/**
 * Flags shared by the remote inspection commands (`manifest inspect`, `image digest`, `ls-tags`):
 * the registry connection flags of `msb pull`, and warnings printed on stderr.
 */
import type { RemoteOptions } from '../api/remote.js';
import type { CliContext } from './context.js';
import type { FlagDef, ParsedFlags } from './format.js';

export const REMOTE_FLAGS: Record<string, FlagDef> = {
  insecure: { kind: 'bool', names: ['--insecure'] },
  caCerts: { kind: 'multi', names: ['--ca-certs'] },
};

export const REMOTE_FLAGS_HELP = `      --insecure       allow plain HTTP / unverified TLS for this registry
      --ca-certs FILE  extra PEM CA file to trust (repeatable)
`;

/** RemoteOptions from parsed flags: signal, connection flags, warnings on stderr. */
export function remoteOptions(values: ParsedFlags['values'], ctx: CliContext): RemoteOptions {
  return {
    signal: ctx.signal,
    ...(values.insecure === true ? { insecure: true } : {}),
    ...(values.caCerts !== undefined ? { caCerts: values.caCerts as string[] } : {}),
    onWarning: (w) => {
      ctx.stderr.write(`msb: warning: ${w.message}\n`);
    },
  };
}

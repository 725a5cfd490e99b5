/**
 * What every `msb` command module receives. A command module exports
 * `run(args: string[], ctx: CliContext): Promise<number>` (the exit status) and `usage: string`.
 * Errors thrown from `run` are printed by main as `msb: <code>: <message>` with the exit status of
 * docs/cli.md §3, so commands only catch what they must report per argument.
 */
export interface CliContext {
  /** `--home DIR` when given: forces a local backend on that home. */
  home?: string;
  debug: boolean;
  color: boolean;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Fires on the first SIGINT/SIGTERM; commands pass it to the API as `signal`. */
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

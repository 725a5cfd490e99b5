/**
 * Runs `msb` from the checkout: in-process (`cli`, captured streams) or as a child process
 * (`spawnMsb`, for exit statuses, TTY checks and environment handling). The child entry is this
 * file itself: run with arguments it calls main() and exits with its status.
 */
import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { installCrashGuard, main } from '../../src/cli/main.js';

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** main() in this process with stdout and stderr captured as strings. */
export async function runCaptured(
  args: string[],
  io: { stdin: NodeJS.ReadableStream; env: NodeJS.ProcessEnv },
): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => {
    stdout += d;
  });
  err.on('data', (d) => {
    stderr += d;
  });
  const status = await main(args, { stdout: out, stderr: err, ...io });
  return { status, stdout, stderr };
}

/** In-process: main() with captured stdout/stderr, a non-TTY empty stdin and the given env. */
export async function cli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string; tty?: boolean } = {},
): Promise<CliResult> {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (opts.tty) stdin.isTTY = true;
  if (opts.stdin !== undefined) stdin.end(opts.stdin);
  return runCaptured(args, { stdin, env: opts.env ?? {} });
}

const SELF = fileURLToPath(import.meta.url);

/** As a child process (node [--import tsx] this-file args…). */
export function spawnMsb(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): CliResult {
  const nodeArgs = SELF.endsWith('.ts') ? ['--import', 'tsx', SELF, ...args] : [SELF, ...args];
  const r = spawnSync(process.execPath, nodeArgs, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
    input: opts.input ?? '',
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

if (process.argv[1] === SELF && process.env.MSB_CLI_CHILD !== '0') {
  installCrashGuard();
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

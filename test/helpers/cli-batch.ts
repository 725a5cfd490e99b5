/**
 * Runs many `msb` invocations in ONE real CLI process (one process per test family keeps the
 * suite fast): the child calls the CLI's `main()` for each case in turn, with the case's arguments,
 * environment and stdin (a file streamed in), captures stdout/stderr, and prints one JSON array of
 * results at the end. It installs the `msb` crash guard first, as bin/msb.js does: a crash in any
 * case ends the process with `msb: INTERNAL: …` and no results, which fails the family.
 *
 * Use `runCliBatch(cases)` from a test; the child entry is this file itself.
 */
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { installCrashGuard } from '../../src/cli/main.js';
import { runCaptured } from './msb-cli.js';

export interface CliCase {
  args: string[];
  env?: Record<string, string>;
  /** A file streamed to the command's stdin (default: empty). */
  stdin?: string;
}

export interface CliCaseResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface CliBatch {
  /** The child's own exit status and stderr (a crash shows here). */
  exit: number | null;
  stderr: string;
  results: CliCaseResult[];
}

const SELF = fileURLToPath(import.meta.url);

/** Spawns one CLI process for all `cases`; resolves with each case's status and output. */
export function runCliBatch(cases: CliCase[], opts: { timeoutMs?: number } = {}): Promise<CliBatch> {
  const dir = mkdtempSync(join(tmpdir(), 'msb-cli-batch-'));
  const input = join(dir, 'cases.json');
  writeFileSync(input, JSON.stringify(cases));
  const argv = SELF.endsWith('.ts') ? ['--import', 'tsx', SELF, input] : [SELF, input];
  return new Promise((resolve) => {
    const c = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      let results: CliCaseResult[] = [];
      try {
        results = JSON.parse(out) as CliCaseResult[];
      } catch {
        /* a crash: no results */
      }
      resolve({ exit: code, stderr: err, results });
    });
  });
}

async function child(file: string): Promise<void> {
  installCrashGuard();
  const cases = JSON.parse(readFileSync(file, 'utf8')) as CliCase[];
  const results: CliCaseResult[] = [];
  for (const k of cases) {
    const stdin = k.stdin ? createReadStream(k.stdin) : new PassThrough().end();
    results.push(
      await runCaptured(k.args, {
        stdin: stdin as NodeJS.ReadableStream,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...k.env },
      }),
    );
  }
  process.stdout.write(JSON.stringify(results));
}

if (process.argv[1] === SELF && process.argv[2]) {
  child(process.argv[2]).then(
    () => {
      process.exitCode = 0;
    },
    (e) => {
      process.stderr.write(`cli-batch: ${String(e)}\n`);
      process.exitCode = 99;
    },
  );
}

#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled package (npm run build).
import { setFlagsFromString } from 'node:v8';

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
  // The most common probe of an install answers without loading the CLI's modules (about a third
  // of msb's start-up): only the module that reads the version, the same line as `msb version`.
  const { packageVersion } = await import('../dist/src/cli/version-info.js');
  process.stdout.on('error', () => undefined); // a closed pipe (`msb -v | true`) is not an error
  process.stdout.write(`msb ${packageVersion()}\n`);
} else {
  // The CLI keeps V8's young generation at its initial size. V8 grows it when objects survive its
  // scavenges — and a layer's tree survives — up to 16 MiB per semi-space, which then stays
  // committed while a stream runs: ~30 MiB of heap per isolate holding a few MiB of live data.
  // Measured 15–40 MiB less peak RSS on the benchmark pulls and no more CPU. Set before the CLI's
  // modules load (their long-lived objects would grow it at once); worker threads inherit it. The
  // library never sets it: an embedding process owns its heap. Only for the commands that stream
  // layers: a listing (`msb images` of 10,000 refs) allocates many short-lived objects and runs
  // faster with V8's default growth (~20 ms of its ~420 ms). A word match is enough for a heap hint.
  const STREAMING = new Set(['pull', 'load', 'save', 'layer', 'export', 'verify']);
  if (argv.some((a) => STREAMING.has(a))) setFlagsFromString('--semi-space-growth-factor=1');
  const { installCrashGuard, main } = await import('../dist/src/cli/main.js');
  installCrashGuard();
  process.exitCode = await main(argv);
}

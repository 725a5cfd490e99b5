#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled package (npm run build).
import { installCrashGuard, main } from '../dist/src/cli/main.js';
installCrashGuard();
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

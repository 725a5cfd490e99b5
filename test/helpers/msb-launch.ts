/** Runs the real `msb` CLI entry (src/cli/main.ts) as a process, from sources or from dist/, as bin/msb.js does. */
import { installCrashGuard, main } from '../../src/cli/main.js';

installCrashGuard();
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

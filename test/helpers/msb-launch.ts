/** Runs the real `msb` CLI entry (src/cli/main.ts) as a process, from sources or from dist/. */
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});

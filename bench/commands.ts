/**
 * How the bench starts ours and the baselines: always the built CLI as users run it
 * (`node bin/msb.js …`, which imports dist/), never tsx or an in-process call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Side } from './harness.js';

export const PROJECT_ROOT = (() => {
  let d = fileURLToPath(new URL('.', import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = join(d, '..');
  return d;
})();
export const NODE = process.execPath;

/** argv of `msb …` (the compiled CLI). */
export function msb(...args: string[]): string[] {
  return [NODE, join(PROJECT_ROOT, 'bin', 'msb.js'), ...args];
}

/** argv of a compiled bench script, e.g. `benchScript('floor.js', json)`. */
export function benchScript(name: string, ...args: string[]): string[] {
  return [NODE, join(PROJECT_ROOT, 'dist', 'bench', name), ...args];
}

/** A bare `node -e 0`: the process-start baseline. */
export const NODE_BARE: Side = { label: 'node -e 0', cmd: { argv: [NODE, '-e', '0'] } };

/** Throws unless `npm run build` has produced what the bench runs. */
export function requireBuilt(): void {
  for (const f of [join('dist', 'src', 'cli', 'main.js'), join('dist', 'bench', 'floor.js')]) {
    if (!existsSync(join(PROJECT_ROOT, f)))
      throw new Error(`${f} missing: run \`npm run build\` first (the bench runs the compiled CLI)`);
  }
}

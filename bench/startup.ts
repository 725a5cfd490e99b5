/**
 * Process start and module load, whole processes: `msb --version` vs `node -e 0` (goal ≤ 1.3×),
 * and what loading the package entry and the pull command costs over a bare node, the fixed part
 * of every `msb` run.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { msb, NODE, NODE_BARE, PROJECT_ROOT, requireBuilt } from './commands.js';
import { compare, figures, type BenchOptions, type Side } from './harness.js';

function importing(label: string, file: string): Side {
  const url = pathToFileURL(join(PROJECT_ROOT, 'dist', 'src', file)).href;
  return {
    label,
    cmd: { argv: [NODE, '-e', `import(${JSON.stringify(url)}).catch((e) => { console.error(e); process.exit(1); })`] },
  };
}

export async function benchStartup(o: BenchOptions): Promise<void> {
  requireBuilt();
  compare('msb --version', [{ label: 'msb --version', cmd: { argv: msb('--version') } }, NODE_BARE], o, [
    { vs: 1, ratio: 1.3 },
  ]);
  figures(
    'process start + module load',
    [
      NODE_BARE,
      importing('import cli/main.js', join('cli', 'main.js')),
      importing('import index.js (public API)', 'index.js'),
      importing('import cli/commands/pull.js', join('cli', 'commands', 'pull.js')),
      importing('import cli/commands/images.js', join('cli', 'commands', 'images.js')),
    ],
    o,
  );
}

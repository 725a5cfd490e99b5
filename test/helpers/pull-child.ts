/**
 * A pull in its own process, for the crash and concurrency tests (acceptance H1, H3, H5):
 * `pull-child.ts HOME REF [POLICY]`. Prints `HOOK <point>` at each pipeline point (so the parent
 * can kill -9 it right there), `RSS0 <bytes>` before the pull, `RESULT <json>` and `MAXRSS <bytes>`
 * (peak resident set) on success. `PULL_CHILD_PAUSE=<point>` stops
 * at that point until killed; `PULL_CHILD_DELAY_MS` sleeps at every point.
 */
import { LocalBackend } from '../../src/api/backend.js';
import { Image } from '../../src/api/image.js';
import { _pullDeps, _setPullDeps } from '../../src/pull/pull.js';

const [home, ref, policy] = process.argv.slice(2);
const base = await _pullDeps();
const pause = process.env.PULL_CHILD_PAUSE;
const delay = Number(process.env.PULL_CHILD_DELAY_MS ?? 0);
_setPullDeps({
  ...base,
  hook: async (p) => {
    process.stdout.write(`HOOK ${p}\n`);
    if (p === pause) await new Promise((r) => setTimeout(r, 1e9));
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  },
});
const b = await LocalBackend.builder().home(home!).build();
process.stdout.write(`RSS0 ${process.memoryUsage().rss}\n`);
try {
  const r = await Image.pullLocal(b, ref!, policy ? { policy: policy as 'if-missing' } : {});
  process.stdout.write(
    `RESULT ${JSON.stringify({ manifestDigest: r.manifestDigest, cached: r.cached, layers: r.layers })}\n`,
  );
  process.stdout.write(`MAXRSS ${process.resourceUsage().maxRSS * 1024}\n`);
} catch (e) {
  process.stdout.write(`ERROR ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await b.close();
}

/**
 * `npm run bench`: every benchmark as whole processes beside its peer in the same run (see
 * bench/harness.ts for the rule), then a markdown summary table of all comparisons.
 * Usage: npm run bench [-- [--rounds N] [--warmup N] [--json FILE] [startup convert pull many index stitch versus verify]]
 * Benchmarks never gate a test.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { MKFS } from './fixtures.js';
import { RESULTS, summaryTable, type BenchOptions } from './harness.js';

const ALL: Record<string, [string, string]> = {
  startup: ['startup', 'benchStartup'], // msb --version and module load vs node -e 0
  convert: ['convert', 'benchConvert'], // msb layer convert vs mkfs.erofs --tar=f --ungzip; 1 GiB layer RSS
  pull: ['pull', 'benchPull'], // cold pull vs skopeo + mkfs.erofs vs floor; warm pull vs node -e 0
  many: ['pull', 'benchMany'], // cold pull of the 7-layer image, gzip and zstd
  index: ['index', 'benchIndex'], // msb images on 10,000 refs; in-process API latencies
  stitch: ['stitch', 'benchStitch'], // in-process fsmeta + VMDK micro-figures
  versus: ['versus', 'benchVersus'], // this build vs MSB_BENCH_BASELINE's build (refactor regressions)
  verify: ['govern', 'benchVerify'], // msb image verify of 1,000 images vs sha256sum of the same files
};

function parseArgs(argv: string[]): { names: string[]; rounds: number; warmup: number; json?: string | undefined } {
  const names: string[] = [];
  let rounds = Number(process.env.MSB_BENCH_ROUNDS ?? 5);
  let warmup = 1;
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--rounds') rounds = Number(val());
    else if (a === '--warmup') warmup = Number(val());
    else if (a === '--json') json = val();
    else if (a.startsWith('-')) throw new Error(`unknown flag ${a}`);
    else names.push(a);
  }
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(warmup) || warmup < 0)
    throw new Error('--rounds ≥ 1 and --warmup ≥ 0, integers');
  // versus needs a second build (MSB_BENCH_BASELINE): only when named
  return { names: names.length ? names : Object.keys(ALL).filter((n) => n !== 'versus'), rounds, warmup, json };
}

function header(o: BenchOptions): void {
  let mkfs = '?';
  try {
    mkfs = execFileSync(MKFS, ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
  } catch {
    /* printed as ? */
  }
  o.log(
    `${new Date().toISOString()}  node ${process.version}  ${cpus().length} cpus  load avg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}  ${mkfs}`,
  );
  o.log(
    `${o.rounds} rounds after ${o.warmup} warm-up round(s), sides alternating; times are whole-process wall; peak RSS from GNU time`,
  );
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return;
  }
  const unknown = args.names.filter((n) => !ALL[n]);
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(ALL).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  const o: BenchOptions = { rounds: args.rounds, warmup: args.warmup, log: (s) => console.log(s) };
  header(o);
  let failed = 0;
  for (const name of args.names) {
    const [file, fn] = ALL[name]!;
    console.log(`\n=== ${name} ===`);
    try {
      const mod = (await import(`./${file}.js`)) as Record<string, (o: BenchOptions) => Promise<void>>;
      await mod[fn]!(o);
    } catch (err) {
      failed++;
      console.error(`benchmark ${name} failed: ${(err as Error)?.stack ?? String(err)}`);
    }
  }
  console.log(
    `\n=== summary (load avg now ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}) ===`,
  );
  for (const row of summaryTable(RESULTS)) console.log(row);
  if (args.json) writeFileSync(args.json, JSON.stringify(RESULTS, null, 1));
  if (failed) process.exitCode = 1;
}

await main();

/**
 * The one home of the benchmark rule: every comparison runs WHOLE PROCESSES, the way users run
 * them, alternating the sides round by round (the starting side rotates), N rounds after an
 * untimed warm-up, and reports median, min and max wall time and peak RSS per side, and the ratio
 * of ours (side 0) to each other side's median. Never a single best run.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`): it is the wait4() rusage of the child, so
 * it is exact for one process; for a pipeline (bash → skopeo, xargs → mkfs.erofs) it is the
 * largest single process of the tree, not the sum of concurrent ones. Node's spawnSync cannot
 * report a child's rusage, and GNU time costs about 1 ms per run on both sides alike.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface Cmd {
  /** executable and arguments */
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** untimed, before each run (empty a cache, remove an output) */
  before?: () => void;
  /** untimed, after each run: validate stdout (throw), optionally return an inner figure (a number of ms) */
  check?: (stdout: string) => unknown;
}

export interface Side {
  label: string;
  cmd: Cmd;
}
export interface Sample {
  ms: number;
  rssKiB: number;
  inner?: number;
}
export interface Stats {
  label: string;
  median: number;
  min: number;
  max: number;
  rssMiB: number;
  innerMedian?: number;
  samples: Sample[];
}
export interface Goal {
  /** ours / side[vs] median ≤ max */ vs?: number;
  ratio?: number /** ours median ≤ ms */;
  ms?: number /** ours peak ≤ MiB */;
  rssMiB?: number;
}
export interface Comparison {
  title: string;
  sides: Stats[];
  ratios: number[];
  goals: Goal[];
  load: [number, number];
  figures?: boolean;
}

export interface BenchOptions {
  rounds: number;
  warmup: number;
  log: (s: string) => void;
}

/** Every comparison made in this process, for the closing summary table. */
export const RESULTS: Comparison[] = [];

const TIME = '/usr/bin/time';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs one command under GNU time: wall ms (measured here), peak RSS KiB, stdout. Throws on failure. */
export function runOnce(cmd: Cmd): Sample & { stdout: string } {
  cmd.before?.();
  spawnSync('sync'); // earlier runs' dirty pages must not be written back during this one
  const dir = mkdtempSync(join(tmpdir(), 'msb-bench-time-'));
  const out = join(dir, 'rusage');
  try {
    const t0 = performance.now();
    const r = spawnSync(TIME, ['-o', out, '-f', '%M', ...cmd.argv], {
      encoding: 'utf8',
      maxBuffer: 256 << 20,
      env: cmd.env ?? process.env,
      cwd: cmd.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const ms = performance.now() - t0;
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${cmd.argv.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const rssKiB = Number(lines[lines.length - 1]);
    if (!Number.isFinite(rssKiB)) throw new Error(`GNU time printed no peak RSS: ${lines.join(' | ')}`);
    const inner = cmd.check?.(r.stdout);
    return { ms, rssKiB, stdout: r.stdout, ...(typeof inner === 'number' ? { inner } : {}) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function stats(label: string, samples: Sample[]): Stats {
  const ms = samples.map((s) => s.ms);
  const inner = samples.flatMap((s) => (s.inner === undefined ? [] : [s.inner]));
  return {
    label,
    samples,
    median: median(ms),
    min: Math.min(...ms),
    max: Math.max(...ms),
    rssMiB: Math.max(...samples.map((s) => s.rssKiB)) / 1024,
    ...(inner.length ? { innerMedian: median(inner) } : {}),
  };
}

/**
 * Runs `sides` alternately (round r starts with side r mod n), `warmup` untimed rounds first,
 * prints and records the comparison. Side 0 is ours.
 */
export function compare(title: string, sides: Side[], opts: BenchOptions, goals: Goal[] = []): Comparison {
  return measure(title, sides, opts, goals, false);
}

/** Like compare, for figures without an ours/peer pairing (a phase breakdown, floors). */
export function figures(title: string, sides: Side[], opts: BenchOptions): Comparison {
  return measure(title, sides, opts, [], true);
}

function measure(title: string, sides: Side[], opts: BenchOptions, goals: Goal[], figuresOnly: boolean): Comparison {
  const load0 = loadavg()[0]!;
  for (let w = 0; w < opts.warmup; w++) for (const s of sides) runOnce(s.cmd);
  const samples: Sample[][] = sides.map(() => []);
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (r + k) % sides.length;
      const { stdout: _, ...s } = runOnce(sides[i]!.cmd);
      samples[i]!.push(s);
    }
  }
  const st = sides.map((s, i) => stats(s.label, samples[i]!));
  const c: Comparison = {
    title,
    sides: st,
    ratios: st.map((s) => st[0]!.median / s.median),
    goals,
    load: [load0, loadavg()[0]!],
    figures: figuresOnly,
  };
  RESULTS.push(c);
  printComparison(c, opts);
  return c;
}

export const fmtMs = (ms: number): string =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;

/** "ok" / "OVER" for each goal of a comparison. */
export function goalText(c: Comparison): string[] {
  return c.goals.map((g) => {
    const ours = c.sides[0]!;
    if (g.vs !== undefined && g.ratio !== undefined) {
      const r = c.ratios[g.vs]!;
      return `ours/${c.sides[g.vs]!.label} ${r.toFixed(2)} ≤ ${g.ratio} ${r <= g.ratio ? 'ok' : 'OVER'}`;
    }
    if (g.ms !== undefined) return `median ${fmtMs(ours.median)} ≤ ${g.ms} ms ${ours.median <= g.ms ? 'ok' : 'OVER'}`;
    if (g.rssMiB !== undefined)
      return `peak RSS ${ours.rssMiB.toFixed(0)} ≤ ${g.rssMiB} MiB ${ours.rssMiB <= g.rssMiB ? 'ok' : 'OVER'}`;
    return '';
  });
}

function printComparison(c: Comparison, opts: BenchOptions): void {
  const w = Math.max(...c.sides.map((s) => s.label.length));
  opts.log(
    `${c.title}  (${opts.rounds} rounds, alternating; load avg ${c.load[0].toFixed(2)} → ${c.load[1].toFixed(2)})`,
  );
  c.sides.forEach((s, i) => {
    const inner = s.innerMedian === undefined ? '' : `  [in-process ${fmtMs(s.innerMedian)}]`;
    const ratio = i === 0 || c.figures ? '' : `  ours/this ${c.ratios[i]!.toFixed(2)}`;
    const role = c.figures ? '    ' : i === 0 ? 'ours' : 'peer';
    opts.log(
      `  ${role} ${s.label.padEnd(w)}  median ${fmtMs(s.median).padStart(8)}  min ${fmtMs(s.min).padStart(8)}  max ${fmtMs(s.max).padStart(8)}  peak RSS ${s.rssMiB.toFixed(0).padStart(4)} MiB${ratio}${inner}`,
    );
  });
  for (const g of goalText(c)) opts.log(`  goal: ${g}`);
}

/** The closing table (markdown, ready for the README): one row per comparison. */
export function summaryTable(results: Comparison[]): string[] {
  const mm = (s: Stats) => `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)}), ${s.rssMiB.toFixed(0)} MiB`;
  const rows = [
    '| work | ours: median (min–max), peak RSS | peer in the same run | ours/peer | goal |',
    '|---|---|---|---|---|',
  ];
  for (const c of results) {
    if (c.figures) {
      for (const s of c.sides) rows.push(`| ${c.title}: ${s.label} | ${mm(s)} | — | — | — |`);
      continue;
    }
    const peers =
      c.sides
        .slice(1)
        .map((s) => `${s.label}: ${mm(s)}`)
        .join('; ') || '—';
    const ratios =
      c.ratios
        .slice(1)
        .map((r) => r.toFixed(2))
        .join(' / ') || '—';
    rows.push(`| ${c.title} | ${mm(c.sides[0]!)} | ${peers} | ${ratios} | ${goalText(c).join('; ') || '—'} |`);
  }
  return rows;
}

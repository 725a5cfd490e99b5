/**
 * Per-phase times of OUR process without slowing it: the bench sets `MSB_PROFILE=<file>` and the
 * pipeline appends one JSON line per finished phase, `{"phase":"network","ms":12.3}` (optionally
 * `"layer":N`), with a single append at the end of the phase (no per-chunk work). Lines of the same
 * phase in one run are summed: concurrent layers overlap, so sums can exceed the wall time.
 * When the pipeline writes nothing (not instrumented yet), the bench says so.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { median, fmtMs } from './harness.js';

export class PhaseProfile {
  private readonly runs: Map<string, number>[] = [];
  constructor(readonly path: string) {}

  /** env for the profiled command */
  env(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    return { ...base, MSB_PROFILE: this.path };
  }

  reset(): void {
    rmSync(this.path, { force: true });
  }

  /** Reads the lines one run wrote (call after each run). */
  collect(): void {
    if (!existsSync(this.path)) return;
    const run = new Map<string, number>();
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const { phase, ms } = JSON.parse(line) as { phase?: unknown; ms?: unknown };
      if (typeof phase !== 'string' || typeof ms !== 'number') throw new Error(`bad MSB_PROFILE line: ${line}`);
      run.set(phase, (run.get(phase) ?? 0) + ms);
    }
    this.runs.push(run);
  }

  /** One line per phase: median (min–max) over the runs, in first-seen order. */
  print(log: (s: string) => void, wallMedianMs: number): void {
    if (!this.runs.length) {
      log('  phases: none reported (the pipeline does not write MSB_PROFILE yet)');
      return;
    }
    const phases = [...new Set(this.runs.flatMap((r) => [...r.keys()]))];
    log(`  phases (${this.runs.length} runs; summed over layers, which overlap):`);
    for (const p of phases) {
      const xs = this.runs.map((r) => r.get(p) ?? 0);
      const m = median(xs);
      log(
        `    ${p.padEnd(18)} median ${fmtMs(m).padStart(8)}  min ${fmtMs(Math.min(...xs)).padStart(8)}  max ${fmtMs(Math.max(...xs)).padStart(8)}  ${((m / wallMedianMs) * 100).toFixed(0).padStart(3)}% of wall`,
      );
    }
  }
}

/**
 * Per-phase timing for the benchmark (`MSB_PROFILE=<file>`; bench/profile.ts prints it). The
 * variable is read once, at load; when it is unset every entry point is one boolean check and
 * nothing else. When set, times accumulate in memory and one `appendFileSync` of JSON lines
 * `{"phase","ms","layer"?}` happens at process exit: no I/O while the pipeline runs. A worker
 * thread hands its totals to the main thread (`takePhases` / `addPhases`), which writes them.
 *
 * Phases of concurrent layers overlap, so their sums can exceed the wall time. A phase measured
 * inside another (the data writer inside the tar parse) is recorded apart and subtracted by the
 * caller. At exit the process adds its CPU time: all threads, and the main thread alone.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const FILE = process.env.MSB_PROFILE || null;

/** True when this process records phases. Test it before taking a time on a hot path. */
export const PROFILING = FILE !== null;

export interface PhaseLine {
  phase: string;
  ms: number;
  layer?: number;
}

const totals = new Map<string, PhaseLine>();
let hooked = false;
let teardownAt = -1;

/** CPU time (user + system) of the main thread alone, from Linux's per-task stat; null elsewhere. */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name, in ticks of 10 ms.
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
}

function flush(): void {
  if (teardownAt >= 0) add('teardown', performance.now() - teardownAt);
  const cpu = process.cpuUsage();
  add('cpu-all-threads', (cpu.user + cpu.system) / 1000);
  const main = mainThreadCpuMs();
  if (main !== null) add('cpu-main-thread', main);
  add('process-wall', performance.now());
  const lines: string[] = [];
  for (const v of totals.values()) lines.push(JSON.stringify(v));
  totals.clear();
  try {
    appendFileSync(FILE!, lines.join('\n') + '\n');
  } catch {
    /* a profile is an aid: never fail the command for it */
  }
}

function add(phase: string, ms: number, layer?: number): void {
  const key = layer === undefined ? phase : `${phase}\u0000${layer}`;
  const cur = totals.get(key);
  if (cur) cur.ms += ms;
  else totals.set(key, layer === undefined ? { phase, ms } : { phase, ms, layer });
}

/** A timestamp for `phaseEnd` (0 when not profiling). */
export function phaseStart(): number {
  return PROFILING ? performance.now() : 0;
}

/** Adds the time since `t0` (from `phaseStart`) to `phase`; returns that time (0 when not profiling). */
export function phaseEnd(phase: string, t0: number, layer?: number): number {
  if (!PROFILING) return 0;
  const ms = performance.now() - t0;
  phaseAdd(phase, ms, layer);
  return ms;
}

/** Adds `ms` to `phase` (for times measured elsewhere, or derived ones). */
export function phaseAdd(phase: string, ms: number, layer?: number): void {
  if (!PROFILING) return;
  if (!hooked && isMainThread) {
    hooked = true;
    process.once('exit', flush);
  }
  add(phase, ms, layer);
}

/** Runs `fn` and adds its duration (until it settles) to `phase`. */
export async function timed<T>(phase: string, fn: () => Promise<T>, layer?: number): Promise<T> {
  if (!PROFILING) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    phaseEnd(phase, t0, layer);
  }
}

/** A worker's totals so far (then forgotten), for its main thread's `addPhases`. */
export function takePhases(): PhaseLine[] {
  const out = [...totals.values()];
  totals.clear();
  return out;
}

/** Adds totals a worker measured. */
export function addPhases(lines: readonly PhaseLine[]): void {
  for (const l of lines) phaseAdd(l.phase, l.ms, l.layer);
}

/**
 * Records where the process stood when the CLI began: `process-start` (node's own bootstrap,
 * from node's timing marks) and `module-load` (from there to now: loading our entry modules).
 */
export function markEntry(): void {
  if (!PROFILING) return;
  const boot = performance.nodeTiming.bootstrapComplete;
  phaseAdd('process-start', boot);
  phaseAdd('module-load', performance.now() - boot);
}

/** Marks the end of the command's work: what follows until exit is `teardown`. The first mark wins. */
export function markTeardown(): void {
  if (PROFILING && teardownAt < 0) teardownAt = performance.now();
}

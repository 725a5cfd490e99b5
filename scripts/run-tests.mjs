#!/usr/bin/env node
// Runs every compiled test file with node's test runner, one file at a time (as `node --test
// --test-concurrency=1` would), and ends with one summary: totals, the failed files, and the
// slowest files (so the suite's time budget stays visible).
// Usage: node scripts/run-tests.mjs [substring filter...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('../dist/test/', import.meta.url).pathname;
const files = [];
(function walk(d) {
  for (const n of readdirSync(d).sort()) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith('.test.js')) files.push(p);
  }
})(root);
const filters = process.argv.slice(2);
const chosen = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (chosen.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

/** Runs one file, echoing its output, and reads node's own `# pass N` / `# fail N` totals. */
function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const counts = { tests: 0, pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const text = tail + chunk.toString('utf8');
      const lines = text.split('\n');
      tail = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$/.exec(line);
        if (m) counts[m[1]] = Number(m[2]);
      }
    });
    child.on('close', (code, signal) =>
      resolve({ file, code: code ?? (signal ? 1 : 0), ms: Date.now() - started, counts }),
    );
  });
}

const results = [];
for (const f of chosen) results.push(await runFile(f));
const sum = (k) => results.reduce((s, r) => s + r.counts[k], 0);
const failed = results.filter((r) => r.code !== 0 || r.counts.fail > 0 || r.counts.cancelled > 0);
const totalMs = results.reduce((s, r) => s + r.ms, 0);
console.log(
  `\n# files ${results.length}, tests ${sum('tests')}, pass ${sum('pass')}, fail ${sum('fail')}, ` +
    `skipped ${sum('skipped')}, todo ${sum('todo')}, cancelled ${sum('cancelled')}, ${(totalMs / 1000).toFixed(0)} s`,
);
console.log('# slowest files:');
for (const r of [...results].sort((a, b) => b.ms - a.ms).slice(0, 10)) {
  console.log(`#   ${(r.ms / 1000).toFixed(1).padStart(7)} s  ${relative(root, r.file)}`);
}
if (failed.length) {
  console.log('# failed files:');
  for (const r of failed) console.log(`#   ${relative(root, r.file)} (exit ${r.code}, ${r.counts.fail} failed)`);
}
// A skipped or todo test is not a pass: the suite fails if any test did not run.
process.exit(failed.length || sum('skipped') || sum('todo') ? 1 : 0);

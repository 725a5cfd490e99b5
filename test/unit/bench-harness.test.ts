/**
 * The benchmark rule (bench/harness.ts) as behaviour, not timings: sides alternate with a rotating
 * start, warm-up runs are not counted, statistics come from every round, peak RSS is read from
 * GNU time, and a failing command fails the benchmark. No timing is asserted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compare, median, runOnce, RESULTS, summaryTable, type Side } from '../../bench/harness.js';

test('median of odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('compare alternates sides with a rotating start and skips warm-up runs in the stats', () => {
  const order: string[] = [];
  const side = (label: string): Side => ({ label, cmd: { argv: ['true'], before: () => order.push(label) } });
  const lines: string[] = [];
  const c = compare('t', [side('a'), side('b'), side('c')], { rounds: 3, warmup: 1, log: (s) => lines.push(s) }, [
    { vs: 1, ratio: 100 },
  ]);
  assert.deepEqual(order, ['a', 'b', 'c', /* rounds: */ 'a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']);
  for (const s of c.sides) {
    assert.equal(s.samples.length, 3);
    assert.ok(s.min <= s.median && s.median <= s.max);
    assert.ok(s.rssMiB > 0, 'peak RSS read from GNU time');
  }
  assert.equal(c.ratios[0], 1);
  assert.ok(RESULTS.includes(c));
  assert.ok(lines.some((l) => l.includes('goal: ours/b')));
  assert.equal(summaryTable([c]).length, 3);
});

test('a command that fails fails the run, with its stderr', () => {
  assert.throws(() => runOnce({ argv: ['sh', '-c', 'echo boom >&2; exit 3'] }), /exited 3: boom/);
});

test('check() sees stdout and its number becomes the inner figure', () => {
  const r = runOnce({ argv: ['echo', '{"ms": 12.5}'], check: (out) => (JSON.parse(out) as { ms: number }).ms });
  assert.equal(r.inner, 12.5);
  assert.throws(
    () =>
      runOnce({
        argv: ['echo', 'x'],
        check: () => {
          throw new Error('bad output');
        },
      }),
    /bad output/,
  );
});

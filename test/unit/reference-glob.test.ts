/**
 * Reference globs (issue 9 item 4, issue 10 item 6; docs/api.md §2.5): Go's `path.Match` semantics
 * (its own test table), docker's `reference=` rule (a name without a tag matches every tag), no
 * backtracking blow-up with thousands of `*`, limits, and prune's matching is abortable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileGlob, globMatches, referenceMatches } from '../../src/reference/glob.js';
import { familiarOf, parseReference } from '../../src/reference/reference.js';
import { precomputeMatches } from '../../src/store/gc.js';
import { InvalidArgumentError, LimitExceededError, MsbError } from '../../src/errors.js';

const BAD = 'bad';
/** Go's path/match_test.go table: pattern, name, match (or BAD for ErrBadPattern). */
const GO_CASES: [string, string, boolean | typeof BAD][] = [
  ['abc', 'abc', true],
  ['*', 'abc', true],
  ['*c', 'abc', true],
  ['a*', 'a', true],
  ['a*', 'abc', true],
  ['a*', 'ab/c', false],
  ['a*/b', 'abc/b', true],
  ['a*/b', 'a/c/b', false],
  ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true],
  ['a*b?c*x', 'abxbbxdbxebxczzy', false],
  ['ab[c]', 'abc', true],
  ['ab[b-d]', 'abc', true],
  ['ab[e-g]', 'abc', false],
  ['ab[^c]', 'abc', false],
  ['ab[^b-d]', 'abc', false],
  ['ab[^e-g]', 'abc', true],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'ab', false],
  ['a?b', 'a☺b', true],
  ['a[^a]b', 'a☺b', true],
  ['a???b', 'a☺b', false],
  ['a[^a][^a][^a]b', 'a☺b', false],
  ['[a-ζ]*', 'α', true],
  ['*[a-ζ]', 'A', false],
  ['a?b', 'a/b', false],
  ['a*b', 'a/b', false],
  ['[\\]a]', ']', true],
  ['[\\-]', '-', true],
  ['[x\\-]', 'x', true],
  ['[x\\-]', '-', true],
  ['[x\\-]', 'z', false],
  ['[\\-x]', 'x', true],
  ['[\\-x]', '-', true],
  ['[\\-x]', 'a', false],
  ['[]a]', ']', BAD],
  ['[-]', '-', BAD],
  ['[x-]', 'x', BAD],
  ['[x-]', '-', BAD],
  ['[x-]', 'z', BAD],
  ['[-x]', 'x', BAD],
  ['[-x]', '-', BAD],
  ['[-x]', 'a', BAD],
  ['\\', 'a', BAD],
  ['[a-b-c]', 'a', BAD],
  ['[', 'a', BAD],
  ['[^', 'a', BAD],
  ['[^bc', 'a', BAD],
  ['a[', 'a', BAD],
  ['a[', 'ab', BAD],
  ['a[', 'x', BAD],
  ['a/b[', 'x', BAD],
  ['*x', 'xxx', true],
];

test("path.Match: Go's own test table, malformed patterns rejected whatever the name", () => {
  for (const [pattern, name, want] of GO_CASES) {
    if (want === BAD) {
      assert.throws(() => compileGlob(pattern), InvalidArgumentError, pattern);
      continue;
    }
    assert.equal(globMatches(compileGlob(pattern), name), want, `${pattern} ~ ${name}`);
  }
  assert.throws(() => compileGlob(''), InvalidArgumentError);
});

/** A regular expression with the same meaning, for classes that never match `/` (then the greedy chunk rule is exact). */
function toRegExp(tokens: string[]): RegExp {
  const src = tokens
    .map((t) => {
      if (t === '*') return '[^/]*';
      if (t === '?') return '[^/]';
      if (t.startsWith('[')) return t;
      if (t.startsWith('\\')) return '\\' + t[1];
      return t.replace(/[.^$+()|{}[\]\\/]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${src}$`, 'u');
}

test('property: globMatches equals a backtracking regular expression on random patterns and names', () => {
  const token = fc.constantFrom('a', 'b', '/', '.', ':', '*', '?', '[ab]', '[a-c]', '\\*');
  const name = fc.array(fc.constantFrom('a', 'b', 'c', '/', '.', ':', '*'), { maxLength: 12 }).map((x) => x.join(''));
  fc.assert(
    fc.property(fc.array(token, { minLength: 1, maxLength: 10 }), name, (tokens, n) => {
      assert.equal(globMatches(compileGlob(tokens.join('')), n), toRegExp(tokens).test(n), `${tokens.join('')} ~ ${n}`);
    }),
    { numRuns: 3000 },
  );
});

test("docker's reference=: a name without a tag matches every tag; familiar and canonical forms and names", () => {
  const m = (patterns: string[], ref: string) => {
    const c = parseReference(ref).canonical;
    return referenceMatches(patterns.map(compileGlob), c, familiarOf(c));
  };
  assert.equal(m(['busybox'], 'busybox:latest'), true);
  assert.equal(m(['busybox'], 'busybox:1.36'), true);
  assert.equal(m(['busybox:1.*'], 'busybox:1.36'), true);
  assert.equal(m(['busybox:1.*'], 'busybox:latest'), false);
  assert.equal(m(['busy*'], 'busybox:latest'), true);
  assert.equal(m(['*'], 'busybox:latest'), true, '* matches the familiar name busybox');
  assert.equal(m(['*'], 'ghcr.io/org/app:v1'), false, '* never crosses /');
  assert.equal(m(['ghcr.io/org/*'], 'ghcr.io/org/app:v1'), true);
  assert.equal(m(['docker.io/library/busybox'], 'busybox:latest'), true, 'canonical name');
  assert.equal(m(['docker.io/library/*:latest'], 'busybox'), true, 'canonical form');
  assert.equal(m(['127.0.0.1:5000/peers/*'], '127.0.0.1:5000/peers/busybox'), true);
  assert.equal(m(['alpine', 'busybox'], 'busybox:latest'), true, 'any pattern');
  assert.equal(m(['alpine'], 'busybox:latest'), false);
  assert.equal(m(['busybox'], 'busybox@sha256:' + 'a'.repeat(64)), true, 'a digest reference has a name too');
});

test('thousands of * neither backtrack nor blow up (the old RegExp took 13 s for 18 stars); limits', {
  timeout: 60_000,
}, () => {
  const name = 'docker.io/library/' + 'a'.repeat(200) + ':latest';
  for (const n of [18, 100, 500]) {
    const p = 'docker.io/library/' + 'a*'.repeat(n) + 'b';
    assert.equal(globMatches(compileGlob(p), name), false, `${n} stars`);
  }
  const stars = compileGlob('*'.repeat(1000));
  assert.equal(globMatches(stars, 'busybox'), true);
  assert.equal(stars.chunks.length, 1, 'a run of * is one *');
  assert.throws(
    () => compileGlob('*'.repeat(5000)),
    (e: unknown) => e instanceof LimitExceededError && e.limit === 'globPatternChars' && e.max === 1024,
  );
});

test('precomputeMatches yields to the event loop and stops on its signal (prune stays interruptible)', async () => {
  const refs = Array.from({ length: 200_000 }, (_, i) => `docker.io/library/r${i}:latest`);
  const filter = { patterns: [compileGlob('r1*'), compileGlob('*:v?')], usedBefore: null };
  const ac = new AbortController();
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    ac.abort('SIGINT');
  }, 1);
  await assert.rejects(
    precomputeMatches(filter, refs, ac.signal),
    (e: unknown) => e instanceof MsbError && e.code === 'ABORTED' && (e.cause as string) === 'SIGINT',
  );
  clearInterval(timer);
  assert.ok(ticks >= 1, 'a timer ran while matching');
  const done = await precomputeMatches(filter, refs.slice(0, 20));
  assert.equal(done.known?.get('docker.io/library/r1:latest'), true);
  assert.equal(done.known?.get('docker.io/library/r2:latest'), false);
});

#!/usr/bin/env node
// The dependency rule of docs/architecture.md, enforced: a module folder of src/ may import only
// folders that come strictly earlier in LAYERS (or files of its own folder), and no set of files
// may import each other in a cycle (type-only imports count: they are part of the design too).
// Usage: node scripts/check-layers.mjs [SRC_DIR]   (exit 1 listing every violation)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom to top. `.` is the files directly in src/ (errors.ts, limits.ts); index.ts is the entry. */
export const LAYERS = [
  ['.'],
  ['util'],
  ['reference'],
  ['oci'],
  ['settings'],
  ['registry'],
  ['tar'],
  ['layer'],
  ['erofs'],
  ['stitch'],
  ['catalog'],
  ['store'],
  ['pull'],
  ['archive'],
  ['api'],
  ['cli'],
];
const ENTRY = 'index.ts';

function walk(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative import specifiers of a file: static, `export … from`, and dynamic `import('…')`. */
export function importsOf(text) {
  const out = [];
  const re =
    /(?:^|[^.\w])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|^\s*import\s*['"](\.[^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

function folderOf(src, file) {
  const rel = relative(src, file);
  return rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : rel === ENTRY ? ENTRY : '.';
}

export function check(src) {
  const rank = new Map();
  LAYERS.forEach((names, i) => {
    for (const n of names) rank.set(n, i);
  });
  const files = walk(src);
  const problems = [];
  const graph = new Map();
  for (const f of files) {
    const from = folderOf(src, f);
    if (from !== ENTRY && !rank.has(from))
      problems.push(`${relative(src, f)}: folder '${from}' has no place in LAYERS (scripts/check-layers.mjs)`);
    const edges = [];
    for (const spec of importsOf(readFileSync(f, 'utf8'))) {
      const target = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
      edges.push(target);
      const to = folderOf(src, target);
      if (from === ENTRY || from === to) continue;
      if (to === ENTRY) {
        problems.push(`${relative(src, f)} imports the public entry ${spec}`);
        continue;
      }
      const a = rank.get(from),
        b = rank.get(to);
      if (a === undefined || b === undefined) continue;
      if (b >= a) problems.push(`${relative(src, f)} imports ${spec}: '${to}' is not below '${from}' in the pipeline`);
    }
    graph.set(f, edges);
  }
  for (const cycle of cycles(graph)) problems.push(`import cycle: ${cycle.map((f) => relative(src, f)).join(' → ')}`);
  return { files: files.length, problems };
}

/** Strongly connected components with more than one file (or a self-import), Tarjan's algorithm. */
function cycles(graph) {
  let next = 0;
  const index = new Map(),
    low = new Map(),
    stack = [],
    onStack = new Set(),
    out = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push([...comp.reverse(), comp[0]]);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const src = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const { files, problems } = check(src);
  if (problems.length) {
    console.error(`check-layers: ${problems.length} problem(s) in ${src}:`);
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`check-layers: ${files} files, layers acyclic and in pipeline order`);
}

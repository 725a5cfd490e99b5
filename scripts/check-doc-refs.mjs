#!/usr/bin/env node
// Checks that every design citation in the code resolves inside this repository.
//
// Usage: node scripts/check-doc-refs.mjs [root] [--strict] [--as-docs]
//
// It scans the `.ts` files under <root>/src and <root>/test, and the `.md` files under
// <root>/docs, for citations of the form `docs/<name>.md §N(.N)*`, including chains such as
// `docs/erofs.md §6.1–§6.3, §7` (every section of a chain is checked). A citation fails when
// docs/<name>.md does not exist or has no markdown heading that starts with that number
// (`## 8. Prune`, `### 5.2 Platform choice`). Inside docs/ a citation may omit the `docs/` prefix.
//
// A citation `<name>.md §N` in src/ or test/ that is not preceded by `docs/` also fails: it
// names a file outside the repository. A bare `<name>.md` (no section) for which docs/<name>.md
// exists is reported as a warning; `--strict` makes those fail too.
//
// `--as-docs` previews the state after citations are rewritten: `<name>.md §N` without `docs/`
// is checked as if it read `docs/<name>.md §N` (only missing files and headings fail).
//
// Exit status: 0 when everything resolves (one summary line), 1 otherwise (one line per problem,
// `file:line: message`), 2 on a usage error. No dependencies beyond Node.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const positional = args.filter((a) => !a.startsWith('--'));
for (const f of flags) {
  if (f !== '--strict' && f !== '--as-docs') {
    console.error(
      `check-doc-refs: unknown flag ${f}\nusage: node scripts/check-doc-refs.mjs [root] [--strict] [--as-docs]`,
    );
    process.exit(2);
  }
}
if (positional.length > 1) {
  console.error('usage: node scripts/check-doc-refs.mjs [root] [--strict] [--as-docs]');
  process.exit(2);
}
const root = resolve(positional[0] ?? join(fileURLToPath(new URL('.', import.meta.url)), '..'));
const strict = flags.has('--strict');
const asDocs = flags.has('--as-docs');
const docsDir = join(root, 'docs');

/** Files under `dir` (recursively) whose names end with `ext`; node_modules and dist skipped. */
function walk(dir, ext, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, ext, out);
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

/** docs/<name>.md → the set of section numbers its headings start with (fenced code ignored). */
function loadDocs() {
  const docs = new Map();
  for (const file of walk(docsDir, '.md')) {
    if (relative(docsDir, file).includes('/')) continue; // only docs/<name>.md
    const name = relative(docsDir, file).slice(0, -3);
    const sections = new Set();
    let fenced = false;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (/^\s*(```|~~~)/.test(line)) {
        fenced = !fenced;
        continue;
      }
      if (fenced) continue;
      const m = /^#{1,6}\s+(\d+(?:\.\d+)*)\.?(?:\s|$)/.exec(line);
      if (m) sections.add(m[1]);
    }
    docs.set(name, sections);
  }
  return docs;
}

// Between two parts of a citation: spaces, or a line break followed by a comment leader.
const GAP = String.raw`(?:[ \t]|\r?\n[ \t]*(?:\*(?!\/)|\/\/)?[ \t]*)*`;
const SECTION = String.raw`§(\d+(?:\.\d+)*)`;
const FIRST_RE = new RegExp(`^${GAP}${SECTION}`);
const NEXT_RE = new RegExp(`^${GAP}(?:–|—|-|,|/|and|or|to)${GAP}${SECTION}`);
const FILE_RE = /(docs\/)?\b([A-Za-z0-9_-]+)\.md\b/g;

/** The section chain after a `.md` match: ['8', '7.3.4', …] (empty when there is none). */
function sectionChain(text, from) {
  const out = [];
  let rest = text.slice(from, from + 400);
  let m = FIRST_RE.exec(rest);
  while (m) {
    out.push(m[1]);
    rest = rest.slice(m[0].length);
    m = NEXT_RE.exec(rest);
  }
  return out;
}

function lineOf(text, index) {
  let n = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

const docs = loadDocs();
const problems = [];
const warnings = [];
let citations = 0;
let sectionsChecked = 0;
const filesWithCitations = new Set();

function check(file, inDocs) {
  const text = readFileSync(file, 'utf8');
  const rel = relative(root, file);
  for (const m of text.matchAll(FILE_RE)) {
    const [whole, prefix, name] = m;
    const chain = sectionChain(text, m.index + whole.length);
    const at = `${rel}:${lineOf(text, m.index)}`;
    const docsRef = Boolean(prefix) || (inDocs && docs.has(name)) || (asDocs && chain.length > 0);
    if (!docsRef) {
      if (chain.length > 0) {
        problems.push(
          `${at}: ${name}.md §${chain[0]} cites a file outside the repository; write docs/${name}.md §${chain[0]}`,
        );
      } else if (docs.has(name) && name !== 'README') {
        (strict ? problems : warnings).push(`${at}: bare mention of ${name}.md; cite docs/${name}.md`);
      }
      continue;
    }
    if (!prefix && inDocs && !docs.has(name)) continue;
    citations++;
    filesWithCitations.add(rel);
    const sections = docs.get(name);
    if (!sections) {
      problems.push(`${at}: docs/${name}.md does not exist`);
      continue;
    }
    for (const s of chain) {
      sectionsChecked++;
      if (!sections.has(s)) problems.push(`${at}: docs/${name}.md has no heading §${s}`);
    }
  }
}

for (const f of [...walk(join(root, 'src'), '.ts'), ...walk(join(root, 'test'), '.ts')]) check(f, false);
for (const f of walk(docsDir, '.md')) check(f, true);

for (const w of warnings) console.error(`warning: ${w}`);
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`check-doc-refs: ${problems.length} problem(s) in ${root}`);
  process.exit(1);
}
console.log(
  `check-doc-refs: ${citations} citation(s) (${sectionsChecked} section reference(s)) in ${filesWithCitations.size} file(s) resolve against ${docs.size} doc(s) in docs/` +
    (warnings.length ? `; ${warnings.length} warning(s)` : ''),
);
